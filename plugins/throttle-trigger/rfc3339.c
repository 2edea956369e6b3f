/* The conversions declared in rfc3339.h, on the proleptic Gregorian calendar
 * (days <-> civil dates after Howard Hinnant's algorithms). */
#include "rfc3339.h"

/* Days since 1970-01-01 of the date y-m-d. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yoe + era * 400 + (*m <= 2);
}

static int64_t days_in_month(int64_t y, int64_t m) {
  static const int8_t days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits at s[*i] into *out. */
static bool digits(const char *s, size_t len, size_t *i, int n, int64_t *out) {
  if (len - *i < (size_t)n) return false;
  int64_t v = 0;
  for (int k = 0; k < n; k++) {
    char c = s[*i + k];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *i += (size_t)n;
  *out = v;
  return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c) {
  if (*i >= len || s[*i] != c) return false;
  (*i)++;
  return true;
}

bool rfc3339_parse(const char *s, size_t len, int64_t *unix_seconds) {
  size_t i = 0;
  int64_t year, month, day, hour, minute, second, offset = 0;
  if (!digits(s, len, &i, 4, &year) || !expect(s, len, &i, '-') ||
      !digits(s, len, &i, 2, &month) || !expect(s, len, &i, '-') ||
      !digits(s, len, &i, 2, &day) || i >= len) {
    return false;
  }
  if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return false;
  i++;
  if (!digits(s, len, &i, 2, &hour) || !expect(s, len, &i, ':') ||
      !digits(s, len, &i, 2, &minute) || !expect(s, len, &i, ':') ||
      !digits(s, len, &i, 2, &second)) {
    return false;
  }
  if (i < len && s[i] == '.') {
    size_t start = ++i;
    while (i < len && s[i] >= '0' && s[i] <= '9') i++;
    if (i == start) return false;
  }
  if (i >= len) return false;
  if (s[i] == 'Z' || s[i] == 'z') {
    i++;
  } else if (s[i] == '+' || s[i] == '-') {
    int64_t sign = s[i++] == '-' ? -1 : 1, off_hour, off_minute;
    if (!digits(s, len, &i, 2, &off_hour) || !expect(s, len, &i, ':') ||
        !digits(s, len, &i, 2, &off_minute) || off_hour > 23 || off_minute > 59) {
      return false;
    }
    offset = sign * (off_hour * 3600 + off_minute * 60);
  } else {
    return false;
  }
  if (i != len || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
      hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  *unix_seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                  second - offset;
  return true;
}

/* Writes v (>= 0) with at least `width` digits at buf[*n]. */
static void put_number(char *buf, size_t *n, int64_t v, int width) {
  char tmp[20];
  int k = 0;
  do {
    tmp[k++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (k < width) tmp[k++] = '0';
  while (k > 0) buf[(*n)++] = tmp[--k];
}

size_t rfc3339_format_utc(int64_t unix_seconds, char buf[RFC3339_BUF]) {
  int64_t days = unix_seconds / 86400, secs = unix_seconds % 86400;
  if (secs < 0) {
    secs += 86400;
    days--;
  }
  int64_t y, m, d;
  civil_from_days(days, &y, &m, &d);
  size_t n = 0;
  if (y < 0) {
    buf[n++] = '-';
    y = -y;
  }
  put_number(buf, &n, y, 4);
  buf[n++] = '-';
  put_number(buf, &n, m, 2);
  buf[n++] = '-';
  put_number(buf, &n, d, 2);
  buf[n++] = 'T';
  put_number(buf, &n, secs / 3600, 2);
  buf[n++] = ':';
  put_number(buf, &n, secs / 60 % 60, 2);
  buf[n++] = ':';
  put_number(buf, &n, secs % 60, 2);
  buf[n++] = 'Z';
  buf[n] = '\0';
  return n;
}
