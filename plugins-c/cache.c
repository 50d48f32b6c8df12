/*
 * cache.c -- answer repeated requests from the gateway's shared store, without calling the provider.
 *
 * PreHook looks the request up in the shared key-value store (host services, ABI 1.2). On a hit it short-circuits
 * with the stored response; on a miss it keeps the request in its per-request state, and PostHook, which runs for
 * the same request after the provider answered, stores request and response under the request's key with a TTL.
 * Streamed requests are cached too: their PostHook receives the assembled response.
 *
 * Because the store is the gateway's, a response cached by one worker process answers the same request on every
 * other worker, and with host.kv.backend "redis" on every gateway instance pointing at the same Redis.
 *
 * config: {"ttl_seconds": 60}     optional; the default. ("max_entries" is accepted from older configs and no longer
 *                                 used: the store is bounded by the gateway's host.kv.max_keys.)
 *
 * An entry (request + response) larger than the store's value limit (host.kv.max_value_bytes, 64 KiB by default) is
 * simply not cached.
 */
#include <stdio.h>

#include "heimdall_plugin.h"
#include "json_scan.h"

HEIMDALL_PLUGIN_DEFINE_ABI()
HEIMDALL_PLUGIN_DEFINE_HOST()

static uint64_t ttl_ms;

HEIMDALL_EXPORT const char *GetName(void) { return "cache"; }
HEIMDALL_EXPORT void Cleanup(void) {} /* the store is the gateway's: nothing of ours to release */

HEIMDALL_EXPORT int32_t Init(const uint8_t *config, size_t config_len, heimdall_buf_t *out) {
  HEIMDALL_REQUIRE_HOST(out);
  static const char *const keys[] = {"ttl_seconds", "max_entries", NULL};
  char msg[200];
  double ttl = 60, max = 256;
  if (js_check_keys(config, config_len, keys, msg, sizeof msg) != 0) return heimdall_fail(out, msg);
  size_t at = js_find(config, config_len, 0, "ttl_seconds");
  if (at != JS_NONE && (js_read_number(config, config_len, at, &ttl) != 0 || !(ttl > 0)))
    return heimdall_fail(out, "bad config: \"ttl_seconds\" must be a number greater than 0");
  at = js_find(config, config_len, 0, "max_entries");
  if (at != JS_NONE && (js_read_number(config, config_len, at, &max) != 0 || max < 1))
    return heimdall_fail(out, "bad config: \"max_entries\" must be a number of at least 1");
  ttl_ms = (uint64_t)(ttl * 1000);
  if (ttl_ms == 0) ttl_ms = 1;
  return HEIMDALL_OK;
}

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

/* An entry in the store: u32 request length (little-endian), the request, the response. */
static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* kv_get into a buffer of the right size: a first try on the stack, then one of the length the store reported. */
static uint8_t *load(const char *key, uint8_t *stack, size_t cap, size_t *len) {
  if (heimdall_kv_get(key, strlen(key), stack, cap, len) != HEIMDALL_OK) return NULL;
  if (*len <= cap) return stack;
  size_t want = *len;
  uint8_t *heap = (uint8_t *)malloc(want);
  if (heap == NULL) return NULL;
  if (heimdall_kv_get(key, strlen(key), heap, want, len) != HEIMDALL_OK || *len > want) { /* changed meanwhile */
    free(heap);
    return NULL;
  }
  return heap;
}

HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *req, size_t req_len,
                                heimdall_buf_t *out) {
  uint64_t request = heimdall_request(ctx, ctx_len);
  /* Requests that differ only in whitespace are the same request. Key order or escapes still make different keys:
   * that costs a miss, never a wrong answer. */
  js_buf canonical = {0};
  js_put_compact(&canonical, req, req_len);
  if (canonical.failed) {
    js_buf_free(&canonical);
    return heimdall_fail(out, "out of memory");
  }
  char key[32];
  snprintf(key, sizeof key, "resp:%016llx", (unsigned long long)fnv1a64(canonical.data, canonical.len));

  uint8_t stack[16 * 1024];
  size_t len = 0;
  uint8_t *entry = load(key, stack, sizeof stack, &len);
  /* FNV-1a is fast but not collision-resistant: anyone can craft a request with the same key as a popular one.
   * Comparing the stored request with this one keeps such a request from getting (or poisoning) another's answer. */
  if (entry != NULL && len >= 4) {
    uint32_t request_len = get_u32(entry);
    if ((size_t)request_len <= len - 4 && request_len == canonical.len &&
        memcmp(entry + 4, canonical.data, canonical.len) == 0 && len - 4 - request_len > 0) {
      js_buf b = {0};
      js_puts(&b, "{\"response\":");
      js_put(&b, entry + 4 + request_len, len - 4 - request_len);
      js_puts(&b, ",\"context\":{\"cache\":\"hit\"}}");
      if (entry != stack) free(entry);
      js_buf_free(&canonical);
      return js_buf_output(&b, out);
    }
  }
  if (entry != NULL && entry != stack) free(entry);

  /* A miss: PostHook stores the answer. It finds key and request in this request's state, which the gateway frees
   * when the request ends. (No state for a hit: our own PostHook runs after the short-circuit too, and must not store
   * the response it is being handed back.) Too large for the state: not cached. */
  if (heimdall_state_set(request, "key", key, strlen(key)) == HEIMDALL_OK &&
      heimdall_state_set(request, "request", canonical.data, canonical.len) != HEIMDALL_OK) {
    heimdall_state_set(request, "key", NULL, 0);
  }
  js_buf_free(&canonical);
  return HEIMDALL_OK;
}

HEIMDALL_EXPORT int32_t PostHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *resp, size_t resp_len,
                                 const uint8_t *error, size_t error_len, heimdall_buf_t *out) {
  (void)error, (void)error_len, (void)out;
  /* Only answers are worth replaying; an error is left to be retried. */
  if (resp_len == 0) return HEIMDALL_OK;
  uint64_t request = heimdall_request(ctx, ctx_len);
  char key[32];
  size_t key_len = 0, request_len = 0;
  if (heimdall_state_get(request, "key", key, sizeof key - 1, &key_len) != HEIMDALL_OK || key_len >= sizeof key) {
    return HEIMDALL_OK; /* a hit, or a request we did not keep */
  }
  key[key_len] = '\0';
  if (heimdall_state_get(request, "request", NULL, 0, &request_len) != HEIMDALL_OK) return HEIMDALL_OK;
  size_t total = 4 + request_len + resp_len;
  uint8_t *entry = (uint8_t *)malloc(total);
  if (entry == NULL) return heimdall_fail(out, "out of memory");
  entry[0] = (uint8_t)request_len, entry[1] = (uint8_t)(request_len >> 8);
  entry[2] = (uint8_t)(request_len >> 16), entry[3] = (uint8_t)(request_len >> 24);
  size_t got = 0;
  heimdall_state_get(request, "request", entry + 4, request_len, &got);
  memcpy(entry + 4 + request_len, resp, resp_len);
  /* Refused (too large for the store, its backlog full): the next request misses again, which is only slower. */
  heimdall_kv_set(key, key_len, entry, total, ttl_ms);
  free(entry);
  return HEIMDALL_OK; /* empty output: the response goes on unchanged */
}
