/* RFC 3339 timestamps <-> Unix seconds, without a clock or the C library's time zone code. */
#ifndef THROTTLE_RFC3339_H
#define THROTTLE_RFC3339_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for any formatted timestamp, NUL included ("-292277022657-01-27T08:29:52Z"). */
#define RFC3339_BUF 32

/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)" into Unix seconds; the
 * fractional part is dropped (rounding toward the past). */
bool rfc3339_parse(const char *s, size_t len, int64_t *unix_seconds);

/* Writes `unix_seconds` as "YYYY-MM-DDTHH:MM:SSZ" (NUL-terminated); returns its length. */
size_t rfc3339_format_utc(int64_t unix_seconds, char buf[RFC3339_BUF]);

#endif
