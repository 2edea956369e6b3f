/* A small, allocation-free JSON reader: validates a document, then walks it by
 * object member, array index or RFC 6901 pointer, and reads strings and integers.
 * Every value is a view (pointer + length) into the caller's text; nothing is
 * copied until a string is decoded. Nesting deeper than JSON_MAX_DEPTH is refused,
 * which bounds the recursion. */
#ifndef THROTTLE_JSON_H
#define THROTTLE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

/* One JSON value inside a validated document: its text, without surrounding space. */
typedef struct {
  const char *ptr;
  size_t len;
} json_value;

typedef enum {
  JSON_OBJECT,
  JSON_ARRAY,
  JSON_STRING,
  JSON_NUMBER,
  JSON_TRUE,
  JSON_FALSE,
  JSON_NULL,
} json_type;

typedef enum {
  JSON_POINTER_FOUND,
  JSON_POINTER_MISSING, /* well-formed, but nothing is at that place */
  JSON_POINTER_SYNTAX,  /* not an RFC 6901 pointer */
} json_pointer_result;

/* Checks that text[0..len) is exactly one JSON value (surrounding whitespace allowed). */
bool json_parse(const char *text, size_t len, json_value *out);

json_type json_type_of(json_value v);

/* The value of member `key` (raw UTF-8, key_len bytes) of object `obj`. */
bool json_member(json_value obj, const char *key, size_t key_len, json_value *out);

/* True if `v` is a number written as an integer (no fraction or exponent) that fits. */
bool json_int64(json_value v, int64_t *out);

/* Decodes string `v` into a NUL-terminated malloc'd buffer (length in *len).
 * Lone surrogate escapes become U+FFFD so the result is always valid UTF-8.
 * Returns NULL if `v` is not a string or memory runs out. */
char *json_string_dup(json_value v, size_t *len);

/* Is ptr[0..len) an RFC 6901 pointer: empty, or '/'-separated tokens whose '~' is
 * always followed by '0' or '1'? */
bool json_pointer_valid(const char *ptr, size_t len);

/* Follows the RFC 6901 pointer ptr[0..len) (unescaped text, e.g. "/a~1b/0") from `doc`. */
json_pointer_result json_pointer(json_value doc, const char *ptr, size_t len, json_value *out);

#endif
