/*
 * header_rewrite.c -- set and remove HTTP request headers before the gateway reads the request.
 *
 * TransportInterceptor answers {"headers": {"x-team": "search", "x-debug": null}}: a string sets a header, null
 * removes it. That answer is the same for every request, so Init builds it once and the hook is a single copy; all
 * the checking happens at start-up, where a mistake stops the gateway with a clear message instead of surfacing as
 * odd upstream behaviour later.
 *
 * config: {"set": {"x-team": "search"}, "remove": ["x-debug"]}     at least one header between the two
 */
#include "heimdall_plugin.h"
#include "json_scan.h"

HEIMDALL_PLUGIN_DEFINE_ABI()

static js_buf action; /* {"headers":{...}} */

HEIMDALL_EXPORT const char *GetName(void) { return "header_rewrite"; }

HEIMDALL_EXPORT void Cleanup(void) { js_buf_free(&action); }

/* A header name is an RFC 9110 token. */
static int valid_name(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL) || c == 0)
      return 0;
  }
  return 1;
}

/* No control characters but tab: a CR or LF in a value would let config smuggle in extra headers. */
static int valid_value(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f) return 0;
  return 1;
}

static char problem[300];   /* the message of the last failure, for heimdall_fail */
static char **seen;         /* names added so far, to catch duplicates; only used during Init */
static size_t seen_count;

/* Adds "name":"value" (or "name":null when value is JS_NONE) to the action. Returns 0, or -1 with `problem` set. */
static int add_header(const uint8_t *config, size_t config_len, size_t name_at, size_t value_at) {
  size_t n, vn = 0;
  char *value = NULL;
  char *name = js_string_dup(config, config_len, name_at, &n);
  if (name == NULL) {
    snprintf(problem, sizeof problem, "bad config: \"remove\" must be a list of header names");
    return -1;
  }
  /* The host hands header names over lower-case; config may say "X-Team", which is the same header. */
  for (size_t i = 0; i < n; i++)
    if (name[i] >= 'A' && name[i] <= 'Z') name[i] = (char)(name[i] + 32);
  if (!valid_name(name, n)) {
    snprintf(problem, sizeof problem, "bad config: \"%.100s\" is not a valid header name", name);
    goto fail;
  }
  for (size_t i = 0; i < seen_count; i++)
    if (strcmp(seen[i], name) == 0) {
      snprintf(problem, sizeof problem, "bad config: header \"%.100s\" appears more than once", name);
      goto fail;
    }
  if (value_at != JS_NONE) {
    value = js_string_dup(config, config_len, value_at, &vn);
    if (value == NULL || !valid_value(value, vn)) {
      snprintf(problem, sizeof problem,
               "bad config: the value of header \"%.100s\" must be a string without control characters", name);
      goto fail;
    }
  }
  char **grown = (char **)realloc(seen, (seen_count + 1) * sizeof *seen);
  if (grown == NULL) {
    snprintf(problem, sizeof problem, "out of memory");
    goto fail;
  }
  seen = grown;
  seen[seen_count++] = name;

  if (seen_count > 1) js_puts(&action, ",");
  js_put_string(&action, name, n);
  js_puts(&action, ":");
  if (value != NULL)
    js_put_string(&action, value, vn);
  else
    js_puts(&action, "null");
  free(value);
  return 0;
fail:
  free(name);
  free(value);
  return -1;
}

static int build(const uint8_t *config, size_t config_len) {
  js_iter it;
  size_t k, v;
  int r;
  size_t set = js_find(config, config_len, 0, "set");
  size_t remove = js_find(config, config_len, 0, "remove");

  js_puts(&action, "{\"headers\":{");
  if (set != JS_NONE) {
    if (js_peek(config, config_len, set) != '{' || js_iter_init(&it, config, config_len, set) != 0) {
      snprintf(problem, sizeof problem, "bad config: \"set\" must be an object of header names and values");
      return -1;
    }
    while ((r = js_iter_next(&it, &k, &v)) == 1)
      if (add_header(config, config_len, k, v) != 0) return -1;
    if (r < 0) return -1;
  }
  if (remove != JS_NONE) {
    if (js_peek(config, config_len, remove) != '[' || js_iter_init(&it, config, config_len, remove) != 0) {
      snprintf(problem, sizeof problem, "bad config: \"remove\" must be a list of header names");
      return -1;
    }
    while ((r = js_iter_next(&it, &k, &v)) == 1)
      if (add_header(config, config_len, v, JS_NONE) != 0) return -1;
    if (r < 0) return -1;
  }
  js_puts(&action, "}}");
  if (seen_count == 0) {
    snprintf(problem, sizeof problem, "bad config: no headers to set or remove; give \"set\", \"remove\" or both");
    return -1;
  }
  if (action.failed) {
    snprintf(problem, sizeof problem, "out of memory");
    return -1;
  }
  return 0;
}

HEIMDALL_EXPORT int32_t Init(const uint8_t *config, size_t config_len, heimdall_buf_t *out) {
  static const char *const keys[] = {"set", "remove", NULL};
  if (js_check_keys(config, config_len, keys, problem, sizeof problem) != 0) return heimdall_fail(out, problem);

  snprintf(problem, sizeof problem, "bad config: malformed JSON");
  int r = build(config, config_len);
  for (size_t i = 0; i < seen_count; i++) free(seen[i]);
  free(seen);
  seen = NULL;
  seen_count = 0;
  if (r != 0) {
    Cleanup(); /* the host calls Cleanup only after a successful Init */
    return heimdall_fail(out, problem);
  }
  return HEIMDALL_OK;
}

HEIMDALL_EXPORT int32_t TransportInterceptor(const uint8_t *ctx, size_t ctx_len, const uint8_t *http,
                                             size_t http_len, const uint8_t *body, size_t body_len,
                                             heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len, (void)http, (void)http_len, (void)body, (void)body_len;
  return heimdall_output(out, action.data, action.len);
}
