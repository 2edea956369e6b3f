/* The JSON reader declared in json.h (RFC 8259 grammar; input is UTF-8 already). */
#include "json.h"

#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The four hex digits at p as a code unit, or -1. */
static int32_t read_hex4(const char *p, const char *end) {
  if (end - p < 4) return -1;
  int32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int d = hex_digit(p[i]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* p at an opening quote; returns just past the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *end) {
  if (p >= end || *p != '"') return NULL;
  p++;
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    if (c != '\\') {
      p++;
      continue;
    }
    if (end - p < 2) return NULL;
    switch (p[1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        p += 2;
        break;
      case 'u':
        if (read_hex4(p + 2, end) < 0) return NULL;
        p += 6;
        break;
      default:
        return NULL;
    }
  }
  return NULL;
}

/* One or more digits; NULL if there are none. */
static const char *skip_digits(const char *p, const char *end) {
  const char *start = p;
  while (p < end && *p >= '0' && *p <= '9') p++;
  return p == start ? NULL : p;
}

static const char *skip_number(const char *p, const char *end) {
  if (p < end && *p == '-') p++;
  if (p < end && *p == '0') {
    p++;
  } else if (!(p = skip_digits(p, end))) {
    return NULL;
  }
  if (p < end && *p == '.' && !(p = skip_digits(p + 1, end))) return NULL;
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (!(p = skip_digits(p, end))) return NULL;
  }
  return p;
}

static const char *skip_literal(const char *p, const char *end, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(end - p) < n || memcmp(p, word, n) != 0) return NULL;
  return p + n;
}

/* p at the first character of a value; returns just past it, or NULL if it is not
 * valid JSON or nests deeper than JSON_MAX_DEPTH. */
static const char *skip_value(const char *p, const char *end, int depth) {
  if (p >= end) return NULL;
  switch (*p) {
    case '{':
    case '[': {
      char close = *p == '{' ? '}' : ']';
      if (depth >= JSON_MAX_DEPTH) return NULL;
      p = skip_ws(p + 1, end);
      if (p < end && *p == close) return p + 1;
      for (;;) {
        if (close == '}') {
          p = skip_string(p, end);
          if (!p) return NULL;
          p = skip_ws(p, end);
          if (p >= end || *p != ':') return NULL;
          p = skip_ws(p + 1, end);
        }
        p = skip_value(p, end, depth + 1);
        if (!p) return NULL;
        p = skip_ws(p, end);
        if (p >= end) return NULL;
        if (*p == close) return p + 1;
        if (*p != ',') return NULL;
        p = skip_ws(p + 1, end);
      }
    }
    case '"': return skip_string(p, end);
    case 't': return skip_literal(p, end, "true");
    case 'f': return skip_literal(p, end, "false");
    case 'n': return skip_literal(p, end, "null");
    default: return skip_number(p, end);
  }
}

bool json_parse(const char *text, size_t len, json_value *out) {
  if (len == 0) return false;
  const char *end = text + len;
  const char *start = skip_ws(text, end);
  const char *stop = skip_value(start, end, 0);
  if (!stop || skip_ws(stop, end) != end) return false;
  out->ptr = start;
  out->len = (size_t)(stop - start);
  return true;
}

json_type json_type_of(json_value v) {
  switch (v.ptr[0]) {
    case '{': return JSON_OBJECT;
    case '[': return JSON_ARRAY;
    case '"': return JSON_STRING;
    case 't': return JSON_TRUE;
    case 'f': return JSON_FALSE;
    case 'n': return JSON_NULL;
    default: return JSON_NUMBER;
  }
}

static size_t encode_utf8(uint32_t cp, char *buf) {
  if (cp < 0x80) {
    buf[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    buf[0] = (char)(0xC0 | (cp >> 6));
    buf[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    buf[0] = (char)(0xE0 | (cp >> 12));
    buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  buf[0] = (char)(0xF0 | (cp >> 18));
  buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  buf[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Decodes the character at *pp inside a validated string into buf (UTF-8) and
 * advances *pp; returns the number of bytes, or 0 at the closing quote. */
static size_t next_char(const char **pp, const char *end, char buf[4]) {
  const char *p = *pp;
  if (p >= end || *p == '"') return 0;
  if (*p != '\\') {
    buf[0] = *p;
    *pp = p + 1;
    return 1;
  }
  if (end - p < 2) return 0;
  *pp = p + 2;
  switch (p[1]) {
    case 'b': buf[0] = '\b'; return 1;
    case 'f': buf[0] = '\f'; return 1;
    case 'n': buf[0] = '\n'; return 1;
    case 'r': buf[0] = '\r'; return 1;
    case 't': buf[0] = '\t'; return 1;
    case 'u': break;
    default: buf[0] = p[1]; return 1; /* " \ / */
  }
  int32_t cp = read_hex4(p + 2, end);
  if (cp < 0) return 0;
  *pp = p + 6;
  if (cp >= 0xD800 && cp <= 0xDBFF && end - (p + 6) >= 6 && p[6] == '\\' && p[7] == 'u') {
    int32_t low = read_hex4(p + 8, end);
    if (low >= 0xDC00 && low <= 0xDFFF) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      *pp = p + 12;
    }
  }
  if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
  return encode_utf8((uint32_t)cp, buf);
}

/* Does the string at `quote` decode to key[0..key_len)? With `pointer_escaped`, the
 * key is an RFC 6901 reference token, where ~0 stands for '~' and ~1 for '/'. */
static bool string_equals(const char *quote, const char *end, const char *key, size_t key_len,
                          bool pointer_escaped) {
  const char *p = quote + 1;
  size_t i = 0;
  char buf[4];
  size_t n;
  while ((n = next_char(&p, end, buf)) > 0) {
    for (size_t j = 0; j < n; j++) {
      if (i >= key_len) return false;
      char k = key[i++];
      if (pointer_escaped && k == '~' && i < key_len) k = key[i++] == '0' ? '~' : '/';
      if (k != buf[j]) return false;
    }
  }
  return i == key_len;
}

/* The last member of `obj` whose name equals `key` (see string_equals). */
static bool find_member(json_value obj, const char *key, size_t key_len, bool pointer_escaped,
                        json_value *out) {
  if (json_type_of(obj) != JSON_OBJECT) return false;
  const char *end = obj.ptr + obj.len;
  const char *p = skip_ws(obj.ptr + 1, end);
  bool found = false;
  if (p < end && *p == '}') return false;
  while (p < end) {
    const char *name_end = skip_string(p, end);
    if (!name_end) return false;
    bool match = string_equals(p, name_end, key, key_len, pointer_escaped);
    p = skip_ws(name_end, end);
    if (p >= end || *p != ':') return false;
    const char *value = skip_ws(p + 1, end);
    const char *value_end = skip_value(value, end, 0);
    if (!value_end) return false;
    if (match) {
      out->ptr = value;
      out->len = (size_t)(value_end - value);
      found = true;
    }
    p = skip_ws(value_end, end);
    if (p >= end || *p != ',') break;
    p = skip_ws(p + 1, end);
  }
  return found;
}

bool json_member(json_value obj, const char *key, size_t key_len, json_value *out) {
  return find_member(obj, key, key_len, false, out);
}

/* Element `index` of array `arr`. */
static bool find_element(json_value arr, size_t index, json_value *out) {
  if (json_type_of(arr) != JSON_ARRAY) return false;
  const char *end = arr.ptr + arr.len;
  const char *p = skip_ws(arr.ptr + 1, end);
  if (p < end && *p == ']') return false;
  for (size_t i = 0; p < end; i++) {
    const char *value_end = skip_value(p, end, 0);
    if (!value_end) return false;
    if (i == index) {
      out->ptr = p;
      out->len = (size_t)(value_end - p);
      return true;
    }
    p = skip_ws(value_end, end);
    if (p >= end || *p != ',') return false;
    p = skip_ws(p + 1, end);
  }
  return false;
}

bool json_int64(json_value v, int64_t *out) {
  const char *p = v.ptr, *end = v.ptr + v.len;
  bool negative = p < end && *p == '-';
  if (negative) p++;
  if (p >= end) return false;
  int64_t magnitude = 0;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9') return false; /* a fraction, an exponent or not a number */
    int digit = *p - '0';
    if (magnitude > (INT64_MAX - digit) / 10) return false;
    magnitude = magnitude * 10 + digit;
  }
  *out = negative ? -magnitude : magnitude;
  return true;
}

char *json_string_dup(json_value v, size_t *len) {
  if (json_type_of(v) != JSON_STRING) return NULL;
  /* Decoding never lengthens: an escape of n bytes yields at most n - 2 bytes. */
  char *out = malloc(v.len);
  if (!out) return NULL;
  const char *p = v.ptr + 1, *end = v.ptr + v.len;
  size_t n = 0, k;
  while ((k = next_char(&p, end, out + n)) > 0) n += k;
  out[n] = '\0';
  *len = n;
  return out;
}

/* An array index token: "0" or digits without a leading zero, that fits a size_t. */
static bool parse_index(const char *tok, size_t len, size_t *out) {
  if (len == 0 || (len > 1 && tok[0] == '0')) return false;
  size_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (tok[i] < '0' || tok[i] > '9') return false;
    size_t digit = (size_t)(tok[i] - '0');
    if (v > (SIZE_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = v;
  return true;
}

bool json_pointer_valid(const char *ptr, size_t len) {
  if (len > 0 && ptr[0] != '/') return false;
  for (size_t i = 0; i < len; i++) {
    if (ptr[i] == '~' && (i + 1 >= len || (ptr[i + 1] != '0' && ptr[i + 1] != '1'))) return false;
  }
  return true;
}

json_pointer_result json_pointer(json_value doc, const char *ptr, size_t len, json_value *out) {
  if (!json_pointer_valid(ptr, len)) return JSON_POINTER_SYNTAX;
  json_value cur = doc;
  size_t i = 0;
  while (i < len) {
    const char *tok = ptr + i + 1;
    size_t tok_len = 0;
    while (i + 1 + tok_len < len && tok[tok_len] != '/') tok_len++;
    i += 1 + tok_len;
    json_value next;
    size_t index;
    bool found = json_type_of(cur) == JSON_ARRAY
                     ? parse_index(tok, tok_len, &index) && find_element(cur, index, &next)
                     : find_member(cur, tok, tok_len, true, &next);
    if (!found) return JSON_POINTER_MISSING;
    cur = next;
  }
  *out = cur;
  return JSON_POINTER_FOUND;
}
