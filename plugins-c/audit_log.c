/*
 * audit_log.c -- talk to an outside system (here, a file) while staying out of the request's way.
 *
 * One JSON line per request (PreHook) and one per outcome (PostHook), joined by the context's request_id:
 *   {"time":"2025-01-31T12:00:00.000Z","event":"request","request_id":"4b1c...","headers":{...},"request":{...}}
 *   {"time":"2025-01-31T12:00:01.250Z","event":"response","request_id":"4b1c...","response":{...}}
 * "headers" are the request headers from the context (the host leaves credentials out), as a TransportInterceptor
 * left them: who called, with which user agent and team tags. Both hooks only observe: they always return an empty output, so the host parses nothing and changes nothing. If a
 * write fails they return a failure status, which the host logs; the request carries on regardless.
 *
 * config: {"path": "/var/log/heimdall-audit.jsonl"}
 *
 * The file is opened once in Init (so a bad path stops start-up, not the first request) and closed in Cleanup.
 */
#include <errno.h>
#include <time.h>

#include "heimdall_plugin.h"
#include "json_scan.h"

HEIMDALL_PLUGIN_DEFINE_ABI()

static FILE *log_file;

HEIMDALL_EXPORT const char *GetName(void) { return "audit_log"; }

HEIMDALL_EXPORT void Cleanup(void) {
  if (log_file != NULL) fclose(log_file);
  log_file = NULL;
}

HEIMDALL_EXPORT int32_t Init(const uint8_t *config, size_t config_len, heimdall_buf_t *out) {
  static const char *const keys[] = {"path", NULL};
  char msg[512];
  if (js_check_keys(config, config_len, keys, msg, sizeof msg) != 0) return heimdall_fail(out, msg);

  size_t path_len;
  char *path = js_string_dup(config, config_len, js_find(config, config_len, 0, "path"), &path_len);
  if (path == NULL || path_len == 0 || strlen(path) != path_len) {
    free(path);
    return heimdall_fail(out, "bad config: \"path\" must name the log file, e.g. \"/var/log/heimdall-audit.jsonl\"");
  }
  /* Append: a restart must never truncate the audit trail. */
  log_file = fopen(path, "a");
  if (log_file == NULL) {
    snprintf(msg, sizeof msg, "cannot open audit log \"%s\" for appending: %s", path, strerror(errno));
    free(path);
    return heimdall_fail(out, msg);
  }
  free(path);
  return HEIMDALL_OK;
}

/* Starts a line: the time (UTC, milliseconds), the event and the request_id taken from the context. */
static void begin_line(js_buf *b, const char *event, const uint8_t *ctx, size_t ctx_len) {
  struct timespec ts;
  struct tm utc;
  char text[64];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &utc);
  strftime(text, sizeof text, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &utc);
  js_puts(b, text);
  snprintf(text, sizeof text, ".%03dZ\",\"event\":\"%s\",\"request_id\":", (int)(ts.tv_nsec / 1000000), event);
  js_puts(b, text);
  size_t id = js_find(ctx, ctx_len, 0, "request_id");
  if (id != JS_NONE) /* already JSON: copied as is */
    js_put(b, ctx + id, js_skip_value(ctx, ctx_len, id) - id);
  else
    js_puts(b, "null");
}

/* Adds ,"name":<json> and compacts it, because the request may be the client's own bytes, newlines included, and
 * a JSON Lines record must fit on one line. */
static void add_field(js_buf *b, const char *name, const uint8_t *json, size_t len) {
  js_puts(b, ",\"");
  js_puts(b, name);
  js_puts(b, "\":");
  if (len > 0)
    js_put_compact(b, json, len);
  else
    js_puts(b, "null");
}

/* One fwrite per line, then fflush: the line is on its way to the file before the hook returns, and a crash loses
 * at most the line being written, never a buffered backlog. */
static int32_t finish_line(js_buf *b, heimdall_buf_t *out) {
  js_puts(b, "}\n");
  if (b->failed) {
    js_buf_free(b);
    return heimdall_fail(out, "out of memory");
  }
  int ok = log_file != NULL && fwrite(b->data, 1, b->len, log_file) == b->len && fflush(log_file) == 0;
  int cause = errno;
  js_buf_free(b);
  if (!ok) {
    char msg[200];
    snprintf(msg, sizeof msg, "cannot write the audit log: %s", strerror(cause));
    if (log_file != NULL) clearerr(log_file); /* let the next line try again, e.g. once the disk has room */
    return heimdall_fail(out, msg);
  }
  return HEIMDALL_OK;
}

HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *req, size_t req_len,
                                heimdall_buf_t *out) {
  js_buf b = {0};
  begin_line(&b, "request", ctx, ctx_len);
  size_t headers = js_find(ctx, ctx_len, 0, "headers");
  if (headers != JS_NONE) add_field(&b, "headers", ctx + headers, js_skip_value(ctx, ctx_len, headers) - headers);
  add_field(&b, "request", req, req_len);
  return finish_line(&b, out);
}

HEIMDALL_EXPORT int32_t PostHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *resp, size_t resp_len,
                                 const uint8_t *error, size_t error_len, heimdall_buf_t *out) {
  js_buf b = {0};
  if (resp_len > 0) {
    begin_line(&b, "response", ctx, ctx_len);
    add_field(&b, "response", resp, resp_len);
  } else {
    begin_line(&b, "error", ctx, ctx_len);
    add_field(&b, "error", error, error_len);
  }
  return finish_line(&b, out);
}
