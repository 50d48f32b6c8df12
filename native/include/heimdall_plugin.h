/*
 * heimdall_plugin.h -- the Heimdall plugin ABI, version 1.2.
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
 *                               heimdall_plugin_set_host      (1.2) receive the host services table, before Init
 *
 *   Host services (1.2), called BY the plugin through the table heimdall_plugin_set_host hands over: log, metrics,
 *   per-request state, a shared key-value store. See HOST SERVICES below.
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
 * A plugin that cannot work without a newer minor's host feature checks for it itself: a 1.2 plugin that needs the
 * host services refuses in Init when they were not handed over (an older host never calls
 * heimdall_plugin_set_host), with the versioned message HEIMDALL_REQUIRE_HOST(out) writes:
 *   "this plugin needs host services (ABI 1.2); the gateway did not provide them: it speaks an older ABI. Upgrade
 *    the gateway to one that speaks ABI 1.2"
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
#define HEIMDALL_ABI_VERSION_MINOR 2
#define HEIMDALL_ABI_VERSION ((uint32_t)((HEIMDALL_ABI_VERSION_MAJOR << 16) | HEIMDALL_ABI_VERSION_MINOR))

/* Status codes returned by Init and every hook. Any non-zero value is a failure; HEIMDALL_ERROR is the usual one. */
#define HEIMDALL_OK 0
#define HEIMDALL_ERROR 1

/* Statuses returned by the host services (ABI 1.2) to the plugin. */
#define HEIMDALL_NOT_FOUND 2   /* a get: no such key (or it expired) */
#define HEIMDALL_CONFLICT 3    /* kv_cas: the stored value was not the expected one; nothing was written */
#define HEIMDALL_E_LIMIT 4     /* a bound was hit: key or value too large, too many keys, series or metrics */
#define HEIMDALL_E_INVALID 5   /* a bad argument: unknown metric id, bad name, unknown request handle, NULL */
#define HEIMDALL_E_UNAVAILABLE 6 /* the service cannot answer now: no host table (an older gateway), the shared
                                    store's backend unreachable with nothing to answer from, or a write backlog full */

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

/* ============================================================================================================= */
/* Host services (ABI 1.2)                                                                                       */
/* ============================================================================================================= */

/*
 * HOST SERVICES: functions the host exports to the plugin, handed over as a table of C function pointers before
 * Init. Through them a plugin logs through the gateway's logger, defines and updates its own Prometheus metrics,
 * keeps per-request state across its hooks (the stream chunk hook included), and uses a key-value store shared by
 * every worker process and, with the "redis" backend, every gateway instance pointing at the same Redis.
 *
 * Every function is callable from any hook, in every execution mode, from the thread that runs the hook. The table
 * is the same C type in every mode; what serves a call differs (docs/host-services.md):
 *   inline    the gateway's own JS, synchronously, on the event loop (the hook's thread);
 *   threaded  the gateway's JS on the event loop: the hook's worker thread waits for the answer (the loop is free,
 *             so it comes at once unless the loop is busy);
 *   isolated  the plugin-host child sends the call over its channel and waits for the gateway's answer.
 * No host function ever waits on the network: the shared store answers from a local view (docs/host-services.md
 * says exactly how consistent each backend is).
 * INLINE CAVEAT: in the inline mode, call host functions only from the hook's own thread, and never from a thread of
 * yours while the hook waits for it: the call is served by the event loop, which the hook is holding (a deadlock).
 *
 * REQUEST HANDLES: per-request state and the log's request id need to know which request a call is for. Every hook's
 * context JSON starts with it: {"request_handle":17,"request_id":"4b1c...",...}. heimdall_request(ctx, ctx_len)
 * reads it. 0 means "no request" (Init, Cleanup, a thread of the plugin's own). A handle is valid from the request's
 * first hook until its last (PostHook, or the stream's last chunk) returns; afterwards its state is gone and calls
 * with it get HEIMDALL_E_INVALID (state) or log without a request id (log).
 *
 * Strings are (pointer, length), never NUL-terminated, like every buffer of this ABI. The host copies what it keeps
 * before the function returns. Outputs go into buffers the PLUGIN provides (value, cap): the host writes at most cap
 * bytes and always sets *value_len to the full length, so a plugin whose buffer was too small (*value_len > cap) can
 * call again with a larger one. Nothing the host hands back needs freeing.
 *
 * Bounds (defaults; the operator sets them under "host" in config.json, docs/configuration.md): log messages are cut
 * to 4096 bytes; metric and label names 1-64 characters of [A-Za-z0-9_] starting with a letter or "_"; 32 metrics a
 * plugin, 8 labels a metric, 1000 label-value combinations a metric, 32 histogram buckets; per-request state 64 keys
 * and 64 KiB a request and plugin; shared keys 1-512 bytes, values up to 64 KiB, 100000 keys a process.
 * NAMESPACES: a plugin's metrics, request state and shared keys are its own: two plugins never see each other's.
 */

/* Log levels for heimdall_host_t.log. */
#define HEIMDALL_LOG_DEBUG 0
#define HEIMDALL_LOG_INFO 1
#define HEIMDALL_LOG_WARN 2
#define HEIMDALL_LOG_ERROR 3

/* Metric kinds for heimdall_host_t.metric_define. */
#define HEIMDALL_METRIC_COUNTER 0
#define HEIMDALL_METRIC_HISTOGRAM 1

/* A TTL of 0 means "no expiry": the key stays until it is deleted, or evicted (the store keeps at most
 * host.kv.max_keys keys in a process, the least recently written going first). */

typedef struct heimdall_host {
  /*
   * size: sizeof(heimdall_host_t) as the host built it. A later minor version only appends members; a member is
   * there when offsetof(heimdall_host_t, member) < size. Check before calling a member this header marks newer than
   * 1.2 (none yet). abi_version: the host's HEIMDALL_ABI_VERSION.
   */
  uint32_t size;
  uint32_t abi_version;

  /*
   * log: write `msg` through the gateway's logger at `level` (HEIMDALL_LOG_*), with the plugin's name and, when
   * `request` is a live handle, the request's id. A message over 4096 bytes is cut, with a note of its length;
   * invalid UTF-8 is replaced. A level outside 0-3 logs at error. Returns nothing: logging never fails a hook.
   * OWNERSHIP: msg is the plugin's; the host copies it before returning.
   */
  void (*log)(uint64_t request, int32_t level, const uint8_t *msg, size_t msg_len);

  /*
   * metric_define: define a counter (HEIMDALL_METRIC_COUNTER) or a histogram (HEIMDALL_METRIC_HISTOGRAM). It appears
   * in /metrics as heimdall_plugin_<plugin>_<name> (the plugin's name with "-" and "." as "_"), with `help` as its
   * HELP text, and is merged across worker processes like every metric of the gateway. `labels` is the label names,
   * comma-separated ("model,outcome"), or empty. `buckets`/`buckets_len`: a histogram's upper bounds, increasing;
   * NULL/0 for the default ones (0.005 ... 10). Counters ignore them.
   * WHEN: in Init (a definition anywhere else works too, but a metric that appears late surprises dashboards).
   * Defining the same name again with the same kind and labels is not an error: it answers the same id (an isolated
   * plugin's Init runs again after a restart, and its metrics go on counting). Another kind or other labels under a
   * taken name: HEIMDALL_E_INVALID.
   * RETURNS: HEIMDALL_OK and *id set; HEIMDALL_E_INVALID (bad name, label or bucket list); HEIMDALL_E_LIMIT (32
   *     metrics already, more than 8 labels or 32 buckets).
   * OWNERSHIP: every input is the plugin's, copied before return. *id is the plugin's to keep: the id stays valid
   *     until Cleanup returns.
   */
  int32_t (*metric_define)(int32_t kind, const uint8_t *name, size_t name_len, const uint8_t *help, size_t help_len,
                           const uint8_t *labels, size_t labels_len, const double *buckets, size_t buckets_len,
                           uint32_t *id);

  /*
   * metric_record: add `value` to a counter (value >= 0), or observe `value` in a histogram, for the series whose
   * label values are `label_values`, newline-separated in the order of the definition's names ("gpt-4o\nhit"), or
   * empty for a metric without labels.
   * RETURNS: HEIMDALL_OK; HEIMDALL_E_INVALID (unknown id, wrong number of values, a negative or non-finite counter
   *     increment); HEIMDALL_E_LIMIT (1000 label-value combinations already: the new one is not recorded).
   * OWNERSHIP: label_values is the plugin's, copied before return.
   */
  int32_t (*metric_record)(uint32_t id, const uint8_t *label_values, size_t label_values_len, double value);

  /*
   * state_get: read `key` from the per-request state of `request` (this plugin's own; see REQUEST HANDLES).
   * RETURNS: HEIMDALL_OK, with min(cap, *value_len) bytes copied into value and *value_len the full length;
   *     HEIMDALL_NOT_FOUND; HEIMDALL_E_INVALID (request is not a live handle).
   * OWNERSHIP: key is the plugin's. value (cap bytes) and value_len are the plugin's buffers, written before return.
   */
  int32_t (*state_get)(uint64_t request, const uint8_t *key, size_t key_len, uint8_t *value, size_t cap,
                       size_t *value_len);

  /*
   * state_set: set `key` to `value` in the per-request state of `request`; value NULL removes the key. The state is
   * freed by the gateway when the request ends: nothing to clean up.
   * RETURNS: HEIMDALL_OK; HEIMDALL_E_INVALID (not a live handle); HEIMDALL_E_LIMIT (over 64 keys or 64 KiB for this
   *     request and plugin, keys and values counted: nothing was written).
   * OWNERSHIP: key and value are the plugin's; the host copies them before returning.
   */
  int32_t (*state_set)(uint64_t request, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len);

  /*
   * kv_get: read `key` from the shared store.
   * RETURNS: HEIMDALL_OK, with min(cap, *value_len) bytes copied and *value_len the full length; HEIMDALL_NOT_FOUND
   *     (no such key, or expired; with redis also "not in the local view yet": the host fetches it in the background,
   *     so a later call may find it); HEIMDALL_E_LIMIT (key too long).
   * OWNERSHIP: key is the plugin's. value and value_len are the plugin's buffers, written before return.
   */
  int32_t (*kv_get)(const uint8_t *key, size_t key_len, uint8_t *value, size_t cap, size_t *value_len);

  /*
   * kv_set: set `key` to `value`, expiring after ttl_ms (0: no expiry of its own); value NULL deletes the key.
   * RETURNS: HEIMDALL_OK (visible at once to this process; to others as docs/host-services.md says);
   *     HEIMDALL_E_LIMIT (key or value too large); HEIMDALL_E_UNAVAILABLE (redis: the write backlog is full, nothing
   *     was written).
   * OWNERSHIP: key and value are the plugin's; the host copies them before returning.
   */
  int32_t (*kv_set)(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len, uint64_t ttl_ms);

  /*
   * kv_incr: add `delta` to the integer at `key` (a missing key counts as 0) and write the new value to *value. A
   * key the call creates expires after ttl_ms (0: never); an existing key keeps its expiry (a fixed window: count
   * requests in "rl:<user>:<minute>" with a TTL of a minute).
   * RETURNS: HEIMDALL_OK; HEIMDALL_E_INVALID (the value is not an integer); HEIMDALL_E_LIMIT (key too long, or the
   *     sum overflows int64); HEIMDALL_E_UNAVAILABLE (redis: no quota leased and the unleased allowance used up, as
   *     while Redis is unreachable; *value is then the local estimate, usable to fail open).
   * OWNERSHIP: key is the plugin's. *value is the plugin's, written before return.
   */
  int32_t (*kv_incr)(const uint8_t *key, size_t key_len, int64_t delta, uint64_t ttl_ms, int64_t *value);

  /*
   * kv_cas: compare-and-set. Write `value` (ttl_ms as kv_set) only if `key` now holds exactly `expected`; expected
   * NULL means "only if the key does not exist".
   * RETURNS: HEIMDALL_OK (written); HEIMDALL_CONFLICT (it held something else; nothing written); HEIMDALL_E_LIMIT;
   *     HEIMDALL_E_UNAVAILABLE (as kv_set). Atomic within a process; across processes see docs/host-services.md.
   * OWNERSHIP: key, expected and value are the plugin's; the host copies them before returning.
   */
  int32_t (*kv_cas)(const uint8_t *key, size_t key_len, const uint8_t *expected, size_t expected_len,
                    const uint8_t *value, size_t value_len, uint64_t ttl_ms);
} heimdall_host_t;

/*
 * heimdall_plugin_set_host (ABI 1.2): receive the host services table.
 * WHEN: once, after GetName and heimdall_plugin_concurrency, before Init; again in an isolated plugin's new child
 *     after a restart (a new process). Never concurrently with anything else. A host older than 1.2 never calls it:
 *     a plugin that needs the services refuses in Init (HEIMDALL_REQUIRE_HOST).
 * OWNERSHIP: the table is the host's, valid and unchanging until Cleanup returns. Keep the pointer; don't copy the
 *     struct (later minor versions append members that a copy of today's size would cut off).
 * C authors: HEIMDALL_PLUGIN_DEFINE_HOST() below defines it, and the heimdall_* helpers call through it.
 */
HEIMDALL_EXPORT void heimdall_plugin_set_host(const heimdall_host_t *host);

/*
 * CONTEXT: the JSON object every hook receives first. The host writes it compactly (no whitespace), and always
 * starts it with "request_handle" (ABI 1.2: the handle for the host services; see REQUEST HANDLES above).
 *   {"request_handle": 17, "request_id": "4b1c...", "route": "/v1/chat/completions", "provider": "openai", "model": "gpt-4o-mini",
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

/* ---- Host services for C authors (ABI 1.2) ------------------------------------------------------------------ */

/*
 * HEIMDALL_PLUGIN_DEFINE_HOST() defines heimdall_plugin_set_host and the pointer the helpers below call through. Put
 * it in exactly one .c file of the plugin (beside HEIMDALL_PLUGIN_DEFINE_ABI()). Without a host table (an older
 * gateway), every helper returns HEIMDALL_E_UNAVAILABLE and heimdall_log does nothing.
 */
extern const heimdall_host_t *heimdall_host;
#define HEIMDALL_PLUGIN_DEFINE_HOST()                                                                                 \
  const heimdall_host_t *heimdall_host = NULL;                                                                        \
  HEIMDALL_EXPORT void heimdall_plugin_set_host(const heimdall_host_t *host) { heimdall_host = host; }

/* In Init: refuse to start, with the versioned message, when the gateway handed over no host services. */
#define HEIMDALL_REQUIRE_HOST(out)                                                                                    \
  do {                                                                                                                \
    if (heimdall_host == NULL)                                                                                        \
      return heimdall_fail((out), "this plugin needs host services (ABI 1.2); the gateway did not provide them: it "  \
                                  "speaks an older ABI. Upgrade the gateway to one that speaks ABI 1.2");             \
  } while (0)

/* The request handle a hook's context starts with ({"request_handle":17,...}); 0 when there is none. */
static inline uint64_t heimdall_request(const uint8_t *ctx, size_t ctx_len) {
  static const char prefix[] = "{\"request_handle\":";
  size_t at = sizeof prefix - 1;
  if (ctx == NULL || ctx_len <= at || memcmp(ctx, prefix, at) != 0) return 0;
  uint64_t handle = 0;
  for (; at < ctx_len && ctx[at] >= '0' && ctx[at] <= '9'; at++) handle = handle * 10 + (uint64_t)(ctx[at] - '0');
  return handle;
}

/* heimdall_log(request, HEIMDALL_LOG_INFO, "cache hit") -- a NUL-terminated message. */
static inline void heimdall_log(uint64_t request, int32_t level, const char *msg) {
  if (heimdall_host != NULL) heimdall_host->log(request, level, (const uint8_t *)msg, strlen(msg));
}

/* Define a counter or histogram: labels "a,b" (or ""); buckets NULL for the defaults. */
static inline int32_t heimdall_metric_define(int32_t kind, const char *name, const char *help, const char *labels,
                                             const double *buckets, size_t buckets_len, uint32_t *id) {
  if (heimdall_host == NULL) return HEIMDALL_E_UNAVAILABLE;
  return heimdall_host->metric_define(kind, (const uint8_t *)name, strlen(name), (const uint8_t *)help, strlen(help),
                                      (const uint8_t *)labels, strlen(labels), buckets, buckets_len, id);
}

/* Add to a counter / observe in a histogram; label_values "v1\nv2" (or ""). */
static inline int32_t heimdall_metric_record(uint32_t id, const char *label_values, double value) {
  if (heimdall_host == NULL) return HEIMDALL_E_UNAVAILABLE;
  return heimdall_host->metric_record(id, (const uint8_t *)label_values, strlen(label_values), value);
}

/* Per-request state with a NUL-terminated key. */
static inline int32_t heimdall_state_get(uint64_t request, const char *key, void *value, size_t cap, size_t *value_len) {
  if (heimdall_host == NULL) return HEIMDALL_E_UNAVAILABLE;
  return heimdall_host->state_get(request, (const uint8_t *)key, strlen(key), (uint8_t *)value, cap, value_len);
}

static inline int32_t heimdall_state_set(uint64_t request, const char *key, const void *value, size_t value_len) {
  if (heimdall_host == NULL) return HEIMDALL_E_UNAVAILABLE;
  return heimdall_host->state_set(request, (const uint8_t *)key, strlen(key), (const uint8_t *)value, value_len);
}

/* The shared store with a (pointer, length) key: keys are often hashes, not text. */
static inline int32_t heimdall_kv_get(const void *key, size_t key_len, void *value, size_t cap, size_t *value_len) {
  if (heimdall_host == NULL) return HEIMDALL_E_UNAVAILABLE;
  return heimdall_host->kv_get((const uint8_t *)key, key_len, (uint8_t *)value, cap, value_len);
}

static inline int32_t heimdall_kv_set(const void *key, size_t key_len, const void *value, size_t value_len,
                                      uint64_t ttl_ms) {
  if (heimdall_host == NULL) return HEIMDALL_E_UNAVAILABLE;
  return heimdall_host->kv_set((const uint8_t *)key, key_len, (const uint8_t *)value, value_len, ttl_ms);
}

static inline int32_t heimdall_kv_incr(const void *key, size_t key_len, int64_t delta, uint64_t ttl_ms, int64_t *value) {
  if (heimdall_host == NULL) return HEIMDALL_E_UNAVAILABLE;
  return heimdall_host->kv_incr((const uint8_t *)key, key_len, delta, ttl_ms, value);
}

static inline int32_t heimdall_kv_cas(const void *key, size_t key_len, const void *expected, size_t expected_len,
                                      const void *value, size_t value_len, uint64_t ttl_ms) {
  if (heimdall_host == NULL) return HEIMDALL_E_UNAVAILABLE;
  return heimdall_host->kv_cas((const uint8_t *)key, key_len, (const uint8_t *)expected, expected_len,
                               (const uint8_t *)value, value_len, ttl_ms);
}

#ifdef __cplusplus
}
#endif

#endif /* HEIMDALL_PLUGIN_H */
