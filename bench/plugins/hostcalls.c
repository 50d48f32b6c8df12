/*
 * hostcalls.c -- the benchmark of the host services (ABI 1.2): PreHook makes CALLS calls of one host function,
 * chosen with bench_hostcalls_set (a benchmark-only export), so that bench/host.mjs can divide a hook's time by them.
 * Op 0 makes none: the hook's own cost, subtracted.
 */
#include "heimdall_plugin.h"

HEIMDALL_PLUGIN_DEFINE_ABI()
HEIMDALL_PLUGIN_DEFINE_HOST()

#define CALLS 100

static int op;
static uint64_t handle;
static uint32_t counter_id, histogram_id;

HEIMDALL_EXPORT const char *GetName(void) { return "hostcalls"; }
HEIMDALL_EXPORT void Cleanup(void) {}

HEIMDALL_EXPORT void bench_hostcalls_set(int which, uint64_t request) {
  op = which;
  handle = request;
}

HEIMDALL_EXPORT int32_t Init(const uint8_t *config, size_t len, heimdall_buf_t *out) {
  (void)config, (void)len;
  HEIMDALL_REQUIRE_HOST(out);
  if (heimdall_metric_define(HEIMDALL_METRIC_COUNTER, "bench_total", "bench", "route", NULL, 0, &counter_id) ||
      heimdall_metric_define(HEIMDALL_METRIC_HISTOGRAM, "bench_seconds", "bench", "", NULL, 0, &histogram_id))
    return heimdall_fail(out, "metric_define failed");
  heimdall_kv_set("k", 1, "a value of 32 bytes, about right.", 32, 0);
  return HEIMDALL_OK;
}

HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *req, size_t req_len,
                                heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len, (void)req, (void)req_len, (void)out;
  uint8_t buf[64];
  size_t len;
  int64_t n;
  int32_t bad = 0;
  for (int i = 0; i < CALLS; i++) {
    switch (op) {
      case 1: heimdall_log(handle, HEIMDALL_LOG_DEBUG, "a debug line the logger drops"); break;
      case 2: heimdall_log(handle, HEIMDALL_LOG_INFO, "an info line of about forty bytes, written"); break;
      case 3: bad |= heimdall_metric_record(counter_id, "/v1/chat/completions", 1); break;
      case 4: bad |= heimdall_metric_record(histogram_id, "", 0.012); break;
      case 5: bad |= heimdall_state_set(handle, "key", "value", 5); break;
      case 6: bad |= heimdall_state_get(handle, "key", buf, sizeof buf, &len); break;
      case 7: bad |= heimdall_kv_get("k", 1, buf, sizeof buf, &len); break;
      case 8: bad |= heimdall_kv_set("s", 1, "a value of 32 bytes, about right.", 32, 60000); break;
      case 9: bad |= heimdall_kv_incr("n", 1, 1, 60000, &n) == HEIMDALL_E_LIMIT; break;
      case 10: bad |= heimdall_kv_cas("c", 1, NULL, 0, "v", 1, 60000) == HEIMDALL_E_LIMIT; break;
      default: break;
    }
  }
  return bad == 0 ? HEIMDALL_OK : heimdall_fail(out, "a host call failed");
}
