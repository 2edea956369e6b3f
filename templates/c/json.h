/* A small JSON reader and writer for plugins.
 *
 * Reading: json_parse validates a whole document (UTF-8, nesting at most JSON_MAX_DEPTH,
 * no lone surrogate escapes, so whatever passes is also valid JSON for the host) and
 * returns a view of it; json_member finds an object's member; json_string_dup decodes
 * a string. Views point into the caller's text: nothing is copied until decoded.
 *
 * Writing: buf_t is a growable text buffer; buf_json_string appends a JSON string
 * literal. After an allocation failure a buffer stops growing and says so (`failed`). */
#ifndef PLUGIN_JSON_H
#define PLUGIN_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 64

/* One JSON value inside a validated document: its text, without surrounding space. */
typedef struct {
  const char *ptr;
  size_t len;
} json_value;

/* Checks that text[0..len) is exactly one JSON value (surrounding whitespace allowed). */
bool json_parse(const char *text, size_t len, json_value *out);

bool json_is_object(json_value v);
bool json_is_string(json_value v);
bool json_is_null(json_value v);

/* The value of member `key` (a NUL-terminated UTF-8 name) of object `obj`. False if
 * `obj` is not an object or has no such member. */
bool json_member(json_value obj, const char *key, json_value *out);

/* Decodes string `v` into a NUL-terminated malloc'd buffer (its length in *len).
 * Returns NULL if `v` is not a string or memory runs out. */
char *json_string_dup(json_value v, size_t *len);

typedef struct {
  char *ptr;
  size_t len, cap;
  bool failed;
} buf_t;

void buf_append(buf_t *b, const void *s, size_t n);
void buf_puts(buf_t *b, const char *s);
/* Appends s[0..n) (UTF-8) as a JSON string literal, quotes included. */
void buf_json_string(buf_t *b, const char *s, size_t n);

#endif
