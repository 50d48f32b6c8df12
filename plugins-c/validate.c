/*
 * validate.c -- refuse a request before it costs anything, with an error the client understands.
 *
 * PreHook blocks a request that mentions a banned word (ASCII case-insensitive) or asks for more than max_tokens.
 * A blocked request is answered with an {"error": ...} action: returning a failure status instead would only log a
 * plugin failure and let the request through, because a plugin failure never fails a request.
 *
 * config: {"banned_words": ["secret project"], "max_tokens": 1000, "status_code": 400, "message": "request blocked"}
 *         give banned_words, max_tokens or both; status_code (400-599) and message are optional
 */
#include "heimdall_plugin.h"
#include "json_scan.h"

HEIMDALL_PLUGIN_DEFINE_ABI()

typedef struct {
  char *text; /* lower-cased */
  size_t len;
} word;

static word *banned;
static size_t banned_count;
static double max_tokens = -1; /* < 0: no limit */
static js_buf blocked;         /* the whole {"error": ...} action, built in Init: every block sends the same one */

HEIMDALL_EXPORT const char *GetName(void) { return "validate"; }

HEIMDALL_EXPORT void Cleanup(void) {
  for (size_t i = 0; i < banned_count; i++) free(banned[i].text);
  free(banned);
  banned = NULL;
  banned_count = 0;
  max_tokens = -1;
  js_buf_free(&blocked);
}

static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

/* Case-insensitive substring search over ASCII letters; other bytes (all of UTF-8 beyond ASCII) must match
 * exactly. Folding "É" to "é" would need Unicode tables, far more than an example should carry. */
static int contains(const uint8_t *text, size_t len, const word *w) {
  for (size_t i = 0; i + w->len <= len; i++) {
    size_t k = 0;
    while (k < w->len && lower(text[i + k]) == (uint8_t)w->text[k]) k++;
    if (k == w->len) return 1;
  }
  return 0;
}

static int32_t init_fail(heimdall_buf_t *out, const char *msg) {
  Cleanup(); /* the host calls Cleanup only after a successful Init, so a failing Init cleans up itself */
  return heimdall_fail(out, msg);
}

HEIMDALL_EXPORT int32_t Init(const uint8_t *config, size_t config_len, heimdall_buf_t *out) {
  static const char *const keys[] = {"banned_words", "max_tokens", "status_code", "message", NULL};
  char msg[200];
  double status = 400, n;
  js_iter it;
  size_t k, v;
  int r;

  if (js_check_keys(config, config_len, keys, msg, sizeof msg) != 0) return heimdall_fail(out, msg);

  size_t words = js_find(config, config_len, 0, "banned_words");
  if (words != JS_NONE) {
    if (js_peek(config, config_len, words) != '[' || js_iter_init(&it, config, config_len, words) != 0)
      return init_fail(out, "bad config: \"banned_words\" must be a list of strings");
    while ((r = js_iter_next(&it, &k, &v)) == 1) {
      word w;
      w.text = js_string_dup(config, config_len, v, &w.len);
      if (w.text == NULL || w.len == 0) {
        free(w.text);
        return init_fail(out, "bad config: \"banned_words\" must hold non-empty strings");
      }
      for (size_t i = 0; i < w.len; i++) w.text[i] = (char)lower((uint8_t)w.text[i]);
      word *grown = (word *)realloc(banned, (banned_count + 1) * sizeof *banned);
      if (grown == NULL) {
        free(w.text);
        return init_fail(out, "out of memory");
      }
      banned = grown;
      banned[banned_count++] = w;
    }
    if (r < 0) return init_fail(out, "bad config: \"banned_words\" is malformed");
  }

  size_t limit = js_find(config, config_len, 0, "max_tokens");
  if (limit != JS_NONE) {
    if (js_read_number(config, config_len, limit, &n) != 0 || n < 1 || n > 1e12 || n != (double)(int64_t)n)
      return init_fail(out, "bad config: \"max_tokens\" must be a positive integer");
    max_tokens = n;
  }
  if (banned_count == 0 && max_tokens < 0)
    return init_fail(out, "bad config: set \"banned_words\" (non-empty), \"max_tokens\" or both; "
                          "with neither there is nothing to check");

  size_t code = js_find(config, config_len, 0, "status_code");
  if (code != JS_NONE &&
      (js_read_number(config, config_len, code, &status) != 0 || status < 400 || status > 599 ||
       status != (double)(int)status))
    return init_fail(out, "bad config: \"status_code\" must be an integer from 400 to 599");

  size_t text = js_find(config, config_len, 0, "message");
  if (text != JS_NONE && js_peek(config, config_len, text) != '"')
    return init_fail(out, "bad config: \"message\" must be a string");

  /* allow_fallbacks false: a fallback model would get the same request, and a policy must not be routed around. */
  snprintf(msg, sizeof msg, "{\"error\":{\"status_code\":%d,\"message\":", (int)status);
  js_puts(&blocked, msg);
  if (text != JS_NONE) /* copied still escaped: it goes straight back into JSON */
    js_put(&blocked, config + text, js_skip_value(config, config_len, text) - text);
  else
    js_puts(&blocked, "\"the request was blocked by the gateway's request policy\"");
  js_puts(&blocked, ",\"type\":\"invalid_request_error\",\"code\":\"request_blocked\",\"allow_fallbacks\":false}}");
  if (blocked.failed) return init_fail(out, "out of memory");
  return HEIMDALL_OK;
}

/* Whether any string VALUE in the request holds a banned word. Values are decoded first, so "b\u0061d" cannot
 * smuggle "bad" past the check; keys are skipped, since they are the API's field names, not the client's text. */
static int mentions_banned_word(const uint8_t *req, size_t req_len, uint8_t *scratch) {
  size_t i = 0, n, end;
  while (i < req_len) {
    if (req[i] != '"') { /* outside strings there are only numbers, literals and punctuation */
      i++;
      continue;
    }
    end = js_string_decode(req, req_len, i, scratch, &n);
    if (end == JS_NONE) return 0;
    i = end;
    if (js_peek(req, req_len, end) == ':') continue; /* it was a key */
    for (size_t w = 0; w < banned_count; w++)
      if (contains(scratch, n, &banned[w])) return 1;
  }
  return 0;
}

/* Whether the request asks for more tokens than allowed. OpenAI has two names for the limit; checking only the old
 * one would let a client step around the rule by using the new one. */
static int over_token_limit(const uint8_t *req, size_t req_len) {
  static const char *const names[] = {"max_tokens", "max_completion_tokens"};
  double asked;
  for (size_t i = 0; i < 2; i++)
    if (js_read_number(req, req_len, js_find(req, req_len, 0, names[i]), &asked) == 0 && asked > max_tokens)
      return 1;
  return 0;
}

HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *req, size_t req_len,
                                heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len;
  int block = max_tokens >= 0 && over_token_limit(req, req_len);
  if (!block && banned_count > 0) {
    uint8_t *scratch = (uint8_t *)malloc(req_len ? req_len : 1); /* decoded strings are never longer */
    if (scratch == NULL) return heimdall_fail(out, "out of memory");
    block = mentions_banned_word(req, req_len, scratch);
    free(scratch);
  }
  return block ? heimdall_output(out, blocked.data, blocked.len) : HEIMDALL_OK;
}
