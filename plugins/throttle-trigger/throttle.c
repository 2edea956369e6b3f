/* throttle-trigger: a Switchyard trigger that rate-limits automations, e.g. "run the
 * triage recipe at most 5 times an hour per repository".
 *
 * Each event is counted in a fixed window of `window_seconds`, aligned on the Unix
 * epoch and taken from the event's own `time` (so no clock is needed and the answer
 * is deterministic), for its group: the value at the JSON pointer `key` in the
 * event's data, or the event's topic. The automation fires while the window's count
 * is at most `limit`. Counters live in the plugin's kv store under
 * "<group>|<window_start>" and are incremented atomically by the host; whoever
 * opens a group's new window deletes that group's older counters.
 *
 * params (a JSON object, every member optional):
 *   limit           integer >= 1                      default: config "limit", else 5
 *   window_seconds  integer, 1 to 100 years' worth    default: config "window_seconds", else 3600
 *   key             RFC 6901 pointer into the data, e.g. "/repository/full_name";
 *                   default: group by topic. A string value is the group as is; any
 *                   other value groups by its JSON text. No value there is an error.
 * A member that is null counts as absent; blank or null params count as {}.
 *
 * Every failure is an `err` result naming its cause; nothing here traps. Export
 * arguments belong to this code and are freed here; returned strings are heap
 * copies that the generated post-return frees. */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "rfc3339.h"
#include "trigger.h"

#ifndef PLUGIN_VERSION
#error "build with -DPLUGIN_VERSION=\"x.y.z\" (the manifest's version)"
#endif

#define DEFAULT_LIMIT 5
#define DEFAULT_WINDOW_SECONDS 3600
#define MAX_WINDOW_SECONDS INT64_C(3155760000) /* 100 years */
#define KV_LIST_LIMIT 1024                     /* the manifest's kv_max_keys */

typedef exports_switchyard_plugin_trigger_api_event_t event_t;
typedef exports_switchyard_plugin_trigger_api_decision_t decision_t;
typedef switchyard_plugin_kv_kv_error_t kv_error_t;

/* ---- a growable text buffer; on allocation failure it stops growing and says so ---- */

typedef struct {
  char *ptr;
  size_t len, cap;
  bool failed;
} buf_t;

static void buf_append(buf_t *b, const void *s, size_t n) {
  if (b->failed) return;
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < n) {
      if (cap > SIZE_MAX / 2) {
        b->failed = true;
        return;
      }
      cap *= 2;
    }
    char *p = realloc(b->ptr, cap);
    if (!p) {
      b->failed = true;
      return;
    }
    b->ptr = p;
    b->cap = cap;
  }
  memcpy(b->ptr + b->len, s, n);
  b->len += n;
}

static void buf_puts(buf_t *b, const char *s) { buf_append(b, s, strlen(s)); }

static void buf_int(buf_t *b, int64_t v) {
  char tmp[21];
  size_t i = sizeof tmp;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u > 0);
  if (v < 0) tmp[--i] = '-';
  buf_append(b, tmp + i, sizeof tmp - i);
}

/* Appends s[0..n) as a JSON string literal, quotes included. */
static void buf_json_string(buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_puts(b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      buf_append(b, esc, 2);
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      buf_append(b, esc, 6);
    } else {
      buf_append(b, &s[i], 1);
    }
  }
  buf_puts(b, "\"");
}

static trigger_string_t view(const char *s, size_t n) {
  return (trigger_string_t){(uint8_t *)s, n};
}

/* Hands the text over to `out`, for the post-return to free. If memory ran out, the
 * text becomes "out of memory" (or stays empty, which needs no allocation). */
static void buf_finish(buf_t *b, trigger_string_t *out) {
  if (b->failed) {
    free(b->ptr);
    *b = (buf_t){0};
    buf_puts(b, "out of memory");
  }
  *out = view(b->ptr, b->len);
}

/* ---- settings ---- */

typedef struct {
  int64_t limit;
  int64_t window_seconds;
  char *key; /* decoded JSON pointer, or NULL to group by topic */
  size_t key_len;
} settings_t;

/* Error text for a bad integer setting, e.g. "params.limit: expected an integer >= 1". */
static bool bad_integer(buf_t *msg, const char *source, const char *name, int64_t max) {
  buf_puts(msg, source);
  buf_puts(msg, name);
  if (max == INT64_MAX) {
    buf_puts(msg, ": expected an integer >= 1");
  } else {
    buf_puts(msg, ": expected an integer from 1 to ");
    buf_int(msg, max);
  }
  return false;
}

/* Integer setting `name` in [1, max]: from params (may be NULL), else the plugin's
 * config, else `fallback`. A null member counts as absent. */
static bool int_setting(const json_value *params, const char *name, int64_t max,
                        int64_t fallback, int64_t *out, buf_t *msg) {
  json_value v;
  if (params && json_member(*params, name, strlen(name), &v) && json_type_of(v) != JSON_NULL) {
    if (!json_int64(v, out) || *out < 1 || *out > max) {
      return bad_integer(msg, "params.", name, max);
    }
    return true;
  }
  trigger_string_t config_key = view(name, strlen(name)), text;
  if (!switchyard_plugin_config_get(&config_key, &text)) {
    *out = fallback;
    return true;
  }
  bool ok = json_parse((const char *)text.ptr, text.len, &v) && json_int64(v, out) &&
            *out >= 1 && *out <= max;
  trigger_string_free(&text);
  return ok || bad_integer(msg, "config.", name, max);
}

static bool is_blank(const trigger_string_t *s) {
  for (size_t i = 0; i < s->len; i++) {
    uint8_t c = s->ptr[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

/* Reads params (a JSON object; blank text or null means {}). */
static bool read_settings(const trigger_string_t *params, settings_t *s, buf_t *msg) {
  json_value root;
  const json_value *object = NULL;
  if (!is_blank(params)) {
    if (!json_parse((const char *)params->ptr, params->len, &root)) {
      buf_puts(msg, "params: not valid JSON");
      return false;
    }
    if (json_type_of(root) == JSON_OBJECT) {
      object = &root;
    } else if (json_type_of(root) != JSON_NULL) {
      buf_puts(msg, "params: expected a JSON object");
      return false;
    }
  }
  if (!int_setting(object, "limit", INT64_MAX, DEFAULT_LIMIT, &s->limit, msg) ||
      !int_setting(object, "window_seconds", MAX_WINDOW_SECONDS, DEFAULT_WINDOW_SECONDS,
                   &s->window_seconds, msg)) {
    return false;
  }
  json_value key;
  if (!object || !json_member(*object, "key", 3, &key) || json_type_of(key) == JSON_NULL) {
    return true;
  }
  if (json_type_of(key) != JSON_STRING) {
    buf_puts(msg, "params.key: expected a JSON pointer string such as \"/repository/full_name\"");
    return false;
  }
  s->key = json_string_dup(key, &s->key_len);
  if (!s->key) {
    msg->failed = true;
    return false;
  }
  if (!json_pointer_valid(s->key, s->key_len)) {
    buf_puts(msg, "params.key: not a JSON pointer (RFC 6901): ");
    buf_json_string(msg, s->key, s->key_len);
    buf_puts(msg, " must be empty or start with '/', and '~' must be followed by 0 or 1");
    return false;
  }
  return true;
}

/* ---- the group an event counts in ---- */

typedef struct {
  const char *ptr;
  size_t len;
  char *owned; /* freed after use, when the group text had to be decoded */
} group_t;

static bool find_group(const event_t *event, const settings_t *s, group_t *g, buf_t *msg) {
  if (!s->key) {
    *g = (group_t){(const char *)event->topic.ptr, event->topic.len, NULL};
    return true;
  }
  json_value data, v;
  if (!json_parse((const char *)event->data.ptr, event->data.len, &data)) {
    buf_puts(msg, "event.data: not valid JSON (or nested deeper than 64 levels)");
    return false;
  }
  if (json_pointer(data, s->key, s->key_len, &v) != JSON_POINTER_FOUND) {
    buf_puts(msg, "event.data has no value at params.key ");
    buf_json_string(msg, s->key, s->key_len);
    return false;
  }
  if (json_type_of(v) != JSON_STRING) {
    *g = (group_t){v.ptr, v.len, NULL}; /* numbers, booleans...: their JSON text */
    return true;
  }
  g->owned = json_string_dup(v, &g->len);
  if (!g->owned) {
    msg->failed = true;
    return false;
  }
  g->ptr = g->owned;
  return true;
}

/* ---- kv ---- */

static bool kv_failed(buf_t *msg, const char *op, kv_error_t *e) {
  buf_puts(msg, op);
  switch (e->tag) {
    case SWITCHYARD_PLUGIN_KV_KV_ERROR_DENIED:
      buf_puts(msg, ": denied (the manifest does not grant kv)");
      break;
    case SWITCHYARD_PLUGIN_KV_KV_ERROR_TOO_LARGE:
      buf_puts(msg, ": too large: ");
      buf_append(msg, e->val.too_large.ptr, e->val.too_large.len);
      break;
    case SWITCHYARD_PLUGIN_KV_KV_ERROR_STORAGE:
      buf_puts(msg, ": storage: ");
      buf_append(msg, e->val.storage.ptr, e->val.storage.len);
      break;
  }
  switchyard_plugin_kv_kv_error_free(e);
  return false;
}

/* Is s[0..n) a decimal integer (optionally negative) below `bound`? */
static bool integer_below(const char *s, size_t n, int64_t bound) {
  int64_t x;
  return json_int64((json_value){s, n}, &x) && x < bound;
}

/* Deletes the group's counters of windows before `window_start`. `prefix` is "<group>|";
 * keys of other groups that share it ("<group>|x|<n>") do not end in a bare integer. */
static bool delete_older(const buf_t *prefix, int64_t window_start, buf_t *msg) {
  trigger_string_t p = view(prefix->ptr, prefix->len);
  trigger_list_string_t keys;
  kv_error_t e;
  if (!switchyard_plugin_kv_list_keys(&p, KV_LIST_LIMIT, &keys, &e)) {
    return kv_failed(msg, "kv.list-keys", &e);
  }
  bool ok = true;
  for (size_t i = 0; i < keys.len && ok; i++) {
    trigger_string_t *k = &keys.ptr[i];
    bool deleted;
    if (k->len > prefix->len && memcmp(k->ptr, prefix->ptr, prefix->len) == 0 &&
        integer_below((const char *)k->ptr + prefix->len, k->len - prefix->len, window_start) &&
        !switchyard_plugin_kv_delete(k, &deleted, &e)) {
      ok = kv_failed(msg, "kv.delete", &e);
    }
  }
  trigger_list_string_free(&keys);
  return ok;
}

/* ---- the trigger ---- */

static bool decide(const event_t *event, const settings_t *s, const group_t *g,
                   decision_t *out, buf_t *msg) {
  int64_t t;
  if (!rfc3339_parse((const char *)event->time.ptr, event->time.len, &t)) {
    buf_puts(msg, "event.time: not an RFC 3339 timestamp: ");
    buf_json_string(msg, (const char *)event->time.ptr, event->time.len);
    return false;
  }
  int64_t w = s->window_seconds;
  int64_t window_start = (t / w - (t % w < 0)) * w;

  buf_t bucket = {0};
  buf_append(&bucket, g->ptr, g->len);
  buf_puts(&bucket, "|");
  size_t prefix_len = bucket.len;
  buf_int(&bucket, window_start);
  if (bucket.failed) {
    free(bucket.ptr);
    msg->failed = true;
    return false;
  }
  trigger_string_t key = view(bucket.ptr, bucket.len);
  int64_t count;
  kv_error_t e;
  bool ok = switchyard_plugin_kv_increment(&key, 1, &count, &e) ||
            kv_failed(msg, "kv.increment", &e);
  if (ok && count == 1) {
    bucket.len = prefix_len;
    ok = delete_older(&bucket, window_start, msg);
  }
  free(bucket.ptr);
  if (!ok) return false;

  char start_text[RFC3339_BUF], end_text[RFC3339_BUF];
  size_t start_len = rfc3339_format_utc(window_start, start_text);
  rfc3339_format_utc(window_start + w, end_text);

  buf_t inputs = {0}, reason = {0};
  buf_puts(&inputs, "{\"group\":");
  buf_json_string(&inputs, g->ptr, g->len);
  buf_puts(&inputs, ",\"count\":");
  buf_int(&inputs, count);
  buf_puts(&inputs, ",\"limit\":");
  buf_int(&inputs, s->limit);
  buf_puts(&inputs, ",\"window_start\":");
  buf_json_string(&inputs, start_text, start_len);
  buf_puts(&inputs, ",\"window_seconds\":");
  buf_int(&inputs, w);
  buf_puts(&inputs, "}");

  out->fire = count <= s->limit;
  if (out->fire) {
    buf_int(&reason, count);
    buf_puts(&reason, " of ");
    buf_int(&reason, s->limit);
    buf_puts(&reason, " for ");
    buf_append(&reason, g->ptr, g->len);
    buf_puts(&reason, " in window starting ");
    buf_puts(&reason, start_text);
  } else {
    buf_puts(&reason, "limit ");
    buf_int(&reason, s->limit);
    buf_puts(&reason, " reached for ");
    buf_append(&reason, g->ptr, g->len);
    buf_puts(&reason, " until ");
    buf_puts(&reason, end_text);
  }
  if (inputs.failed || reason.failed) {
    free(inputs.ptr);
    free(reason.ptr);
    msg->failed = true;
    return false;
  }
  buf_finish(&inputs, &out->inputs);
  buf_finish(&reason, &out->reason);
  return true;
}

void exports_switchyard_plugin_trigger_api_describe(
    exports_switchyard_plugin_trigger_api_plugin_info_t *ret) {
  trigger_string_dup(&ret->name, "throttle-trigger");
  trigger_string_dup(&ret->version, PLUGIN_VERSION);
  trigger_string_dup(&ret->summary,
                     "Rate-limits automations: fires at most `limit` times per window per group.");
}

bool exports_switchyard_plugin_trigger_api_evaluate(
    event_t *event, exports_switchyard_plugin_trigger_api_json_t *params, decision_t *ret,
    trigger_string_t *err) {
  settings_t s = {0};
  group_t g = {0};
  buf_t msg = {0};
  bool ok = read_settings(params, &s, &msg) && find_group(event, &s, &g, &msg) &&
            decide(event, &s, &g, ret, &msg);
  free(g.owned);
  free(s.key);
  exports_switchyard_plugin_trigger_api_event_free(event);
  exports_switchyard_plugin_trigger_api_json_free(params);
  if (!ok) buf_finish(&msg, err);
  return ok;
}
