/* A small JSON reader and writer for plugins: see json.h. */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- validation ---- */

typedef struct {
  const unsigned char *p, *end;
} cursor;

static void skip_space(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
    c->p++;
  }
}

static bool literal(cursor *c, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return false;
  c->p += n;
  return true;
}

static int hex_digit(unsigned char h) {
  if (h >= '0' && h <= '9') return h - '0';
  if (h >= 'a' && h <= 'f') return h - 'a' + 10;
  if (h >= 'A' && h <= 'F') return h - 'A' + 10;
  return -1;
}

/* Reads the 4 hex digits after "\u"; -1 if they are not there. */
static long hex4(const unsigned char *p, const unsigned char *end) {
  if (end - p < 4) return -1;
  long v = 0;
  for (int i = 0; i < 4; i++) {
    int d = hex_digit(p[i]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* Length of the well-formed UTF-8 sequence at p (1-4), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
  unsigned char b = p[0];
  size_t n;
  uint32_t cp;
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b < 0xe0) n = 2, cp = b & 0x1f;
  else if (b >= 0xe0 && b < 0xf0) n = 3, cp = b & 0x0f;
  else if (b >= 0xf0 && b < 0xf5) n = 4, cp = b & 0x07;
  else return 0;
  if ((size_t)(end - p) < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return n;
}

static bool string_(cursor *c) {
  c->p++; /* the opening quote */
  while (c->p < c->end) {
    unsigned char ch = *c->p;
    if (ch == '"') {
      c->p++;
      return true;
    }
    if (ch < 0x20) return false;
    if (ch == '\\') {
      if (c->end - c->p < 2) return false;
      unsigned char e = c->p[1];
      if (e == 'u') {
        long u = hex4(c->p + 2, c->end);
        if (u < 0 || (u >= 0xdc00 && u <= 0xdfff)) return false; /* bad, or a lone low surrogate */
        c->p += 6;
        if (u >= 0xd800 && u <= 0xdbff) { /* a high surrogate needs its low half */
          if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u') return false;
          long lo = hex4(c->p + 2, c->end);
          if (lo < 0xdc00 || lo > 0xdfff) return false;
          c->p += 6;
        }
      } else if (e != '\0' && strchr("\"\\/bfnrt", e)) {
        c->p += 2;
      } else {
        return false;
      }
      continue;
    }
    size_t n = utf8_len(c->p, c->end);
    if (n == 0) return false;
    c->p += n;
  }
  return false;
}

static bool digits(cursor *c) {
  const unsigned char *start = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
  return c->p > start;
}

static bool number(cursor *c) {
  if (*c->p == '-') c->p++;
  if (c->p < c->end && *c->p == '0') {
    c->p++;
  } else if (!digits(c)) {
    return false;
  }
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    if (!digits(c)) return false;
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
    if (!digits(c)) return false;
  }
  return true;
}

static bool value(cursor *c, int depth) {
  skip_space(c);
  if (c->p >= c->end) return false;
  switch (*c->p) {
    case '"':
      return string_(c);
    case 't':
      return literal(c, "true");
    case 'f':
      return literal(c, "false");
    case 'n':
      return literal(c, "null");
    case '[':
    case '{': {
      bool object = *c->p == '{';
      unsigned char close = object ? '}' : ']';
      if (depth >= JSON_MAX_DEPTH) return false;
      c->p++;
      skip_space(c);
      if (c->p < c->end && *c->p == close) {
        c->p++;
        return true;
      }
      for (;;) {
        if (object) {
          skip_space(c);
          if (c->p >= c->end || *c->p != '"' || !string_(c)) return false;
          skip_space(c);
          if (c->p >= c->end || *c->p != ':') return false;
          c->p++;
        }
        if (!value(c, depth + 1)) return false;
        skip_space(c);
        if (c->p >= c->end) return false;
        if (*c->p == close) {
          c->p++;
          return true;
        }
        if (*c->p != ',') return false;
        c->p++;
      }
    }
    default:
      return number(c);
  }
}

bool json_parse(const char *text, size_t len, json_value *out) {
  cursor c = {(const unsigned char *)text, (const unsigned char *)text + len};
  skip_space(&c);
  const unsigned char *start = c.p;
  if (!value(&c, 0)) return false;
  const unsigned char *stop = c.p;
  skip_space(&c);
  if (c.p != c.end) return false;
  *out = (json_value){(const char *)start, (size_t)(stop - start)};
  return true;
}

bool json_is_object(json_value v) { return v.len > 0 && v.ptr[0] == '{'; }
bool json_is_string(json_value v) { return v.len > 0 && v.ptr[0] == '"'; }
bool json_is_null(json_value v) { return v.len == 4 && memcmp(v.ptr, "null", 4) == 0; }

/* ---- walking a validated document ---- */

/* The end of the (valid) value that starts at p. */
static const char *skip_value(const char *p, const char *end) {
  cursor c = {(const unsigned char *)p, (const unsigned char *)end};
  value(&c, 0);
  return (const char *)c.p;
}

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

bool json_member(json_value obj, const char *key, json_value *out) {
  if (!json_is_object(obj)) return false;
  const char *p = obj.ptr + 1, *end = obj.ptr + obj.len;
  size_t key_len = strlen(key);
  for (;;) {
    p = skip_ws(p, end);
    if (p >= end || *p != '"') return false; /* '}' : no (more) members */
    const char *name_end = skip_value(p, end);
    size_t name_len;
    char *name = json_string_dup((json_value){p, (size_t)(name_end - p)}, &name_len);
    if (!name) return false;
    bool match = name_len == key_len && memcmp(name, key, key_len) == 0;
    free(name);
    p = skip_ws(name_end, end) + 1; /* past ':' */
    p = skip_ws(p, end);
    const char *value_end = skip_value(p, end);
    if (match) {
      *out = (json_value){p, (size_t)(value_end - p)};
      return true;
    }
    p = skip_ws(value_end, end);
    if (p >= end || *p != ',') return false;
    p++;
  }
}

static void put_utf8(char **q, uint32_t cp) {
  unsigned char *o = (unsigned char *)*q;
  if (cp < 0x80) {
    *o++ = (unsigned char)cp;
  } else if (cp < 0x800) {
    *o++ = (unsigned char)(0xc0 | (cp >> 6));
    *o++ = (unsigned char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *o++ = (unsigned char)(0xe0 | (cp >> 12));
    *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    *o++ = (unsigned char)(0x80 | (cp & 0x3f));
  } else {
    *o++ = (unsigned char)(0xf0 | (cp >> 18));
    *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    *o++ = (unsigned char)(0x80 | (cp & 0x3f));
  }
  *q = (char *)o;
}

char *json_string_dup(json_value v, size_t *len) {
  if (!json_is_string(v) || v.len < 2) return NULL;
  /* Decoding never makes a string longer: "\uXXXX" (6 bytes) is at most 3 bytes of
   * UTF-8, a surrogate pair (12 bytes) is 4. */
  char *out = malloc(v.len - 1);
  if (!out) return NULL;
  const char *p = v.ptr + 1, *end = v.ptr + v.len - 1;
  char *q = out;
  while (p < end) {
    if (*p != '\\') {
      *q++ = *p++;
      continue;
    }
    char e = p[1];
    p += 2;
    switch (e) {
      case 'b': *q++ = '\b'; break;
      case 'f': *q++ = '\f'; break;
      case 'n': *q++ = '\n'; break;
      case 'r': *q++ = '\r'; break;
      case 't': *q++ = '\t'; break;
      case 'u': {
        uint32_t cp = (uint32_t)hex4((const unsigned char *)p, (const unsigned char *)end);
        p += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) { /* validated: a low surrogate follows */
          uint32_t lo = (uint32_t)hex4((const unsigned char *)p + 2, (const unsigned char *)end);
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          p += 6;
        }
        put_utf8(&q, cp);
        break;
      }
      default: *q++ = e; /* '"', '\\' or '/' */
    }
  }
  *q = '\0';
  *len = (size_t)(q - out);
  return out;
}

/* ---- writing ---- */

void buf_append(buf_t *b, const void *s, size_t n) {
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

void buf_puts(buf_t *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_json_string(buf_t *b, const char *s, size_t n) {
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
