/*
 * passthrough.c -- the benchmark's plugin: a PreHook and a PostHook that look at nothing and change nothing.
 *
 * Both return HEIMDALL_OK with an empty output ("continue unchanged"), so what the benchmark measures is the
 * gateway's own cost of calling a plugin, not the plugin's work. bench/run.mjs compiles it once per name
 * (-DBENCH_NAME="bench1", ...), because the gateway loads each file only once.
 */
#include "heimdall_plugin.h"

#ifndef BENCH_NAME
#define BENCH_NAME "bench"
#endif

HEIMDALL_PLUGIN_DEFINE_ABI()

HEIMDALL_EXPORT const char *GetName(void) { return BENCH_NAME; }

HEIMDALL_EXPORT void Cleanup(void) {}

HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *request, size_t request_len,
                                heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len, (void)request, (void)request_len, (void)out;
  return HEIMDALL_OK;
}

HEIMDALL_EXPORT int32_t PostHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *response, size_t response_len,
                                 const uint8_t *error, size_t error_len, heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len, (void)response, (void)response_len, (void)error, (void)error_len, (void)out;
  return HEIMDALL_OK;
}
