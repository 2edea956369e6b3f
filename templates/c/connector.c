/* {{name}}: a Switchyard connector (world `connector` of switchyard:plugin@0.1.0).
 *
 * Inbound: the host hands every webhook sent to the connector's route to
 * `handle_webhook`. This one turns a JSON body into one bus event on the topic set by
 * `topic` in the plugin's config (plugin.toml), with {path, body} as its data. A GET
 * (a health check or verification ping) is answered with 200 and no items; a body
 * that is not JSON is refused (the host answers 400 with the error text).
 *
 * Outbound: `deliver` is where replies leave Switchyard. This one only writes them to
 * the host's log; to send them somewhere, make an HTTP request (wasi:http) and list the
 * host in plugin.toml's `permissions.allowed_hosts`.
 *
 * Export parameters belong to this code (freed at the end of each export); returned
 * strings and lists are heap copies, freed by the generated post-return. */
#define _POSIX_C_SOURCE 200809L /* strdup, strncasecmp */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connector.h"
#include "json.h"

#ifndef PLUGIN_VERSION
#error "build with -DPLUGIN_VERSION=\"x.y.z\" (the manifest's version; build.sh does)"
#endif

#define NAME "{{name}}"
#define SUMMARY "{{summary}}"
/* Used when the plugin's config does not set `topic`. */
#define DEFAULT_TOPIC "webhook.{{name}}"
#define EVENT_TYPE "webhook.received"

typedef exports_switchyard_plugin_connector_api_webhook_request_t request_t;
typedef exports_switchyard_plugin_connector_api_webhook_outcome_t outcome_t;
typedef exports_switchyard_plugin_connector_api_inbound_item_t item_t;
typedef exports_switchyard_plugin_connector_api_outbound_message_t message_t;

static connector_string_t view(const char *s, size_t n) {
  return (connector_string_t){(uint8_t *)s, n};
}

/* Hands the buffer's text over to `out` (the post-return frees it). */
static void buf_finish(buf_t *b, connector_string_t *out) {
  if (b->failed) {
    free(b->ptr);
    *b = (buf_t){0};
    buf_puts(b, "out of memory");
  }
  *out = view(b->ptr, b->len);
}

static void log_line(switchyard_plugin_log_level_t level, buf_t *line) {
  if (!line->failed) {
    connector_string_t text = view(line->ptr, line->len);
    switchyard_plugin_log_write(level, &text);
  }
  free(line->ptr);
  *line = (buf_t){0};
}

/* String setting `key` from the plugin's config, else `fallback`. Returns a malloc'd
 * string, or NULL with the reason in `msg`. */
static char *config_str(const char *key, const char *fallback, buf_t *msg) {
  connector_string_t config_key = view(key, strlen(key)), text;
  if (switchyard_plugin_config_get(&config_key, &text)) {
    json_value v;
    size_t len;
    char *s = NULL;
    bool is_null = false;
    if (json_parse((const char *)text.ptr, text.len, &v)) {
      is_null = json_is_null(v);
      s = is_null ? NULL : json_string_dup(v, &len);
    }
    connector_string_free(&text);
    if (s || !is_null) {
      if (!s) {
        buf_puts(msg, "config `");
        buf_puts(msg, key);
        buf_puts(msg, "` must be a string");
      }
      return s;
    }
  }
  char *s = strdup(fallback);
  if (!s) msg->failed = true;
  return s;
}

/* The webhook as one bus event; false with the reason in `msg` if it cannot be. */
static bool webhook_to_event(const request_t *request, outcome_t *out, buf_t *msg) {
  json_value body;
  if (!json_parse((const char *)request->body.ptr, request->body.len, &body)) {
    buf_puts(msg, "body is not JSON (or not UTF-8, or nested deeper than 64 levels)");
    return false;
  }
  char *topic = config_str("topic", DEFAULT_TOPIC, msg);
  if (!topic) return false;

  buf_t data = {0}, answer = {0}, line = {0};
  buf_puts(&data, "{\"path\":");
  buf_json_string(&data, (const char *)request->path.ptr, request->path.len);
  buf_puts(&data, ",\"body\":");
  buf_append(&data, body.ptr, body.len);
  buf_puts(&data, "}");
  buf_puts(&answer, "{\"accepted\":1,\"topic\":");
  buf_json_string(&answer, topic, strlen(topic));
  buf_puts(&answer, "}");
  item_t *item = calloc(1, sizeof *item);
  char *topic_copy = strdup(topic), *event_type = strdup(EVENT_TYPE);
  if (data.failed || answer.failed || !item || !topic_copy || !event_type) {
    free(data.ptr);
    free(answer.ptr);
    free(item);
    free(topic_copy);
    free(event_type);
    free(topic);
    msg->failed = true;
    return false;
  }

  buf_puts(&line, "webhook ");
  buf_append(&line, request->path.ptr, request->path.len);
  buf_puts(&line, " -> ");
  buf_puts(&line, topic);
  log_line(SWITCHYARD_PLUGIN_LOG_LEVEL_INFO, &line);
  free(topic);

  item->tag = EXPORTS_SWITCHYARD_PLUGIN_CONNECTOR_API_INBOUND_ITEM_EVENT;
  item->val.event.topic = view(topic_copy, strlen(topic_copy));
  item->val.event.event_type = view(event_type, strlen(event_type));
  item->val.event.subject.is_some = false;
  buf_finish(&data, &item->val.event.data);
  out->status = 202;
  buf_finish(&answer, &out->body);
  out->items.ptr = item;
  out->items.len = 1;
  return true;
}

void exports_switchyard_plugin_connector_api_describe(
    exports_switchyard_plugin_connector_api_plugin_info_t *ret) {
  connector_string_dup(&ret->name, NAME);
  connector_string_dup(&ret->version, PLUGIN_VERSION);
  connector_string_dup(&ret->summary, SUMMARY);
}

bool exports_switchyard_plugin_connector_api_handle_webhook(request_t *request, outcome_t *ret,
                                                            connector_string_t *err) {
  buf_t msg = {0};
  bool ok;
  if (request->method.len == 3 && strncasecmp((const char *)request->method.ptr, "GET", 3) == 0) {
    ret->status = 200;
    connector_string_dup(&ret->body, "ok");
    ret->items = (exports_switchyard_plugin_connector_api_list_inbound_item_t){NULL, 0};
    ok = true;
  } else {
    ok = webhook_to_event(request, ret, &msg);
  }
  exports_switchyard_plugin_connector_api_webhook_request_free(request);
  if (ok) {
    free(msg.ptr);
  } else {
    buf_finish(&msg, err);
  }
  return ok;
}

bool exports_switchyard_plugin_connector_api_deliver(
    message_t *message, exports_switchyard_plugin_connector_api_json_t *ret,
    connector_string_t *err) {
  /* Replace this with a real delivery (an HTTP request to a chat or issue API). */
  buf_t line = {0}, receipt = {0};
  buf_puts(&line, "reply for session ");
  buf_append(&line, message->session.ptr, message->session.len);
  buf_puts(&line, " (target ");
  buf_append(&line, message->target.ptr, message->target.len);
  buf_puts(&line, "): ");
  buf_append(&line, message->text.ptr, message->text.len);
  log_line(SWITCHYARD_PLUGIN_LOG_LEVEL_INFO, &line);

  buf_puts(&receipt, "{\"delivered_to\":\"log\",\"session\":");
  buf_json_string(&receipt, (const char *)message->session.ptr, message->session.len);
  buf_puts(&receipt, "}");
  exports_switchyard_plugin_connector_api_outbound_message_free(message);
  if (receipt.failed) {
    free(receipt.ptr);
    connector_string_dup(err, "out of memory");
    return false;
  }
  buf_finish(&receipt, ret);
  return true;
}
