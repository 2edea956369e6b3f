/* {{name}}: a Switchyard trigger (world `trigger` of switchyard:plugin@0.1.0).
 *
 * For every bus event an automation listens to, the host calls `evaluate` with the
 * event and the automation's params (the JSON object of the recipe's trigger block).
 * This trigger fires when the event's topic starts with `topic_prefix`, taken from the
 * params, else from the plugin's config (plugin.toml), else "demo.". When it fires, the
 * recipe run gets {topic, event_id, subject, data} as its inputs.
 *
 * Start here: change `decide` to look at the event's data too (json.h reads it).
 * Export parameters belong to this code (freed at the end of each export); returned
 * strings are heap copies, freed by the generated post-return. */
#define _POSIX_C_SOURCE 200809L /* strdup, strncasecmp */

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "trigger.h"

#ifndef PLUGIN_VERSION
#error "build with -DPLUGIN_VERSION=\"x.y.z\" (the manifest's version; build.sh does)"
#endif

#define NAME "{{name}}"
#define SUMMARY "{{summary}}"
/* Used when neither the params nor the plugin's config set `topic_prefix`. */
#define DEFAULT_TOPIC_PREFIX "demo."

typedef exports_switchyard_plugin_trigger_api_event_t event_t;
typedef exports_switchyard_plugin_trigger_api_decision_t decision_t;

static trigger_string_t view(const char *s, size_t n) {
  return (trigger_string_t){(uint8_t *)s, n};
}

/* Hands the buffer's text over to `out` (the post-return frees it). */
static void buf_finish(buf_t *b, trigger_string_t *out) {
  if (b->failed) {
    free(b->ptr);
    *b = (buf_t){0};
    buf_puts(b, "out of memory");
  }
  *out = view(b->ptr, b->len);
}

static bool is_blank(const trigger_string_t *s) {
  for (size_t i = 0; i < s->len; i++) {
    uint8_t c = s->ptr[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

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
      buf_puts(msg, "` (from params) must be a string");
    }
    return s;
  }
  trigger_string_t config_key = view(key, strlen(key)), text;
  if (switchyard_plugin_config_get(&config_key, &text)) {
    char *s = NULL;
    bool is_null = false;
    if (json_parse((const char *)text.ptr, text.len, &v)) {
      is_null = json_is_null(v);
      s = is_null ? NULL : json_string_dup(v, &len);
    }
    trigger_string_free(&text);
    if (s || !is_null) {
      if (!s) {
        buf_puts(msg, "`");
        buf_puts(msg, key);
        buf_puts(msg, "` (from config) must be a string");
      }
      return s;
    }
  }
  char *s = strdup(fallback);
  if (!s) msg->failed = true;
  return s;
}

/* Fire when the topic starts with `prefix`; hand the event to the recipe. */
static bool decide(const event_t *event, const char *prefix, decision_t *out, buf_t *msg) {
  size_t n = strlen(prefix);
  bool fire = event->topic.len >= n && memcmp(event->topic.ptr, prefix, n) == 0;
  buf_t inputs = {0}, reason = {0};
  buf_puts(&reason, "topic `");
  buf_append(&reason, event->topic.ptr, event->topic.len);
  buf_puts(&reason, fire ? "` starts with `" : "` does not start with `");
  buf_puts(&reason, prefix);
  buf_puts(&reason, "`");
  if (fire) {
    buf_puts(&inputs, "{\"topic\":");
    buf_json_string(&inputs, (const char *)event->topic.ptr, event->topic.len);
    buf_puts(&inputs, ",\"event_id\":");
    buf_json_string(&inputs, (const char *)event->id.ptr, event->id.len);
    buf_puts(&inputs, ",\"subject\":");
    if (event->subject.is_some) {
      buf_json_string(&inputs, (const char *)event->subject.val.ptr, event->subject.val.len);
    } else {
      buf_puts(&inputs, "null");
    }
    buf_puts(&inputs, ",\"data\":");
    buf_append(&inputs, event->data.ptr, event->data.len); /* JSON from the host */
    buf_puts(&inputs, "}");
  } else {
    buf_puts(&inputs, "{}");
  }
  if (inputs.failed || reason.failed) {
    free(inputs.ptr);
    free(reason.ptr);
    msg->failed = true;
    return false;
  }
  out->fire = fire;
  buf_finish(&inputs, &out->inputs);
  buf_finish(&reason, &out->reason);
  return true;
}

static void log_decision(const event_t *event, const decision_t *d) {
  buf_t line = {0};
  buf_append(&line, event->topic.ptr, event->topic.len);
  buf_puts(&line, " ");
  buf_append(&line, event->id.ptr, event->id.len);
  buf_puts(&line, d->fire ? ": fire (" : ": no fire (");
  buf_append(&line, d->reason.ptr, d->reason.len);
  buf_puts(&line, ")");
  if (!line.failed) {
    trigger_string_t text = view(line.ptr, line.len);
    switchyard_plugin_log_write(SWITCHYARD_PLUGIN_LOG_LEVEL_DEBUG, &text);
  }
  free(line.ptr);
}

void exports_switchyard_plugin_trigger_api_describe(
    exports_switchyard_plugin_trigger_api_plugin_info_t *ret) {
  trigger_string_dup(&ret->name, NAME);
  trigger_string_dup(&ret->version, PLUGIN_VERSION);
  trigger_string_dup(&ret->summary, SUMMARY);
}

bool exports_switchyard_plugin_trigger_api_evaluate(
    event_t *event, exports_switchyard_plugin_trigger_api_json_t *params, decision_t *ret,
    trigger_string_t *err) {
  buf_t msg = {0};
  char *prefix = NULL;
  bool ok = false;

  /* params: a JSON object; blank text or null count as {}. */
  json_value root, *object = NULL;
  if (!is_blank(params)) {
    if (!json_parse((const char *)params->ptr, params->len, &root)) {
      buf_puts(&msg, "params is not valid JSON");
      goto done;
    }
    if (json_is_object(root)) {
      object = &root;
    } else if (!json_is_null(root)) {
      buf_puts(&msg, "params must be a JSON object");
      goto done;
    }
  }
  prefix = setting_str(object, "topic_prefix", DEFAULT_TOPIC_PREFIX, &msg);
  if (prefix && decide(event, prefix, ret, &msg)) {
    log_decision(event, ret);
    ok = true;
  }

done:
  free(prefix);
  exports_switchyard_plugin_trigger_api_event_free(event);
  exports_switchyard_plugin_trigger_api_json_free(params);
  if (ok) {
    free(msg.ptr);
  } else {
    buf_finish(&msg, err);
  }
  return ok;
}
