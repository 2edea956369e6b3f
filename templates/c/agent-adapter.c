/* {{name}}: a Switchyard agent adapter (world `agent-adapter` of switchyard:plugin@0.1.0).
 *
 * The host calls `run_turn` once per turn of a session. The adapter streams its
 * progress as turn events (`text-delta` pieces, then `message-complete`) and returns
 * the whole reply. Between pieces it polls `aborted()` and stops early, returning what
 * it has so far with stop reason `aborted`.
 *
 * This one replies with `prefix` (from the session's adapter config, else the plugin's
 * config, else "You said: ") followed by the user's input, word by word.
 * Start here: replace `compose_reply` with a call to your model (over wasi:http: list
 * its host in plugin.toml's `permissions.allowed_hosts` and declare its API key under
 * `[secrets]`, read with switchyard_plugin_config_secret).
 *
 * Export parameters belong to this code (freed at the end of each export); returned
 * strings are heap copies, freed by the generated post-return. */
#define _POSIX_C_SOURCE 200809L /* strdup, strncasecmp */

#include <stdlib.h>
#include <string.h>

#include "agent_adapter.h"
#include "json.h"

#ifndef PLUGIN_VERSION
#error "build with -DPLUGIN_VERSION=\"x.y.z\" (the manifest's version; build.sh does)"
#endif

#define NAME "{{name}}"
#define SUMMARY "{{summary}}"
/* Used when neither the session's config nor the plugin's config set `prefix`. */
#define DEFAULT_PREFIX "You said: "

typedef exports_switchyard_plugin_agent_api_turn_request_t request_t;
typedef exports_switchyard_plugin_agent_api_turn_result_t result_t;
typedef switchyard_plugin_turn_events_turn_event_t turn_event_t;

static agent_adapter_string_t view(const char *s, size_t n) {
  return (agent_adapter_string_t){(uint8_t *)s, n};
}

/* Hands the buffer's text over to `out` (the post-return frees it). */
static void buf_finish(buf_t *b, agent_adapter_string_t *out) {
  if (b->failed) {
    free(b->ptr);
    *b = (buf_t){0};
    buf_puts(b, "out of memory");
  }
  *out = view(b->ptr, b->len);
}

static bool is_blank(const agent_adapter_string_t *s) {
  for (size_t i = 0; i < s->len; i++) {
    uint8_t c = s->ptr[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* String setting `key`: from the object `overrides` (may be NULL) if set there and not
 * null, else from the plugin's config, else `fallback`. Returns a malloc'd string, or
 * NULL with the reason in `msg`. */
static char *setting_str(const json_value *overrides, const char *key, const char *fallback,
                         buf_t *msg) {
  json_value v;
  size_t len;
  if (overrides && json_member(*overrides, key, &v) && !json_is_null(v)) {
    char *s = json_string_dup(v, &len);
    if (!s) {
      buf_puts(msg, "`");
      buf_puts(msg, key);
      buf_puts(msg, "` (from the session's config) must be a string");
    }
    return s;
  }
  agent_adapter_string_t config_key = view(key, strlen(key)), text;
  if (switchyard_plugin_config_get(&config_key, &text)) {
    char *s = NULL;
    bool is_null = false;
    if (json_parse((const char *)text.ptr, text.len, &v)) {
      is_null = json_is_null(v);
      s = is_null ? NULL : json_string_dup(v, &len);
    }
    agent_adapter_string_free(&text);
    if (s || !is_null) {
      if (!s) {
        buf_puts(msg, "`");
        buf_puts(msg, key);
        buf_puts(msg, "` (from the plugin's config) must be a string");
      }
      return s;
    }
  }
  char *s = strdup(fallback);
  if (!s) msg->failed = true;
  return s;
}

/* The whole reply to this turn. */
static void compose_reply(const char *prefix, const request_t *request, buf_t *reply) {
  buf_puts(reply, prefix);
  buf_append(reply, request->input.ptr, request->input.len);
}

static void emit_text_delta(const char *s, size_t n) {
  turn_event_t event = {.tag = SWITCHYARD_PLUGIN_TURN_EVENTS_TURN_EVENT_TEXT_DELTA};
  event.val.text_delta = view(s, n); /* borrowed: the host copies it */
  switchyard_plugin_turn_events_emit(&event);
}

static void emit_message_complete(const char *s, size_t n) {
  turn_event_t event = {.tag = SWITCHYARD_PLUGIN_TURN_EVENTS_TURN_EVENT_MESSAGE_COMPLETE};
  event.val.message_complete = view(s, n);
  switchyard_plugin_turn_events_emit(&event);
}

/* Streams `reply` word by word (each piece is a word with the whitespace around it);
 * returns false if the turn was aborted, with what was sent so far in `sent`. */
static bool stream(const buf_t *reply, size_t *sent) {
  size_t i = 0;
  *sent = 0;
  while (i < reply->len) {
    size_t start = i;
    while (i < reply->len && is_space(reply->ptr[i])) i++;
    while (i < reply->len && !is_space(reply->ptr[i])) i++;
    while (i < reply->len && is_space(reply->ptr[i])) i++;
    if (switchyard_plugin_turn_events_aborted()) return false;
    emit_text_delta(reply->ptr + start, i - start);
    *sent = i;
  }
  emit_message_complete(reply->ptr, reply->len);
  return true;
}

void exports_switchyard_plugin_agent_api_describe(
    exports_switchyard_plugin_agent_api_plugin_info_t *ret) {
  agent_adapter_string_dup(&ret->name, NAME);
  agent_adapter_string_dup(&ret->version, PLUGIN_VERSION);
  agent_adapter_string_dup(&ret->summary, SUMMARY);
}

/* No: the host queues steering text as a follow-up message instead. */
bool exports_switchyard_plugin_agent_api_supports_steering(void) { return false; }

bool exports_switchyard_plugin_agent_api_run_turn(request_t *request, result_t *ret,
                                                  agent_adapter_string_t *err) {
  buf_t msg = {0}, reply = {0};
  char *prefix = NULL;
  bool ok = false;

  /* The session's config: a JSON object; blank text or null count as {}. */
  json_value root, *object = NULL;
  if (!is_blank(&request->config)) {
    if (!json_parse((const char *)request->config.ptr, request->config.len, &root)) {
      buf_puts(&msg, "request config is not valid JSON");
      goto done;
    }
    if (json_is_object(root)) {
      object = &root;
    } else if (!json_is_null(root)) {
      buf_puts(&msg, "request config must be a JSON object");
      goto done;
    }
  }
  prefix = setting_str(object, "prefix", DEFAULT_PREFIX, &msg);
  if (!prefix) goto done;
  compose_reply(prefix, request, &reply);
  if (reply.failed) {
    msg.failed = true;
    goto done;
  }
  size_t sent;
  bool complete = stream(&reply, &sent);
  reply.len = sent;
  ret->stop_reason = complete ? SWITCHYARD_PLUGIN_AGENT_TYPES_STOP_REASON_COMPLETE
                              : SWITCHYARD_PLUGIN_AGENT_TYPES_STOP_REASON_ABORTED;
  buf_finish(&reply, &ret->text);
  reply = (buf_t){0};
  ok = true;

done:
  free(prefix);
  free(reply.ptr);
  exports_switchyard_plugin_agent_api_turn_request_free(request);
  if (ok) {
    free(msg.ptr);
  } else {
    buf_finish(&msg, err);
  }
  return ok;
}
