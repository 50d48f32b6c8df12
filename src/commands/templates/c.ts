/** The C template: one source file, a unit-test harness that includes it, a Makefile. */
import { makeHeader, readmeUsage, snake, type TemplateFiles, type TemplateInput } from './index.js';

export function cTemplate({ name, heimdall }: TemplateInput): TemplateFiles {
  const id = snake(name);
  return {
    [`${id}.c`]: `/* ${name}: a Heimdall plugin. PreHook refuses requests that mention the configured word; PostHook tags every
 * answer. Inputs are JSON in (pointer, length) buffers, NOT NUL-terminated; outputs are malloc'd and freed by the
 * gateway through heimdall_plugin_free. See native/include/heimdall_plugin.h for the whole contract. */
#include <string.h>

#include "heimdall_plugin.h"
#include "json_scan.h" /* find a field, splice bytes: no JSON tree */

HEIMDALL_PLUGIN_DEFINE_ABI() /* heimdall_plugin_abi_version, and heimdall_plugin_free = free */

static char block_word[128] = "forbidden";

HEIMDALL_EXPORT const char *GetName(void) { return "${name}"; }
HEIMDALL_EXPORT void Cleanup(void) {}

/* config: {"block_word": "forbidden"} */
HEIMDALL_EXPORT int32_t Init(const uint8_t *config, size_t config_len, heimdall_buf_t *out) {
  static const char *const keys[] = {"block_word", NULL};
  char msg[128];
  if (js_check_keys(config, config_len, keys, msg, sizeof msg) != 0) return heimdall_fail(out, msg);
  size_t v = js_find(config, config_len, 0, "block_word");
  if (v == JS_NONE) return HEIMDALL_OK;
  size_t n = 0;
  char *word = js_string_dup(config, config_len, v, &n);
  if (word == NULL || n == 0 || n >= sizeof block_word) {
    free(word);
    return heimdall_fail(out, "bad config: \\"block_word\\" must be a string of 1 to 127 bytes");
  }
  memcpy(block_word, word, n + 1);
  free(word);
  return HEIMDALL_OK;
}

HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *req, size_t req_len,
                                heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len;
  if (memmem(req, req_len, block_word, strlen(block_word)) == NULL)
    return HEIMDALL_OK; /* out stays empty: the request goes on untouched, and the gateway parses nothing */
  return heimdall_output_str(out, "{\\"error\\":{\\"status_code\\":403,\\"message\\":\\"request blocked by ${name}\\","
                                  "\\"allow_fallbacks\\":false}}");
}

HEIMDALL_EXPORT int32_t PostHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *resp, size_t resp_len,
                                 const uint8_t *err, size_t err_len, heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len, (void)err, (void)err_len;
  if (resp_len == 0) return HEIMDALL_OK; /* an error: left as it is */
  /* {"response": <the response with "${name}": {"checked": true} added>} */
  static const char tag[] = "{\\"checked\\":true}";
  js_buf b = {0};
  js_puts(&b, "{\\"response\\":");
  if (js_put_with_member(&b, resp, resp_len, 0, "${name}", tag, sizeof tag - 1) != 0) {
    js_buf_free(&b);
    return heimdall_fail(out, "the response is not a JSON object");
  }
  js_puts(&b, "}");
  return js_buf_output(&b, out);
}
`,
    [`test_${id}.c`]: `/* Unit tests for ${id}.c: the hooks called directly, as the gateway calls them. make test runs them. */
#include <stdio.h>

#include "${id}.c"

#define S(s) (const uint8_t *)(s), strlen(s)

static int failures = 0;

static void expect(int ok, const char *what) {
  printf("%s %s\\n", ok ? "ok  " : "FAIL", what);
  if (!ok) failures++;
}

int main(void) {
  heimdall_buf_t out = {0};
  expect(Init(S("{}"), &out) == HEIMDALL_OK, "Init with the default word");
  expect(Init(S("{\\"block_wrd\\":\\"x\\"}"), &out) == HEIMDALL_ERROR, "Init refuses an unknown key");
  heimdall_plugin_free(out.data, out.len);
  out = (heimdall_buf_t){0};

  expect(PreHook(S("{}"), S("{\\"model\\":\\"m\\",\\"messages\\":[{\\"role\\":\\"user\\",\\"content\\":\\"hi\\"}]}"), &out) ==
             HEIMDALL_OK && out.len == 0,
         "PreHook lets an ordinary request through untouched");
  expect(PreHook(S("{}"), S("{\\"messages\\":[{\\"role\\":\\"user\\",\\"content\\":\\"a forbidden thing\\"}]}"), &out) ==
             HEIMDALL_OK && out.len > 0 && memmem(out.data, out.len, "\\"status_code\\":403", strlen("\\"status_code\\":403")) != NULL,
         "PreHook refuses a request with the word, with a 403");
  heimdall_plugin_free(out.data, out.len);
  out = (heimdall_buf_t){0};

  expect(PostHook(S("{}"), S("{\\"id\\":\\"x\\",\\"choices\\":[]}"), NULL, 0, &out) == HEIMDALL_OK &&
             out.len == strlen("{\\"response\\":{\\"id\\":\\"x\\",\\"choices\\":[],\\"${name}\\":{\\"checked\\":true}}}") &&
             memcmp(out.data, "{\\"response\\":{\\"id\\":\\"x\\",\\"choices\\":[],\\"${name}\\":{\\"checked\\":true}}}", out.len) == 0,
         "PostHook tags the response");
  heimdall_plugin_free(out.data, out.len);
  out = (heimdall_buf_t){0};
  expect(PostHook(S("{}"), NULL, 0, S("{\\"message\\":\\"x\\"}"), &out) == HEIMDALL_OK && out.len == 0,
         "PostHook leaves an error alone");

  Cleanup();
  printf("%s\\n", failures ? "FAILED" : "all passed");
  return failures != 0;
}
`,
    Makefile: `${makeHeader(heimdall)}SHARED := $(if $(filter Darwin,$(shell uname -s)),-dynamiclib,-shared -fPIC)
CFLAGS ?= -O2 -Wall -Wextra
# -fvisibility=hidden: only the HEIMDALL_EXPORT functions are exported. -D_GNU_SOURCE: memmem on glibc.
FLAGS := $(CFLAGS) -fvisibility=hidden -D_GNU_SOURCE -I $(HEIMDALL)/native/include

all: ${name}.$(EXT)

${name}.$(EXT): ${id}.c
\t$(CC) $(SHARED) $(FLAGS) -o $@ ${id}.c

test: test_${id}
\t./test_${id}

test_${id}: test_${id}.c ${id}.c
\t$(CC) $(FLAGS) -o $@ test_${id}.c

clean:
\trm -f ${name}.so ${name}.dylib test_${id}

.PHONY: all test clean
`,
    'README.md': `# ${name}

A Heimdall plugin in C, made by \`heimdall plugin new ${name} --lang c\`.

- \`${id}.c\`: the plugin;
- \`test_${id}.c\`: its unit tests, a small harness that includes the plugin and calls its hooks;
- \`Makefile\`: builds \`${name}.so\` against \`native/include\` of the Heimdall checkout named in \`HEIMDALL\`
  (\`heimdall_plugin.h\`, the ABI, and \`json_scan.h\`, a small JSON scanner).

${readmeUsage(name, 'c')}`,
    '.gitignore': `${name}.so\n${name}.dylib\ntest_${id}\n`,
  };
}
