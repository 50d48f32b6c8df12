/*
 * transform.c -- change a request and a response by splicing bytes into the JSON the host hands over.
 *
 * PreHook puts a system prompt first in "messages"; PostHook adds "heimdall_tags": ["<tag>"] to the response.
 * Neither parses the whole document nor writes it out again: each finds the one spot it changes and copies the rest
 * through untouched, so fields this plugin has never heard of survive exactly as they were.
 *
 * config: {"system_prompt": "You are concise.", "tag": "v1"}     either one may be left out, not both
 */
#include "heimdall_plugin.h"
#include "json_scan.h"

HEIMDALL_PLUGIN_DEFINE_ABI()

/* Built once in Init, ready to splice in: each hook then only copies bytes. */
static js_buf system_message; /* {"role":"system","content":"..."}, or empty when no system_prompt */
static js_buf tag;            /* "v1" (a JSON string), or empty when no tag */

HEIMDALL_EXPORT const char *GetName(void) { return "transform"; }

HEIMDALL_EXPORT void Cleanup(void) {
  js_buf_free(&system_message);
  js_buf_free(&tag);
}

/* Copies the config string at v into dst still JSON-escaped: it is going back into JSON, so decoding it only to
 * escape it again would be wasted work. */
static int copy_string(const uint8_t *config, size_t config_len, size_t v, js_buf *dst) {
  size_t start = js_skip_ws(config, config_len, v);
  size_t end = js_skip_value(config, config_len, start);
  if (js_peek(config, config_len, start) != '"' || end == JS_NONE || end - start <= 2) return -1; /* "" too */
  js_put(dst, config + start, end - start);
  return 0;
}

HEIMDALL_EXPORT int32_t Init(const uint8_t *config, size_t config_len, heimdall_buf_t *out) {
  static const char *const keys[] = {"system_prompt", "tag", NULL};
  char msg[200];
  if (js_check_keys(config, config_len, keys, msg, sizeof msg) != 0) return heimdall_fail(out, msg);

  size_t prompt = js_find(config, config_len, 0, "system_prompt");
  size_t label = js_find(config, config_len, 0, "tag");
  if (prompt == JS_NONE && label == JS_NONE)
    return heimdall_fail(out, "bad config: set \"system_prompt\", \"tag\" or both; with neither there is nothing to do");

  /* Cleanup is not called when Init fails, so every failure below releases what was built so far. */
  if (prompt != JS_NONE) {
    js_puts(&system_message, "{\"role\":\"system\",\"content\":");
    if (copy_string(config, config_len, prompt, &system_message) != 0) {
      Cleanup();
      return heimdall_fail(out, "bad config: \"system_prompt\" must be a non-empty string");
    }
    js_puts(&system_message, "}");
  }
  if (label != JS_NONE && copy_string(config, config_len, label, &tag) != 0) {
    Cleanup();
    return heimdall_fail(out, "bad config: \"tag\" must be a non-empty string");
  }
  if (system_message.failed || tag.failed) {
    Cleanup();
    return heimdall_fail(out, "out of memory");
  }
  return HEIMDALL_OK;
}

HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *req, size_t req_len,
                                heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len;
  if (system_message.len == 0) return HEIMDALL_OK;

  /* A request without a "messages" array is left alone: rejecting bad requests is the gateway's job. */
  size_t messages = js_find(req, req_len, 0, "messages");
  if (js_peek(req, req_len, messages) != '[') return HEIMDALL_OK;
  size_t open = js_skip_ws(req, req_len, messages); /* the '[' */
  int empty = js_peek(req, req_len, open + 1) == ']';

  js_buf b = {0};
  js_puts(&b, "{\"request\":");
  js_put(&b, req, open + 1);
  js_put(&b, system_message.data, system_message.len);
  if (!empty) js_puts(&b, ",");
  js_put(&b, req + open + 1, req_len - open - 1);
  js_puts(&b, "}");
  return js_buf_output(&b, out);
}

HEIMDALL_EXPORT int32_t PostHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *resp, size_t resp_len,
                                 const uint8_t *error, size_t error_len, heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len, (void)error, (void)error_len;
  /* Errors pass through untagged: the tag labels answers, and an error body has a fixed OpenAI shape. */
  if (tag.len == 0 || resp_len == 0 || js_peek(resp, resp_len, 0) != '{') return HEIMDALL_OK;

  /* If the response already has a tag list (another plugin, or a cached response), add to it: writing the key a
   * second time would leave which one counts up to whoever parses it. A non-list there is not ours to touch. */
  size_t tags = js_find(resp, resp_len, 0, "heimdall_tags");
  size_t at;
  if (tags == JS_NONE)
    at = js_skip_value(resp, resp_len, 0) - 1; /* the response's closing '}' */
  else if (js_peek(resp, resp_len, tags) == '[')
    at = js_skip_value(resp, resp_len, tags) - 1; /* the list's closing ']' */
  else
    return HEIMDALL_OK;
  if (at >= resp_len) return HEIMDALL_OK; /* js_skip_value failed: malformed */

  /* Is there anything before `at` in the object or list, i.e. do we need a comma? */
  size_t before = at;
  while (before > 0 && js_is_ws(resp[before - 1])) before--;
  int needs_comma = before > 0 && resp[before - 1] != '{' && resp[before - 1] != '[';

  js_buf b = {0};
  js_puts(&b, "{\"response\":");
  js_put(&b, resp, at);
  if (needs_comma) js_puts(&b, ",");
  if (tags == JS_NONE) js_puts(&b, "\"heimdall_tags\":[");
  js_put(&b, tag.data, tag.len);
  if (tags == JS_NONE) js_puts(&b, "]");
  js_put(&b, resp + at, resp_len - at);
  js_puts(&b, "}");
  return js_buf_output(&b, out);
}
