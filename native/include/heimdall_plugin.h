/*
 * heimdall_plugin.h -- the Heimdall plugin ABI, version 1.1.
 *
 * This header is the whole contract between the Heimdall gateway (the host) and a plugin (a shared object: .so on
 * Linux, .dylib on macOS). Any language that can export C symbols can implement it: C, C++, Go (cgo, c-shared),
 * Rust (cdylib), Zig, ...
 *
 * ---------------------------------------------------------------------------------------------------------------
 * THE SHAPE OF IT
 * ---------------------------------------------------------------------------------------------------------------
 *
 *   Required exports            Optional exports (a missing hook is skipped, at no cost)
 *   ------------------------    --------------------------------------------------------
 *   heimdall_plugin_abi_version Init                  once, after load, with the plugin's config
 *   heimdall_plugin_free        TransportInterceptor  per HTTP request, before the body is parsed
 *   GetName                     PreHook               per request, before the provider call
 *   Cleanup                     PostHook              per request, after the provider call (or short-circuit)
 *                               StreamChunkHook       per streamed chunk
 *                               heimdall_plugin_concurrency   (1.1) how many calls the plugin may take at once
 *
 * Order of calls for one request, with plugins A, B, C registered in that order:
 *
 *   A.TransportInterceptor, B.TransportInterceptor, C.TransportInterceptor      (HTTP only)
 *   A.PreHook, B.PreHook, C.PreHook                                             (any may short-circuit)
 *   provider call                                                               (skipped on short-circuit)
 *   C.StreamChunkHook, B.StreamChunkHook, A.StreamChunkHook   per chunk         (streaming only)
 *   C.PostHook, B.PostHook, A.PostHook                                          (reverse order)
 *
 * Symmetry: PostHook and StreamChunkHook run only for the plugins the PreHook pass reached (whether or not they
 * export PreHook, and even if their PreHook failed). If B short-circuits, C.PreHook never runs, and the PostHooks that
 * run are B's and A's, in that order. B's own PostHook does run, and sees its own short-circuit result.
 *
 * Data crosses the boundary as UTF-8 JSON, in (pointer, length) buffers. Buffers are NEVER NUL-terminated: always
 * use the length. JSON uses snake_case names; requests and responses use the OpenAI chat-completions shape.
 *
 * ---------------------------------------------------------------------------------------------------------------
 * STATUS CODES AND OUTPUT
 * ---------------------------------------------------------------------------------------------------------------
 *
 * Every hook returns an int32_t status and receives `out`, a pointer to a heimdall_buf_t that the host has zeroed.
 *
 *   status == HEIMDALL_OK, out left empty  -> "continue unchanged". The host parses nothing. This is the fast path:
 *                                             a hook that only observes should always take it.
 *   status == HEIMDALL_OK, out filled      -> out holds a JSON "action" object (shapes below, per hook).
 *   status != HEIMDALL_OK                  -> the plugin failed. out may hold a UTF-8 message (plain text, not
 *                                             JSON). The host logs it under the plugin's name and goes on as the
 *                                             entry's "on_error" policy says: "continue" (the default) as if this
 *                                             hook had not run; "fail" answers the request 503, naming the plugin.
 *
 * Output that is not valid JSON, or JSON of the wrong shape, is treated exactly like a failure status.
 *
 * To fail a REQUEST on purpose (validation, rate limiting, ...), return HEIMDALL_OK with an {"error": ...} action.
 *
 * ---------------------------------------------------------------------------------------------------------------
 * MEMORY OWNERSHIP
 * ---------------------------------------------------------------------------------------------------------------
 *
 *  - Input buffers belong to the host. They are valid only until the function returns. Copy what you keep.
 *  - Output buffers are allocated by the plugin, with any allocator. The host copies the bytes right after the
 *    function returns, then calls heimdall_plugin_free(data, len) exactly once for every non-NULL out->data, not
 *    necessarily from the thread that made the call (any allocator whose free works across threads is fine). The plugin must not touch the buffer after handing it over.
 *  - The string returned by GetName belongs to the plugin and must stay valid until Cleanup returns.
 *
 * ---------------------------------------------------------------------------------------------------------------
 * THREADS
 * ---------------------------------------------------------------------------------------------------------------
 *
 * The host calls a plugin's functions one at a time, never concurrently, unless the plugin exports
 * heimdall_plugin_concurrency (ABI 1.1) and returns more than 1. Calls do not always come from the same OS thread.
 * Plugins written in runtimes with their own threads (Go, Rust) must be safe to enter from any thread; shared state
 * behind a mutex is the simple, correct choice.
 *
 * Where a call runs depends on the plugin's execution mode, chosen by the operator in config.json ("mode"); the
 * plugin is the same file in every mode:
 *   inline    on the gateway's event loop. The fastest call, but a hook that blocks (disk, network) delays every
 *             request, there is no deadline, and a crash takes the gateway down. For small, trusted, pure code.
 *   threaded  on a worker thread: the event loop stays free while the hook works, so blocking I/O is fine. Each
 *             call has a deadline; a call past it fails the hook (the thread is only free again when the call
 *             returns). Concurrent calls only as heimdall_plugin_concurrency allows.
 *   isolated  in a child process of the gateway that loads this same file. A crash, abort, runaway loop or memory
 *             past the configured cap kills only that child; the gateway restarts it (Init runs again there).
 * In every mode Init, GetName and Cleanup are called on one thread, never concurrently with a hook.
 *
 * ---------------------------------------------------------------------------------------------------------------
 * VERSIONING
 * ---------------------------------------------------------------------------------------------------------------
 *
 * heimdall_plugin_abi_version() returns HEIMDALL_ABI_VERSION as it was when the plugin was compiled:
 * (major << 16) | minor. The host checks it BEFORE calling any other plugin function:
 *   - a different major version is refused, and the error names both versions;
 *   - a higher minor version than the host's loads, with a warning (minor versions only add optional exports, so
 *     the plugin works; the exports the host does not know are never called);
 *   - a lower or equal minor version loads.
 * Within a major version, input JSON may gain fields: ignore the fields you don't know. Output shapes only grow
 * with a minor version, and a host accepts exactly the output shapes of its own version.
 */
#ifndef HEIMDALL_PLUGIN_H
#define HEIMDALL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HEIMDALL_ABI_VERSION_MAJOR 1
#define HEIMDALL_ABI_VERSION_MINOR 1
#define HEIMDALL_ABI_VERSION ((uint32_t)((HEIMDALL_ABI_VERSION_MAJOR << 16) | HEIMDALL_ABI_VERSION_MINOR))

/* Status codes returned by Init and every hook. Any non-zero value is a failure; HEIMDALL_ERROR is the usual one. */
#define HEIMDALL_OK 0
#define HEIMDALL_ERROR 1

/* Marks a function as exported from the shared object, whatever -fvisibility the build uses. */
#if defined(__GNUC__) || defined(__clang__)
#define HEIMDALL_EXPORT __attribute__((visibility("default")))
#else
#define HEIMDALL_EXPORT
#endif

/*
 * An output buffer: `len` bytes at `data`. The host zeroes it before each call; a plugin fills it to hand back
 * data. OWNERSHIP: data is allocated by the plugin and released by the host through heimdall_plugin_free.
 */
typedef struct heimdall_buf {
  uint8_t *data;
  size_t len;
} heimdall_buf_t;

/* ============================================================================================================= */
/* Required exports                                                                                              */
/* ============================================================================================================= */

/*
 * heimdall_plugin_abi_version: the ABI version the plugin was built against. Return HEIMDALL_ABI_VERSION.
 * WHEN: first, right after the file is opened, before any other function. It must have no side effects.
 */
HEIMDALL_EXPORT uint32_t heimdall_plugin_abi_version(void);

/*
 * heimdall_plugin_free: release a buffer that the plugin handed to the host in a heimdall_buf_t.
 * WHEN: once for every non-NULL out->data, right after the host has copied it.
 * OWNERSHIP: `data` was allocated by the plugin; after this call it is the plugin's to reuse or release. `len` is
 * the length the plugin reported, for allocators that need it (Rust's Box<[u8]>, arenas).
 */
HEIMDALL_EXPORT void heimdall_plugin_free(uint8_t *data, size_t len);

/*
 * GetName: the plugin's name, a NUL-terminated ASCII identifier such as "rate-limiter". Used in logs, metrics and
 * status. It is an identifier, not data, hence the one NUL-terminated string in this ABI.
 * WHEN: after the version check, before Init.
 * OWNERSHIP: the plugin's, valid until Cleanup returns (a string literal is ideal).
 */
HEIMDALL_EXPORT const char *GetName(void);

/*
 * Cleanup: release everything the plugin holds (files, threads, caches).
 * WHEN: once, at shutdown (SIGINT/SIGTERM) or when the plugin is unloaded, in reverse load order, only if Init
 * succeeded (or the plugin exports no Init). No other function is called afterwards.
 */
HEIMDALL_EXPORT void Cleanup(void);

/* ============================================================================================================= */
/* Optional exports                                                                                              */
/* ============================================================================================================= */

/*
 * Init: configure the plugin.
 * WHEN: once, after GetName, before any hook.
 * IN: config: the plugin's "config" object from config.json, as JSON ({} when none was given). Values written as
 *     "env.NAME" in config.json arrive already resolved.
 * OUT: on failure, an optional UTF-8 message (plain text) explaining why; it is shown to the operator.
 * RETURNS: HEIMDALL_OK, or non-zero to refuse to start. A refusal stops the gateway's start-up, unless the plugin's
 *     entry in config.json says "optional": true, in which case the plugin is left out and marked in error.
 *     After a refusal Cleanup is NOT called (and a C library may be unloaded): release what Init acquired before
 *     returning the failure.
 *
 *   config example:  {"system_prompt": "You are concise.", "tag": "v1"}
 */
HEIMDALL_EXPORT int32_t Init(const uint8_t *config, size_t config_len, heimdall_buf_t *out);

/*
 * TransportInterceptor: see and rewrite the raw HTTP request, before the gateway parses its body.
 * WHEN: once per HTTP request to an inference route, in registration order. Never for non-HTTP callers.
 * IN: ctx: the context object (see CONTEXT below); "provider" and "model" are not known yet.
 *     http: {"method": "POST", "path": "/v1/chat/completions", "headers": {"content-type": "application/json", ...}}
 *           Header names are lower-case. All headers are included, credentials too: this hook is the transport.
 *     body: the request body exactly as received (JSON for the inference routes).
 * OUT (all optional, any combination):
 *     {"headers": {"x-team": "search", "x-debug": null}}   set headers; null removes one
 *     {"body": {...}}                                      replace the body (a JSON value)
 *     {"context": {"key": value}}                          set context values for later hooks
 *   or answer the request yourself; nothing after this plugin runs, not even the provider:
 *     {"response": {"status_code": 403, "headers": {"x-reason": "geo"}, "body": {...}}}
 */
HEIMDALL_EXPORT int32_t TransportInterceptor(const uint8_t *ctx, size_t ctx_len, const uint8_t *http, size_t http_len,
                                             const uint8_t *body, size_t body_len, heimdall_buf_t *out);

/*
 * PreHook: see the request before the provider call; modify it, or short-circuit.
 * NOTE: in the inline mode hooks run on the gateway's event loop: a hook that blocks (disk, network) delays every
 * request. A plugin that does I/O in its hooks should be run "threaded" (see THREADS).
 * WHEN: once per request, in registration order, after every TransportInterceptor.
 * IN: ctx: the context object (see CONTEXT below).
 *     request: the chat-completions request. Plugins that changed nothing pass the buffer on untouched, so it may be
 *              the client's own bytes (any whitespace) or a previous plugin's output.
 *       {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": false}
 * OUT, one of (each may carry "context" as well):
 *     {"request": {...}}                                   replace the request for later plugins and the provider
 *                                                          (a new "model" re-routes it; "stream" can't be changed)
 *     {"response": {...chat.completion...}}                short-circuit with a response (a cache hit)
 *     {"error": {"status_code": 429, "message": "slow down", "type": "rate_limit_error",
 *                "code": "rate_limited", "allow_fallbacks": false}}     short-circuit with an error
 *     {"context": {"key": value}}                          only set context values
 *   A short-circuit skips the provider and every later PreHook; PostHooks still run (see SYMMETRY above).
 *   "allow_fallbacks" (default true) says whether the gateway may try the request's fallback models instead.
 */
HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *request, size_t request_len,
                                heimdall_buf_t *out);

/*
 * PostHook: see the result; replace the response, recover from an error, or turn a response into an error.
 * WHEN: once per request, in reverse registration order, for every plugin whose PreHook ran. For a streamed
 *     request, once after the stream ends, with the assembled full response (so caching and logging plugins work for
 *     streams too); what a PostHook returns then is recorded but cannot change what was already sent.
 * IN: ctx: the context object.
 *     response: the chat.completion object, or empty (len 0) when the result is an error.
 *     error: the error object, or empty (len 0) when the result is a response:
 *       {"status_code": 502, "message": "upstream: connection refused", "type": "upstream_error",
 *        "code": "HEIMDALL_ERR_UPSTREAM", "allow_fallbacks": true}
 * OUT, one of (each may carry "context" as well):
 *     {"response": {...}}   replace the response, or recover from an error with a response
 *     {"error": {...}}      replace the error, or invalidate a response
 */
HEIMDALL_EXPORT int32_t PostHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *response, size_t response_len,
                                 const uint8_t *error, size_t error_len, heimdall_buf_t *out);

/*
 * StreamChunkHook: see each streamed chunk before the client does.
 * WHEN: once per chunk of a "stream": true request, in reverse registration order (like PostHook), for every plugin
 *     whose PreHook ran. Chunks from a PreHook short-circuit response pass through it too.
 * IN: ctx: the context object.
 *     chunk: one chat.completion.chunk object:
 *       {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
 *        "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}
 * OUT, one of:
 *     {"chunk": {...}}      replace the chunk
 *     {"drop": true}        drop the chunk; later plugins and the client never see it
 *     {"error": {...}}      abort the stream; the client gets this error as the stream's last event
 */
HEIMDALL_EXPORT int32_t StreamChunkHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *chunk, size_t chunk_len,
                                        heimdall_buf_t *out);

/*
 * heimdall_plugin_concurrency (ABI 1.1): how many hook calls the plugin can take at the same time, from different
 * threads. Export it only if the hooks are thread-safe. Return 0 or 1 for "one at a time" (the same as not exporting
 * it), N for "up to N at once", UINT32_MAX for "no limit of my own".
 * WHEN: once, after GetName and before Init. It must have no side effects.
 * USED BY: the "threaded" mode, which runs up to min(this, the entry's "concurrency" setting) calls at once; an I/O
 *     plugin (an HTTP or Redis call in PreHook) then serves that many requests in parallel. The inline mode is one
 *     call at a time by nature, and the isolated mode runs one call at a time in its child. A 1.0 host ignores it.
 * C authors: HEIMDALL_PLUGIN_CONCURRENCY(64) below.
 */
HEIMDALL_EXPORT uint32_t heimdall_plugin_concurrency(void);

/*
 * CONTEXT: the JSON object every hook receives first. The host writes it compactly (no whitespace).
 *   {"request_id": "4b1c...", "route": "/v1/chat/completions", "provider": "openai", "model": "gpt-4o-mini",
 *    "stream": false, "headers": {"user-agent": "curl/8.5", "x-team": "search"}, "values": {"cache_key": "9f2c"}}
 * "headers" holds the request headers, lower-case, without credentials (authorization, proxy-authorization, cookie,
 * x-api-key, api-key). "values" holds what plugins set with {"context": {...}} earlier in the same request; a value
 * set by any hook is visible to every later hook of that request, in any plugin. Setting a key to null removes it.
 */

/* ============================================================================================================= */
/* Conveniences for C authors (header-only; other languages ignore them)                                         */
/* ============================================================================================================= */

/*
 * HEIMDALL_PLUGIN_DEFINE_ABI() defines the two required ABI exports using malloc/free. Put it in exactly one .c file
 * of the plugin, and allocate every output buffer with heimdall_output / malloc.
 */
#define HEIMDALL_PLUGIN_DEFINE_ABI()                                                                                  \
  HEIMDALL_EXPORT uint32_t heimdall_plugin_abi_version(void) { return HEIMDALL_ABI_VERSION; }                       \
  HEIMDALL_EXPORT void heimdall_plugin_free(uint8_t *data, size_t len) {                                            \
    (void)len;                                                                                                        \
    free(data);                                                                                                       \
  }

/* HEIMDALL_PLUGIN_CONCURRENCY(n) defines heimdall_plugin_concurrency: "my hooks are thread-safe, up to n calls at
 * once". Use it only when they are. */
#define HEIMDALL_PLUGIN_CONCURRENCY(n) \
  HEIMDALL_EXPORT uint32_t heimdall_plugin_concurrency(void) { return (uint32_t)(n); }

/* Copy `len` bytes into a new malloc'd output buffer. Returns HEIMDALL_OK, or HEIMDALL_ERROR if out of memory. */
static inline int32_t heimdall_output(heimdall_buf_t *out, const void *data, size_t len) {
  uint8_t *copy = (uint8_t *)malloc(len ? len : 1);
  if (copy == NULL) return HEIMDALL_ERROR;
  if (len) memcpy(copy, data, len);
  out->data = copy;
  out->len = len;
  return HEIMDALL_OK;
}

/* Same, for a NUL-terminated string (the NUL is not copied). */
static inline int32_t heimdall_output_str(heimdall_buf_t *out, const char *s) {
  return heimdall_output(out, s, strlen(s));
}

/* Report a failure with a message: `return heimdall_fail(out, "bad config: tag must be a string");` */
static inline int32_t heimdall_fail(heimdall_buf_t *out, const char *message) {
  heimdall_output_str(out, message);
  return HEIMDALL_ERROR;
}

#ifdef __cplusplus
}
#endif

#endif /* HEIMDALL_PLUGIN_H */
