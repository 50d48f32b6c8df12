/*
 * json_scan.h -- a small JSON toolkit for C plugins, shared by the examples. Header-only, no dependencies.
 * It lives next to heimdall_plugin.h (native/include); plugins-c/include/json_scan.h includes it from there.
 *
 * It is a scanner, not a parser: it builds no tree. A plugin looks up the few fields it cares about and copies
 * everything else through byte for byte. That is less code, it is fast, and it keeps every value the plugin does not
 * understand exactly as it was (numbers, key order, unknown fields).
 *
 * The host only hands plugins JSON that it has parsed successfully, so the scanner checks structure lightly. What it
 * never does, whatever the input, is read past the buffer: buffers are NOT NUL-terminated and every function takes
 * the length. Positions are byte offsets into the buffer; "not found / malformed" is JS_NONE.
 *
 *   reading:  js_skip_ws, js_peek, js_skip_value, js_iter_init/js_iter_next, js_find,
 *             js_string_decode, js_string_dup, js_string_eq, js_read_number
 *   writing:  js_buf with js_put, js_puts, js_put_string (quotes and escapes), js_put_compact, js_buf_output,
 *             js_put_with_member (an object with one member added), js_append_answer_text (streamed or whole)
 *   arrays:   js_first
 *   config:   js_check_keys
 */
#ifndef HEIMDALL_JSON_SCAN_H
#define HEIMDALL_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heimdall_plugin.h"

#define JS_NONE ((size_t)-1)

/* ------------------------------------------------------------------------------------------------------------- */
/* Reading                                                                                                        */
/* ------------------------------------------------------------------------------------------------------------- */

static inline int js_is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static inline size_t js_skip_ws(const uint8_t *s, size_t len, size_t i) {
  while (i < len && js_is_ws(s[i])) i++;
  return i;
}

/* The first byte of the value at i, which tells its type: '"', '{', '[', 't', 'f', 'n', '-' or a digit. 0 if none. */
static inline uint8_t js_peek(const uint8_t *s, size_t len, size_t i) {
  if (i == JS_NONE) return 0;
  i = js_skip_ws(s, len, i);
  return i < len ? s[i] : 0;
}

/* Past the closing quote of the string that opens at i. A backslash always takes the next byte with it, so an
 * escaped quote (\") never ends the string. */
static inline size_t js__skip_string(const uint8_t *s, size_t len, size_t i) {
  for (i++; i < len; i++) {
    if (s[i] == '\\')
      i++;
    else if (s[i] == '"')
      return i + 1;
  }
  return JS_NONE;
}

static inline int js__is_scalar_byte(uint8_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '+' ||
         c == '.';
}

/* Past the value (of any type) at i, or JS_NONE. Iterative, so deeply nested input cannot overflow the stack. */
static inline size_t js_skip_value(const uint8_t *s, size_t len, size_t i) {
  size_t depth = 0;
  if (i == JS_NONE) return JS_NONE;
  i = js_skip_ws(s, len, i);
  do {
    if (i >= len) return JS_NONE;
    uint8_t c = s[i];
    if (c == '"') {
      i = js__skip_string(s, len, i);
      if (i == JS_NONE) return JS_NONE;
    } else if (c == '{' || c == '[') {
      depth++, i++;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return JS_NONE;
      depth--, i++;
    } else if (depth > 0 && (c == ',' || c == ':' || js_is_ws(c))) {
      i++;
    } else if (js__is_scalar_byte(c)) {
      while (i < len && js__is_scalar_byte(s[i])) i++;
    } else {
      return JS_NONE;
    }
  } while (depth > 0);
  return i;
}

/* Walks the members of an object or the elements of an array:
 *
 *   js_iter it; size_t key, val;
 *   if (js_iter_init(&it, s, len, pos) != 0) ...not an object or array...
 *   while ((r = js_iter_next(&it, &key, &val)) == 1) { ... }    r is 0 at the end, -1 if malformed
 */
typedef struct {
  const uint8_t *s;
  size_t len;
  size_t pos;    /* where the next member starts (or the separator before it) */
  uint8_t close; /* '}' for an object, ']' for an array */
  int started;
} js_iter;

static inline int js_iter_init(js_iter *it, const uint8_t *s, size_t len, size_t i) {
  if (i == JS_NONE) return -1;
  i = js_skip_ws(s, len, i);
  if (i >= len || (s[i] != '{' && s[i] != '[')) return -1;
  it->s = s;
  it->len = len;
  it->pos = i + 1;
  it->close = s[i] == '{' ? '}' : ']';
  it->started = 0;
  return 0;
}

/* Sets *key to the key's opening quote (JS_NONE in an array) and *val to the value. Returns 1, 0 at the end, or -1. */
static inline int js_iter_next(js_iter *it, size_t *key, size_t *val) {
  const uint8_t *s = it->s;
  size_t len = it->len;
  size_t i = js_skip_ws(s, len, it->pos);
  if (i >= len) return -1;
  if (s[i] == it->close) return 0;
  if (it->started) {
    if (s[i] != ',') return -1;
    i = js_skip_ws(s, len, i + 1);
  }
  it->started = 1;
  *key = JS_NONE;
  if (it->close == '}') {
    if (i >= len || s[i] != '"') return -1;
    *key = i;
    i = js_skip_ws(s, len, js__skip_string(s, len, i));
    if (i >= len || s[i] != ':') return -1;
    i = js_skip_ws(s, len, i + 1);
  }
  *val = i;
  i = js_skip_value(s, len, i);
  if (i == JS_NONE) return -1;
  it->pos = i;
  return 1;
}

static inline int js__hex4(const uint8_t *s, size_t len, size_t i, uint32_t *out) {
  uint32_t v = 0;
  if (i > len || len - i < 4) return -1;
  for (size_t k = 0; k < 4; k++) {
    uint8_t c = s[i + k];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (uint32_t)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

static inline int js__utf8(uint32_t cp, uint8_t u[4]) {
  if (cp < 0x80) {
    u[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    u[0] = (uint8_t)(0xC0 | (cp >> 6));
    u[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    u[0] = (uint8_t)(0xE0 | (cp >> 12));
    u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  u[0] = (uint8_t)(0xF0 | (cp >> 18));
  u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  u[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

/* One character of a string body at *pi, decoded to 1-4 UTF-8 bytes in u. Returns the byte count, 0 at the closing
 * quote (consumed), -1 if malformed. A lone surrogate becomes U+FFFD, as in JavaScript's TextEncoder. */
static inline int js__char(const uint8_t *s, size_t len, size_t *pi, uint8_t u[4]) {
  size_t i = *pi;
  uint32_t cp, lo;
  if (i >= len) return -1;
  if (s[i] == '"') {
    *pi = i + 1;
    return 0;
  }
  if (s[i] != '\\') {
    u[0] = s[i];
    *pi = i + 1;
    return 1;
  }
  if (i + 1 >= len) return -1;
  *pi = i + 2;
  switch (s[i + 1]) {
    case '"': case '\\': case '/': u[0] = s[i + 1]; return 1;
    case 'b': u[0] = '\b'; return 1;
    case 'f': u[0] = '\f'; return 1;
    case 'n': u[0] = '\n'; return 1;
    case 'r': u[0] = '\r'; return 1;
    case 't': u[0] = '\t'; return 1;
    case 'u': break;
    default: return -1;
  }
  if (js__hex4(s, len, i + 2, &cp) != 0) return -1;
  i += 6;
  if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < len && s[i] == '\\' && s[i + 1] == 'u' &&
      js__hex4(s, len, i + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    i += 6;
  } else if (cp >= 0xD800 && cp < 0xE000) {
    cp = 0xFFFD;
  }
  *pi = i;
  return js__utf8(cp, u);
}

/* Decodes the string at i into dst (NULL to only check it) and sets *dst_len. Decoding never makes a string longer,
 * so dst needs at most as many bytes as the string's JSON text. Returns the position past the string, or JS_NONE. */
static inline size_t js_string_decode(const uint8_t *s, size_t len, size_t i, uint8_t *dst, size_t *dst_len) {
  size_t n = 0;
  uint8_t u[4];
  int k;
  if (i == JS_NONE) return JS_NONE;
  i = js_skip_ws(s, len, i);
  if (i >= len || s[i] != '"') return JS_NONE;
  i++;
  while ((k = js__char(s, len, &i, u)) > 0) {
    if (dst) memcpy(dst + n, u, (size_t)k);
    n += (size_t)k;
  }
  if (k < 0) return JS_NONE;
  if (dst_len) *dst_len = n;
  return i;
}

/* A malloc'd, NUL-terminated copy of the string at i; NULL if it is not a string (or out of memory). *out_len, if
 * not NULL, gets the length, which is the only safe one if the string contains \u0000. */
static inline char *js_string_dup(const uint8_t *s, size_t len, size_t i, size_t *out_len) {
  size_t end, n;
  if (js_peek(s, len, i) != '"') return NULL;
  i = js_skip_ws(s, len, i);
  end = js__skip_string(s, len, i);
  if (end == JS_NONE) return NULL;
  char *copy = (char *)malloc(end - i);  /* the JSON text with its quotes: room for the decoded bytes and a NUL */
  if (copy == NULL) return NULL;
  if (js_string_decode(s, len, i, (uint8_t *)copy, &n) == JS_NONE) {
    free(copy);
    return NULL;
  }
  copy[n] = '\0';
  if (out_len) *out_len = n;
  return copy;
}

/* Whether the string at i decodes to exactly `lit` (so "max_tokens" also matches "max\u005ftokens"). */
static inline int js_string_eq(const uint8_t *s, size_t len, size_t i, const char *lit) {
  size_t n = strlen(lit), at = 0;
  uint8_t u[4];
  int k;
  if (js_peek(s, len, i) != '"') return 0;
  i = js_skip_ws(s, len, i) + 1;
  while ((k = js__char(s, len, &i, u)) > 0) {
    if ((size_t)k > n - at || memcmp(lit + at, u, (size_t)k) != 0) return 0;
    at += (size_t)k;
  }
  return k == 0 && at == n;
}

/* The value of `key` in the object at obj, or JS_NONE if absent (or obj is not an object). If the key appears more
 * than once, the LAST one wins, as in JSON.parse: that is the value the host and the provider act on, so a check
 * made on the first one could be dodged by sending the key twice. */
static inline size_t js_find(const uint8_t *s, size_t len, size_t obj, const char *key) {
  js_iter it;
  size_t k, v, found = JS_NONE;
  if (js_peek(s, len, obj) != '{' || js_iter_init(&it, s, len, obj) != 0) return JS_NONE;
  while (js_iter_next(&it, &k, &v) == 1)
    if (js_string_eq(s, len, k, key)) found = v;
  return found;
}

/* Reads the JSON number at i. Returns 0, or -1 if there is none. Done by hand because strtod follows the process
 * locale (under a "de_DE" locale it would read 1.5 as 1) and the input is not NUL-terminated. Exact for integers up
 * to 2^53, which is all the plugins need (limits, status codes, counts). */
static inline int js_read_number(const uint8_t *s, size_t len, size_t i, double *out) {
  double m = 0, p = 1;
  int neg = 0, e10 = 0, exp = 0, eneg = 0;
  if (i == JS_NONE) return -1;
  i = js_skip_ws(s, len, i);
  if (i < len && s[i] == '-') neg = 1, i++;
  if (i >= len || s[i] < '0' || s[i] > '9') return -1;
  while (i < len && s[i] >= '0' && s[i] <= '9') m = m * 10 + (s[i++] - '0');
  if (i < len && s[i] == '.') {
    if (++i >= len || s[i] < '0' || s[i] > '9') return -1;
    while (i < len && s[i] >= '0' && s[i] <= '9') m = m * 10 + (s[i++] - '0'), e10--;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
    if (i >= len || s[i] < '0' || s[i] > '9') return -1;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      if (exp < 100000) exp = exp * 10 + (s[i] - '0');
      i++;
    }
  }
  if (i < len && js__is_scalar_byte(s[i])) return -1; /* "12abc" is not a number */
  e10 += eneg ? -exp : exp;
  if (e10 > 400) e10 = 400;
  if (e10 < -400) e10 = -400;
  for (int k = e10 < 0 ? -e10 : e10; k > 0; k--) p *= 10;
  if (m != 0) m = e10 < 0 ? m / p : m * p;
  *out = neg ? -m : m;
  return 0;
}

/* ------------------------------------------------------------------------------------------------------------- */
/* Writing                                                                                                        */
/* ------------------------------------------------------------------------------------------------------------- */

/* A growable output buffer. A failed allocation sets `failed` and turns later writes into no-ops, so a plugin can
 * write a whole document and check once, at the end (js_buf_output does). Start it as js_buf b = {0}. */
typedef struct {
  uint8_t *data;
  size_t len, cap;
  int failed;
} js_buf;

static inline void js_put(js_buf *b, const void *p, size_t n) {
  if (b->failed || n == 0) return;
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
      if (cap > SIZE_MAX / 2) {
        b->failed = 1;
        return;
      }
      cap *= 2;
    }
    uint8_t *d = (uint8_t *)realloc(b->data, cap);
    if (d == NULL) {
      b->failed = 1;
      return;
    }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static inline void js_puts(js_buf *b, const char *str) { js_put(b, str, strlen(str)); }

/* Writes n bytes of UTF-8 text as a JSON string: quoted, with quotes, backslashes and control characters escaped. */
static inline void js_put_string(js_buf *b, const void *text, size_t n) {
  const uint8_t *s = (const uint8_t *)text;
  size_t start = 0;
  char esc[8];
  js_put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    js_put(b, s + start, i - start);
    start = i + 1;
    if (c == '"' || c == '\\')
      snprintf(esc, sizeof esc, "\\%c", c);
    else if (c == '\n')
      snprintf(esc, sizeof esc, "\\n");
    else if (c == '\r')
      snprintf(esc, sizeof esc, "\\r");
    else if (c == '\t')
      snprintf(esc, sizeof esc, "\\t");
    else
      snprintf(esc, sizeof esc, "\\u%04x", c);
    js_puts(b, esc);
  }
  js_put(b, s + start, n - start);
  js_put(b, "\"", 1);
}

/* Copies JSON text minus the whitespace between tokens. Gives one canonical form for requests that differ only in
 * layout, and fits any document on one line (a JSON string cannot contain a raw newline). */
static inline void js_put_compact(js_buf *b, const uint8_t *s, size_t len) {
  size_t start = 0;
  int in_string = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = s[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = 0;
    } else if (c == '"') {
      in_string = 1;
    } else if (js_is_ws(c)) {
      js_put(b, s + start, i - start);
      start = i + 1;
    }
  }
  if (start < len) js_put(b, s + start, len - start);
}

static inline void js_buf_free(js_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* Hands the buffer to the host as a hook's output; the host releases it with heimdall_plugin_free (free). */
static inline int32_t js_buf_output(js_buf *b, heimdall_buf_t *out) {
  if (b->failed) {
    js_buf_free(b);
    return heimdall_fail(out, "out of memory");
  }
  out->data = b->data;
  out->len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return HEIMDALL_OK;
}

/* Writes the JSON object at s[obj] with one member added after the others: "key": value, where value is JSON text
 * written as is (use js_put_string's output, a number, another object...). Every other byte stays as it was.
 * Returns 0, or -1 when s[obj] is not an object (nothing is written then). */
static inline int js_put_with_member(js_buf *b, const uint8_t *s, size_t len, size_t obj, const char *key,
                                     const void *value, size_t value_len) {
  obj = js_skip_ws(s, len, obj);
  size_t end = js_skip_value(s, len, obj);
  if (js_peek(s, len, obj) != '{' || end == JS_NONE || s[end - 1] != '}') return -1;
  int empty = js_peek(s, len, obj + 1) == '}';
  js_put(b, s + obj, end - 1 - obj); /* all but the closing brace */
  if (!empty) js_put(b, ",", 1);
  js_put_string(b, key, strlen(key));
  js_put(b, ":", 1);
  js_put(b, value, value_len);
  js_put(b, "}", 1);
  return 0;
}

/* The first element of the array at s[arr], or JS_NONE when it is empty or not an array. */
static inline size_t js_first(const uint8_t *s, size_t len, size_t arr) {
  js_iter it;
  size_t k, v;
  if (js_peek(s, len, arr) != '[' || js_iter_init(&it, s, len, arr) != 0) return JS_NONE;
  return js_iter_next(&it, &k, &v) == 1 ? v : JS_NONE;
}

/* Appends text to the answer, whether it comes whole or streamed. doc is one of:
 *   - a chat.completion (PostHook's response): text is added to choices[0].message.content;
 *   - a chat.completion.chunk (StreamChunkHook's chunk): only the LAST chunk of the answer, the one whose
 *     choices[0].finish_reason is set, is changed: text is added to its delta.content (created when absent).
 * Writes the whole changed document to b and returns 1; returns 0, writing nothing, when doc is a chunk that is not
 * the last one or an answer with no text content (a tool call, content parts), and -1 when doc is not one of them.
 * See docs/writing-plugins.md, "Changing a streamed answer", for why the change must not be made twice. */
static inline int js_append_answer_text(js_buf *b, const uint8_t *s, size_t len, const char *text) {
  size_t choice = js_first(s, len, js_find(s, len, 0, "choices"));
  if (choice == JS_NONE) return -1;
  size_t message = js_find(s, len, choice, "message");
  size_t holder = message; /* the object whose "content" gets the text */
  if (message == JS_NONE) {
    size_t finish = js_find(s, len, choice, "finish_reason");
    holder = js_find(s, len, choice, "delta");
    if (holder == JS_NONE) return -1;
    if (finish == JS_NONE || js_peek(s, len, finish) == 'n') return 0; /* not the last chunk: null or absent */
  }
  size_t content = js_find(s, len, holder, "content");
  uint8_t c = js_peek(s, len, content);
  if (content != JS_NONE && c != '"' && (c != 'n' || message != JS_NONE)) return 0; /* parts, or a tool call */
  js_buf value = {0};
  size_t n = 0;
  char *old = (content != JS_NONE && c == '"') ? js_string_dup(s, len, content, &n) : NULL;
  if (content != JS_NONE && c == '"' && old == NULL) return -1;
  size_t tlen = strlen(text);
  char *joined = (char *)malloc(n + tlen + 1);
  if (joined == NULL) {
    free(old);
    b->failed = 1;
    return 1;
  }
  if (n > 0) memcpy(joined, old, n);
  memcpy(joined + n, text, tlen);
  free(old);
  js_put_string(&value, joined, n + tlen);
  free(joined);
  if (content != JS_NONE) { /* replace the old string (or null) in place */
    size_t end = js_skip_value(s, len, content);
    js_put(b, s, content);
    js_put(b, value.data, value.len);
    js_put(b, s + end, len - end);
  } else { /* a delta without content: {"content": "..."} added to it */
    size_t start = js_skip_ws(s, len, holder), end = js_skip_value(s, len, holder);
    js_put(b, s, start);
    js_put_with_member(b, s, len, start, "content", value.data, value.len);
    js_put(b, s + end, len - end);
  }
  b->failed |= value.failed;
  js_buf_free(&value);
  return 1;
}

/* ------------------------------------------------------------------------------------------------------------- */
/* Config validation                                                                                              */
/* ------------------------------------------------------------------------------------------------------------- */

/* Checks that the config is an object whose keys are all in `allowed` (NULL-terminated). Returns 0, or -1 with a
 * message in msg. Rejecting unknown keys turns a typo ("ttl" for "ttl_seconds") into a clear start-up error instead
 * of a setting that is silently ignored. */
static inline int js_check_keys(const uint8_t *s, size_t len, const char *const *allowed, char *msg, size_t cap) {
  js_iter it;
  size_t k, v;
  int r;
  if (js_peek(s, len, 0) != '{' || js_iter_init(&it, s, len, 0) != 0) {
    snprintf(msg, cap, "bad config: expected a JSON object");
    return -1;
  }
  while ((r = js_iter_next(&it, &k, &v)) == 1) {
    const char *const *a = allowed;
    while (*a && !js_string_eq(s, len, k, *a)) a++;
    if (*a == NULL) {
      char *name = js_string_dup(s, len, k, NULL);
      snprintf(msg, cap, "bad config: unknown key \"%s\"", name ? name : "?");
      free(name);
      return -1;
    }
  }
  if (r < 0) {
    snprintf(msg, cap, "bad config: malformed JSON");
    return -1;
  }
  return 0;
}

#endif /* HEIMDALL_JSON_SCAN_H */
