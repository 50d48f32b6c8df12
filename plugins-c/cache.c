/*
 * cache.c -- answer repeated requests from memory, without calling the provider.
 *
 * PreHook looks the request up. On a fresh hit it short-circuits with the stored response; on a miss it records the
 * request's key in the context ("cache_key"), and PostHook, which sees the same context after the provider answered,
 * stores the response under that key. The context is how a PreHook hands something to its own PostHook.
 * Streamed requests are cached too: their PostHook receives the assembled response.
 *
 * config: {"ttl_seconds": 60, "max_entries": 256}     both optional; these are the defaults
 *
 * Memory is bounded by entry count, not bytes: each entry holds one request and one response.
 */
#include <time.h>

#include "heimdall_plugin.h"
#include "json_scan.h"

HEIMDALL_PLUGIN_DEFINE_ABI()

typedef struct {
  uint64_t key;           /* FNV-1a of the request, whitespace removed; 0 = free slot */
  uint8_t *request;       /* that request, to tell a real hit from a hash collision */
  size_t request_len;
  uint8_t *response;      /* NULL until a PostHook stores one */
  size_t response_len;
  double stored_at;       /* seconds, monotonic clock */
} entry;

#define MAX_ENTRIES 10000

static double ttl_seconds;
static size_t max_entries;
static entry *entries;
static size_t next_slot; /* entries is a ring: the next insert evicts the oldest entry */

/* No locking: an ABI v1 host never calls a plugin's functions concurrently. */

HEIMDALL_EXPORT const char *GetName(void) { return "cache"; }

static void clear(entry *e) {
  free(e->request);
  free(e->response);
  memset(e, 0, sizeof *e);
}

HEIMDALL_EXPORT void Cleanup(void) {
  for (size_t i = 0; entries != NULL && i < max_entries; i++) clear(&entries[i]);
  free(entries);
  entries = NULL;
  max_entries = next_slot = 0;
}

/* Monotonic, so a wall-clock change (NTP, DST, an operator) cannot make entries immortal or expire them all. */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h ? h : 1; /* 0 marks a free slot */
}

/* A linear scan: simple, and over at most MAX_ENTRIES keys a matter of microseconds. A bigger cache would want a hash
 * index here, or a cache server. */
static entry *lookup(uint64_t key) {
  for (size_t i = 0; i < max_entries; i++)
    if (entries[i].key == key) return &entries[i];
  return NULL;
}

HEIMDALL_EXPORT int32_t Init(const uint8_t *config, size_t config_len, heimdall_buf_t *out) {
  static const char *const keys[] = {"ttl_seconds", "max_entries", NULL};
  char msg[200];
  double ttl = 60, max = 256;
  if (js_check_keys(config, config_len, keys, msg, sizeof msg) != 0) return heimdall_fail(out, msg);

  size_t at = js_find(config, config_len, 0, "ttl_seconds");
  if (at != JS_NONE && (js_read_number(config, config_len, at, &ttl) != 0 || !(ttl > 0)))
    return heimdall_fail(out, "bad config: \"ttl_seconds\" must be a number greater than 0");
  at = js_find(config, config_len, 0, "max_entries");
  if (at != JS_NONE &&
      (js_read_number(config, config_len, at, &max) != 0 || max < 1 || max > MAX_ENTRIES ||
       max != (double)(size_t)max))
    return heimdall_fail(out, "bad config: \"max_entries\" must be an integer from 1 to 10000");

  entries = (entry *)calloc((size_t)max, sizeof *entries);
  if (entries == NULL) return heimdall_fail(out, "out of memory");
  ttl_seconds = ttl;
  max_entries = (size_t)max;
  next_slot = 0;
  return HEIMDALL_OK;
}

HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *req, size_t req_len,
                                heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len;
  if (entries == NULL) return HEIMDALL_OK; /* not initialised */
  /* Requests that differ only in whitespace are the same request. Key order or escapes still make different keys:
   * that costs a miss, never a wrong answer. */
  js_buf canonical = {0};
  js_put_compact(&canonical, req, req_len);
  if (canonical.failed) {
    js_buf_free(&canonical);
    return heimdall_fail(out, "out of memory");
  }
  uint64_t key = fnv1a64(canonical.data, canonical.len);
  entry *e = lookup(key);

  /* FNV-1a is fast but not collision-resistant: anyone can craft a request with the same key as a popular one.
   * Comparing the request itself keeps such a request from poisoning the answer others get. It is not cached. */
  if (e != NULL && (e->request_len != canonical.len ||
                    (canonical.len > 0 && memcmp(e->request, canonical.data, canonical.len) != 0))) {
    js_buf_free(&canonical);
    return HEIMDALL_OK;
  }

  js_buf b = {0};
  if (e != NULL && e->response != NULL && now() - e->stored_at < ttl_seconds) {
    js_buf_free(&canonical);
    /* No cache_key in the context: our own PostHook runs after this short-circuit too, and must not store the
     * response it is being handed back. */
    js_puts(&b, "{\"response\":");
    js_put(&b, e->response, e->response_len);
    js_puts(&b, ",\"context\":{\"cache\":\"hit\"}}");
    return js_buf_output(&b, out);
  }

  if (e == NULL) { /* first sight of this request: claim the oldest slot now, PostHook fills in the response */
    e = &entries[next_slot];
    next_slot = (next_slot + 1) % max_entries;
    clear(e);
    e->key = key;
    e->request = canonical.data; /* the entry owns it from here */
    e->request_len = canonical.len;
    canonical.data = NULL;
  }
  js_buf_free(&canonical);

  char action[64];
  snprintf(action, sizeof action, "{\"context\":{\"cache_key\":\"%016llx\"}}", (unsigned long long)key);
  js_puts(&b, action);
  return js_buf_output(&b, out);
}

/* The key PreHook left in the context: {"values": {"cache_key": "<16 hex digits>"}}. 0 if there is none. */
static uint64_t key_from_context(const uint8_t *ctx, size_t ctx_len) {
  size_t v = js_find(ctx, ctx_len, js_find(ctx, ctx_len, 0, "values"), "cache_key");
  uint8_t hex[16];
  size_t n = 0;
  uint64_t key = 0;
  if (js_peek(ctx, ctx_len, v) != '"' || js_skip_value(ctx, ctx_len, v) - v != 18) return 0; /* "..." is 18 bytes */
  js_string_decode(ctx, ctx_len, v, hex, &n);
  for (size_t i = 0; i < n; i++) {
    uint8_t c = hex[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    key = key << 4 | (uint64_t)d;
  }
  return key;
}

HEIMDALL_EXPORT int32_t PostHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *resp, size_t resp_len,
                                 const uint8_t *error, size_t error_len, heimdall_buf_t *out) {
  (void)error, (void)error_len;
  /* Only answers are worth replaying; an error is left to be retried. */
  uint64_t key = resp_len > 0 ? key_from_context(ctx, ctx_len) : 0;
  entry *e = key ? lookup(key) : NULL;
  if (e == NULL) return HEIMDALL_OK; /* a hit, an uncacheable request, or evicted while the provider worked */

  uint8_t *copy = (uint8_t *)malloc(resp_len); /* the host's buffer is gone once we return */
  if (copy == NULL) return heimdall_fail(out, "out of memory");
  memcpy(copy, resp, resp_len);
  free(e->response);
  e->response = copy;
  e->response_len = resp_len;
  e->stored_at = now();
  return HEIMDALL_OK; /* empty output: the response goes on unchanged */
}
