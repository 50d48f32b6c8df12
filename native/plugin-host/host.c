/*
 * heimdall-plugin-host -- the child process of the "isolated" execution mode.
 *
 * The gateway starts one of these per isolated plugin. It loads the plugin's shared object, unchanged, and serves the
 * gateway's calls over fd 3, a UNIX stream socket. Whatever the plugin does wrong (a segfault, abort(), a runaway
 * loop, a leak) happens in this process only: the gateway sees it exit, fails the calls it had asked for, and starts
 * a new one. For that reason this program installs no signal handler: a crash must end it with the crash's signal,
 * which the gateway reports.
 *
 *   usage: heimdall-plugin-host <plugin-path> <max_input_bytes> <max_output_bytes>
 *
 * The protocol (src/plugins/isolated/protocol.ts is the gateway's side; all integers little-endian):
 *   request   u32 body_len | u8 op | u8 pad[3] | u32 nbufs | u32 len[nbufs] | the buffers, back to back
 *   response  u32 body_len | i32 status | u32 flags | output (body_len - 8 bytes)
 * body_len counts the bytes after itself. A len of ABSENT (0xffffffff) is a null input: it takes no bytes and the
 * plugin gets NULL; any other len, 0 included, gets a valid pointer (so an empty buffer is not mistaken for none).
 * flags bit 0: the plugin handed back output (possibly empty); bit 1: the status is this host's own (a refusal), not
 * the plugin's, and the output is a plain-text message.
 *
 * Host services (ABI 1.2): while a call runs, the plugin may call the host table this process hands it. Each host
 * call goes to the gateway as a frame of its own, and the gateway serves it at once (src/host/):
 *   host call  u32 body_len | i32 fn | u32 flags (FLAG_CALL, plus FLAG_ONEWAY when no answer is wanted) |
 *              u64 request | i64 num | u64 ttl_ms | f64 real | u32 nbufs | u32 len[nbufs] | the buffers
 *   answer     a request frame, op HOST_REPLY, two buffers: (i32 status | i64 num) and the value (ABSENT if none)
 * The gateway sends nothing else while a call is in flight, so the next frame after a host call is its answer.
 *
 *
 * Exit codes: 0 the gateway asked (CLEANUP) or went away; 1 the plugin could not be loaded; 2 bad command line;
 * 3 the gateway broke the protocol (a frame over max_input_bytes, a malformed frame); 4 the channel failed;
 * 5 out of memory for a request.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "heimdall_plugin.h"

enum op { OP_HELLO = 1, OP_INIT, OP_TRANSPORT, OP_PRE, OP_POST, OP_CHUNK, OP_CLEANUP, OP_HOST_REPLY };

#define CHANNEL 3
#define FLAG_OUTPUT 1u
#define FLAG_HOST 2u
#define FLAG_CALL 4u
#define FLAG_ONEWAY 8u

/* The host's own statuses (with FLAG_HOST). */
#define HOST_LOAD_FAILED (-1)
#define HOST_OUTPUT_TOO_LARGE (-2)
#define HOST_NOT_EXPORTED (-3)

#define MAX_BUFS 3
/* The len of a null input buffer. */
#define ABSENT 0xffffffffu
/* A request body larger than this is released after its call rather than kept for the next one. */
#define KEEP_BODY_BYTES (1024 * 1024)

typedef uint32_t (*abi_version_fn)(void);
typedef void (*free_fn)(uint8_t *data, size_t len);
typedef const char *(*get_name_fn)(void);
typedef void (*cleanup_fn)(void);
typedef uint32_t (*concurrency_fn)(void);
typedef int32_t (*init_fn)(const uint8_t *, size_t, heimdall_buf_t *);
typedef int32_t (*hook2_fn)(const uint8_t *, size_t, const uint8_t *, size_t, heimdall_buf_t *);
typedef int32_t (*hook3_fn)(const uint8_t *, size_t, const uint8_t *, size_t, const uint8_t *, size_t, heimdall_buf_t *);
typedef void (*set_host_fn)(const heimdall_host_t *);

static struct {
  abi_version_fn abi_version;
  free_fn release;
  get_name_fn get_name;
  cleanup_fn cleanup;
  concurrency_fn concurrency;
  init_fn init;
  hook3_fn transport;
  hook2_fn pre;
  hook3_fn post;
  hook2_fn chunk;
  set_host_fn set_host;
  int loaded;   /* HELLO succeeded */
  int ready;    /* INIT succeeded: Cleanup is owed from now on */
} plugin;

static const char *plugin_path;
static uint64_t max_input;
static uint64_t max_output;

static void fail(int code, const char *format, ...) {
  va_list args;
  va_start(args, format);
  fputs("heimdall-plugin-host: ", stderr);
  vfprintf(stderr, format, args);
  fputc('\n', stderr);
  va_end(args);
  exit(code);
}

/* The gateway is gone (EOF, or a write failed): release the plugin as at a normal shutdown, so that what it buffers
 * (an audit log, say) is not lost. */
static int channel_gone;

static void gateway_gone(void) {
  /* Cleanup may call the host services: with the gateway gone they answer HEIMDALL_E_UNAVAILABLE at once. */
  channel_gone = 1;
  if (plugin.ready) plugin.cleanup();
  exit(0);
}

/* ---- The channel ---------------------------------------------------------------------------------------------- */

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* 1: read all `len` bytes; 0: end of file before the first byte; exits on an error or an end of file midway. */
static int read_full(uint8_t *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = read(CHANNEL, buf + done, len - done);
    if (n > 0) {
      done += (size_t)n;
    } else if (n == 0) {
      if (done == 0) return 0;
      fail(4, "the gateway closed the channel in the middle of a frame");
    } else if (errno != EINTR) {
      fail(4, "reading the channel failed: %s", strerror(errno));
    }
  }
  return 1;
}

/* Write every byte of the iovecs to the channel; a short write goes on with the rest. 0 when the channel fails. */
static int write_all(struct iovec *at, int count) {
  while (count > 0) {
    ssize_t n = writev(CHANNEL, at, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    size_t left = (size_t)n;
    while (count > 0 && left >= at->iov_len) {
      left -= at->iov_len;
      at++;
      count--;
    }
    if (count > 0) {
      at->iov_base = (uint8_t *)at->iov_base + left;
      at->iov_len -= left;
    }
  }
  return 1;
}

/* Writes a response: the header, then the output straight from wherever it is (the plugin's own buffer). Returns 0
 * when the gateway is gone. */
static int reply(int32_t status, uint32_t flags, const void *output, size_t len) {
  uint8_t head[12];
  put_u32(head, (uint32_t)(8 + len));
  put_u32(head + 4, (uint32_t)status);
  put_u32(head + 8, flags);
  struct iovec iov[2] = {{head, sizeof head}, {(void *)output, len}};
  int count = len > 0 ? 2 : 1;
  return write_all(iov, count);
}

/* A response carrying this host's own message (a refusal), not the plugin's. */
static void reply_host(int32_t status, const char *format, ...) {
  char message[512];
  va_list args;
  va_start(args, format);
  int len = vsnprintf(message, sizeof message, format, args);
  va_end(args);
  if (len < 0) len = 0;
  if ((size_t)len >= sizeof message) len = sizeof message - 1;
  if (!reply(status, FLAG_OUTPUT | FLAG_HOST, message, (size_t)len)) gateway_gone();
}

/* ---- HELLO: load the plugin and say what it is ---------------------------------------------------------------- */

/* Appends `s` as a JSON string (quotes included). `out` has room for 6 bytes per input byte plus 2. */
static char *json_string(char *out, const char *s) {
  *out++ = '"';
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      *out++ = '\\';
      *out++ = (char)c;
    } else if (c < 0x20) {
      out += sprintf(out, "\\u%04x", c);
    } else {
      *out++ = (char)c;
    }
  }
  *out++ = '"';
  return out;
}

static void hello(void) {
  if (plugin.loaded) fail(3, "HELLO received twice");
  void *handle = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    const char *why = dlerror();
    reply_host(HOST_LOAD_FAILED, "%s", why ? why : "dlopen failed");
    exit(1);
  }

  static const char *const names[] = {"heimdall_plugin_abi_version", "heimdall_plugin_free", "GetName", "Cleanup",
                                      "Init", "TransportInterceptor", "PreHook", "PostHook", "StreamChunkHook",
                                      "heimdall_plugin_concurrency", "heimdall_plugin_set_host"};
  void *found[sizeof names / sizeof names[0]];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) found[i] = dlsym(handle, names[i]);
  /* ISO C has no cast from dlsym's void * to a function pointer; POSIX guarantees the representations match. */
#define BIND(field, i) memcpy(&plugin.field, &found[i], sizeof plugin.field)
  BIND(abi_version, 0);
  BIND(release, 1);
  BIND(get_name, 2);
  BIND(cleanup, 3);
  BIND(init, 4);
  BIND(transport, 5);
  BIND(pre, 6);
  BIND(post, 7);
  BIND(chunk, 8);
  BIND(concurrency, 9);
  BIND(set_host, 10);
#undef BIND

  char missing[256] = "";
  for (size_t i = 0; i < 4; i++) {
    if (found[i] != NULL) continue;
    if (missing[0]) strcat(missing, ", ");
    strcat(missing, names[i]);
  }
  if (missing[0]) {
    reply_host(HOST_LOAD_FAILED, "missing required symbols: %s", missing);
    exit(1);
  }

  /* The version comes first, and decides whether the rest may be called at all: with another major version even
   * GetName may mean something else. The gateway refuses such a plugin, and names both versions. */
  uint32_t version = plugin.abi_version();
  const char *name = NULL;
  uint32_t concurrency = 1;
  int same_major = version >> 16 == HEIMDALL_ABI_VERSION_MAJOR;
  if (same_major) {
    name = plugin.get_name();
    if (plugin.concurrency != NULL) concurrency = plugin.concurrency();
  }

  size_t name_len = name ? strlen(name) : 0;
  char *json = malloc(512 + 6 * name_len);
  if (json == NULL) fail(5, "out of memory");
  char *p = json + sprintf(json, "{\"abi_version\":%lu", (unsigned long)version);
  /* No "name" at all when GetName was not called; null when it returned NULL. */
  if (same_major) {
    p += sprintf(p, ",\"name\":");
    if (name) {
      p = json_string(p, name);
    } else {
      p += sprintf(p, "null");
    }
  }
  p += sprintf(p, ",\"exports\":[");
  int first = 1;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (found[i] == NULL) continue;
    p += sprintf(p, "%s\"%s\"", first ? "" : ",", names[i]);
    first = 0;
  }
  p += sprintf(p, "],\"concurrency\":%lu}", (unsigned long)concurrency);
  plugin.loaded = 1;
  int sent = reply(0, FLAG_OUTPUT, json, (size_t)(p - json));
  free(json);
  if (!sent) exit(0); /* nothing to clean up yet */
}

/* ---- Host services (ABI 1.2): each call relayed to the gateway ---------------------------------------------- */

enum host_fn { FN_LOG = 1, FN_METRIC_DEFINE, FN_METRIC_RECORD, FN_STATE_GET, FN_STATE_SET, FN_KV_GET, FN_KV_SET,
               FN_KV_INCR, FN_KV_CAS };

/* A plugin thread of its own may call too: one host call at a time on the channel. */
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *answer_buf;
static size_t answer_cap;
/* A log message is cut here (the gateway cuts it further, to host.log_max_bytes). */
#define MAX_LOG_BYTES (64 * 1024)

static void put_u64(uint8_t *p, uint64_t v) {
  put_u32(p, (uint32_t)v);
  put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }


/*
 * One host call: sends it, and unless it is one-way waits for the answer, whose number goes to *num and whose value
 * (min(cap, its length) bytes) to out, its full length to *out_len. NULL buffers go as ABSENT. Returns the status.
 */
static int32_t host_call(int fn, int oneway, uint64_t request, int64_t num, uint64_t ttl, double real,
                         const uint8_t *const *bufs, const size_t *lens, unsigned nbufs, int64_t *num_out, uint8_t *out,
                         size_t cap, size_t *out_len) {
  if (channel_gone) return HEIMDALL_E_UNAVAILABLE;
  uint64_t total = 8 + 32 + 4 + 4 * (uint64_t)nbufs;
  for (unsigned i = 0; i < nbufs; i++) {
    if (bufs[i] == NULL && lens[i] > 0 && fn != FN_LOG) return HEIMDALL_E_INVALID;
    if (bufs[i] != NULL) total += lens[i];
  }
  /* Frames from this process are bounded by max_output (the gateway's reader refuses larger ones). */
  if (total + 4 > max_output || total > UINT32_MAX - 64) return HEIMDALL_E_LIMIT;
  uint8_t head[4 + 8 + 32 + 4 + 4 * 4];
  put_u32(head, (uint32_t)total);
  put_u32(head + 4, (uint32_t)fn);
  put_u32(head + 8, FLAG_CALL | (oneway ? FLAG_ONEWAY : 0));
  put_u64(head + 12, request);
  put_u64(head + 20, (uint64_t)num);
  put_u64(head + 28, ttl);
  uint64_t bits;
  memcpy(&bits, &real, sizeof bits);
  put_u64(head + 36, bits);
  put_u32(head + 44, nbufs);
  struct iovec iov[1 + 4];
  for (unsigned i = 0; i < nbufs; i++) {
    put_u32(head + 48 + 4 * i, bufs[i] == NULL ? ABSENT : (uint32_t)lens[i]);
    iov[1 + i].iov_base = (void *)(bufs[i] == NULL ? (const uint8_t *)"" : bufs[i]);
    iov[1 + i].iov_len = bufs[i] == NULL ? 0 : lens[i];
  }
  iov[0].iov_base = head;
  iov[0].iov_len = 48 + 4 * nbufs;

  pthread_mutex_lock(&host_lock);
  if (!write_all(iov, 1 + (int)nbufs)) {
    pthread_mutex_unlock(&host_lock);
    gateway_gone();
  }
  if (oneway) {
    pthread_mutex_unlock(&host_lock);
    return HEIMDALL_OK;
  }
  uint8_t len_bytes[4];
  if (!read_full(len_bytes, sizeof len_bytes)) {
    pthread_mutex_unlock(&host_lock);
    gateway_gone();
  }
  uint32_t body_len = get_u32(len_bytes);
  if (body_len < 8 + 8 + 12 || body_len > max_input) fail(3, "malformed host answer: %lu bytes", (unsigned long)body_len);
  if (body_len > answer_cap) {
    free(answer_buf);
    answer_buf = malloc(body_len);
    if (answer_buf == NULL) fail(5, "out of memory for a host answer of %lu bytes", (unsigned long)body_len);
    answer_cap = body_len;
  }
  if (!read_full(answer_buf, body_len)) fail(4, "the gateway closed the channel in the middle of a frame");
  if (answer_buf[0] != OP_HOST_REPLY || get_u32(answer_buf + 4) != 2 || get_u32(answer_buf + 8) != 12) {
    fail(3, "malformed host answer: op %d", answer_buf[0]);
  }
  uint32_t value_len = get_u32(answer_buf + 12);
  const uint8_t *result = answer_buf + 16;
  int32_t status = (int32_t)get_u32(result);
  if (num_out != NULL) *num_out = (int64_t)get_u64(result + 4);
  if (value_len != ABSENT) {
    if (16 + 12 + (uint64_t)value_len != body_len) fail(3, "malformed host answer: lengths do not add up");
    if (out != NULL && cap > 0) memcpy(out, result + 12, value_len < cap ? value_len : cap);
    if (out_len != NULL) *out_len = value_len;
  } else if (out_len != NULL) {
    *out_len = 0;
  }
  pthread_mutex_unlock(&host_lock);
  return status;
}

static void svc_log(uint64_t request, int32_t level, const uint8_t *msg, size_t len) {
  if (msg == NULL) return;
  const uint8_t *bufs[1] = {msg};
  size_t lens[1] = {len > MAX_LOG_BYTES ? MAX_LOG_BYTES : len};
  /* The full length goes in `ttl`, so the gateway's note of how long the message was stays true. */
  host_call(FN_LOG, 1, request, level, len, 0, bufs, lens, 1, NULL, NULL, 0, NULL);
}

static int32_t svc_metric_define(int32_t kind, const uint8_t *name, size_t name_len, const uint8_t *help,
                                 size_t help_len, const uint8_t *labels, size_t labels_len, const double *buckets,
                                 size_t buckets_len, uint32_t *id) {
  if (id == NULL || buckets_len > 64) return id == NULL ? HEIMDALL_E_INVALID : HEIMDALL_E_LIMIT;
  const uint8_t *bufs[4] = {name, help, labels, (const uint8_t *)buckets};
  size_t lens[4] = {name_len, help_len, labels_len, buckets_len * sizeof(double)};
  int64_t answer = 0;
  int32_t status = host_call(FN_METRIC_DEFINE, 0, 0, kind, 0, 0, bufs, lens, 4, &answer, NULL, 0, NULL);
  if (status == HEIMDALL_OK) *id = (uint32_t)answer;
  return status;
}

static int32_t svc_metric_record(uint32_t id, const uint8_t *values, size_t values_len, double value) {
  const uint8_t *bufs[1] = {values};
  size_t lens[1] = {values_len};
  return host_call(FN_METRIC_RECORD, 0, 0, id, 0, value, bufs, lens, 1, NULL, NULL, 0, NULL);
}

static int32_t svc_state_get(uint64_t request, const uint8_t *key, size_t key_len, uint8_t *value, size_t cap,
                             size_t *value_len) {
  if (value_len == NULL || (value == NULL && cap > 0)) return HEIMDALL_E_INVALID;
  const uint8_t *bufs[1] = {key};
  size_t lens[1] = {key_len};
  return host_call(FN_STATE_GET, 0, request, 0, 0, 0, bufs, lens, 1, NULL, value, cap, value_len);
}

static int32_t svc_state_set(uint64_t request, const uint8_t *key, size_t key_len, const uint8_t *value,
                             size_t value_len) {
  const uint8_t *bufs[2] = {key, value};
  size_t lens[2] = {key_len, value_len};
  return host_call(FN_STATE_SET, 0, request, 0, 0, 0, bufs, lens, 2, NULL, NULL, 0, NULL);
}

static int32_t svc_kv_get(const uint8_t *key, size_t key_len, uint8_t *value, size_t cap, size_t *value_len) {
  if (value_len == NULL || (value == NULL && cap > 0)) return HEIMDALL_E_INVALID;
  const uint8_t *bufs[1] = {key};
  size_t lens[1] = {key_len};
  return host_call(FN_KV_GET, 0, 0, 0, 0, 0, bufs, lens, 1, NULL, value, cap, value_len);
}

static int32_t svc_kv_set(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                          uint64_t ttl_ms) {
  const uint8_t *bufs[2] = {key, value};
  size_t lens[2] = {key_len, value_len};
  return host_call(FN_KV_SET, 0, 0, 0, ttl_ms, 0, bufs, lens, 2, NULL, NULL, 0, NULL);
}

static int32_t svc_kv_incr(const uint8_t *key, size_t key_len, int64_t delta, uint64_t ttl_ms, int64_t *value) {
  if (value == NULL) return HEIMDALL_E_INVALID;
  const uint8_t *bufs[1] = {key};
  size_t lens[1] = {key_len};
  return host_call(FN_KV_INCR, 0, 0, delta, ttl_ms, 0, bufs, lens, 1, value, NULL, 0, NULL);
}

static int32_t svc_kv_cas(const uint8_t *key, size_t key_len, const uint8_t *expected, size_t expected_len,
                          const uint8_t *value, size_t value_len, uint64_t ttl_ms) {
  if (value == NULL) return HEIMDALL_E_INVALID;
  const uint8_t *bufs[3] = {key, expected, value};
  size_t lens[3] = {key_len, expected_len, value_len};
  return host_call(FN_KV_CAS, 0, 0, 0, ttl_ms, 0, bufs, lens, 3, NULL, NULL, 0, NULL);
}

static const heimdall_host_t host_table = {
    sizeof(heimdall_host_t), HEIMDALL_ABI_VERSION, svc_log,    svc_metric_define, svc_metric_record, svc_state_get,
    svc_state_set,           svc_kv_get,           svc_kv_set, svc_kv_incr,       svc_kv_cas,
};

/* ---- Calls ---------------------------------------------------------------------------------------------------- */

/* Hands the plugin's output to the gateway and gives the buffer back to the plugin, exactly once. */
static void send_output(int32_t status, heimdall_buf_t *out) {
  if (out->data == NULL) {
    if (!reply(status, 0, NULL, 0)) gateway_gone();
    return;
  }
  if (out->len > max_output) {
    size_t len = out->len;
    plugin.release(out->data, out->len);
    reply_host(HOST_OUTPUT_TOO_LARGE, "output of %llu bytes is over the limit of %llu bytes", (unsigned long long)len,
               (unsigned long long)max_output);
    return;
  }
  int sent = reply(status, FLAG_OUTPUT, out->data, out->len);
  plugin.release(out->data, out->len);
  if (!sent) gateway_gone();
}

static void init(const uint8_t *config, size_t config_len) {
  if (!plugin.loaded || plugin.ready) fail(3, "INIT out of order");
  /* The gateway sends INIT once it has accepted the plugin, whether or not the plugin exports Init: from here on
   * Cleanup is owed. */
  if (plugin.init == NULL) {
    if (plugin.set_host != NULL) plugin.set_host(&host_table);
    plugin.ready = 1;
    if (!reply(0, 0, NULL, 0)) gateway_gone();
    return;
  }
  heimdall_buf_t out = {NULL, 0};
  /* The host services, served by the gateway over this channel, before Init as the header says. */
  if (plugin.set_host != NULL) plugin.set_host(&host_table);
  int32_t status = plugin.init(config, config_len, &out);
  /* After a refusal Cleanup must not run (the header's rule), even when the gateway goes away. */
  plugin.ready = status == HEIMDALL_OK;
  send_output(status, &out);
}

static void hook(int op, const uint8_t *const *in, const size_t *len) {
  if (!plugin.ready) fail(3, "hook call before INIT");
  heimdall_buf_t out = {NULL, 0};
  int32_t status;
  switch (op) {
    case OP_TRANSPORT:
      if (plugin.transport == NULL) goto not_exported;
      status = plugin.transport(in[0], len[0], in[1], len[1], in[2], len[2], &out);
      break;
    case OP_PRE:
      if (plugin.pre == NULL) goto not_exported;
      status = plugin.pre(in[0], len[0], in[1], len[1], &out);
      break;
    case OP_POST:
      if (plugin.post == NULL) goto not_exported;
      /* No response or no error: NULL, as the gateway sent it (an empty one is not NULL). */
      status = plugin.post(in[0], len[0], in[1], len[1], in[2], len[2], &out);
      break;
    default: /* OP_CHUNK */
      if (plugin.chunk == NULL) goto not_exported;
      status = plugin.chunk(in[0], len[0], in[1], len[1], &out);
      break;
  }
  send_output(status, &out);
  return;
not_exported:
  reply_host(HOST_NOT_EXPORTED, "not exported");
}

static void cleanup(void) {
  if (plugin.ready) plugin.cleanup();
  plugin.ready = 0;
  reply(0, 0, NULL, 0);
  exit(0);
}

/* ---- The loop ------------------------------------------------------------------------------------------------- */

static unsigned long long parse_size(const char *text, const char *what) {
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  /* Frame lengths are u32, with room for the headers. */
  if (errno || end == text || *end || value == 0 || value > UINT32_MAX - 64) fail(2, "bad %s: %s", what, text);
  return value;
}

static unsigned expected_bufs(int op) {
  switch (op) {
    case OP_INIT: return 1;
    case OP_PRE: case OP_CHUNK: return 2;
    case OP_TRANSPORT: case OP_POST: return 3;
    default: return 0;
  }
}

int main(int argc, char **argv) {
#ifdef __linux__
  /* Die with the gateway, even in the middle of a runaway hook. If it is already gone, go at once. */
  pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) return 0;
#endif
  if (argc != 4) fail(2, "usage: heimdall-plugin-host <plugin-path> <max_input_bytes> <max_output_bytes>");
  plugin_path = argv[1];
  max_input = parse_size(argv[2], "max_input_bytes");
  max_output = parse_size(argv[3], "max_output_bytes");

  /* The channel is ours alone: a process the plugin starts must not hold the gateway's socket open. */
  int fd_flags = fcntl(CHANNEL, F_GETFD);
  if (fd_flags < 0) fail(2, "fd %d (the channel to the gateway) is not open", CHANNEL);
  fcntl(CHANNEL, F_SETFD, fd_flags | FD_CLOEXEC);
  /* A write to a gateway that is gone fails with EPIPE instead of killing us before Cleanup runs. */
  signal(SIGPIPE, SIG_IGN);
  /* Plugin output reaches the gateway's log line by line, as it is written. */
  setvbuf(stdout, NULL, _IOLBF, 0);

  uint8_t *body = NULL;
  size_t body_cap = 0;
  for (;;) {
    uint8_t head[4];
    if (!read_full(head, sizeof head)) gateway_gone();
    uint32_t body_len = get_u32(head);
    if (body_len > max_input) fail(3, "a request of %lu bytes is over the limit of %llu bytes", (unsigned long)body_len,
                                   (unsigned long long)max_input);
    if (body_len < 8) fail(3, "malformed request: body of %lu bytes", (unsigned long)body_len);
    if (body_len > body_cap) {
      free(body);
      body = malloc(body_len);
      if (body == NULL) fail(5, "out of memory for a request of %lu bytes", (unsigned long)body_len);
      body_cap = body_len;
    }
    if (!read_full(body, body_len)) fail(4, "the gateway closed the channel in the middle of a frame");

    int op = body[0];
    uint32_t nbufs = get_u32(body + 4);
    if (op < OP_HELLO || op > OP_CLEANUP || nbufs != expected_bufs(op) || 8 + 4 * (uint64_t)nbufs > body_len) {
      fail(3, "malformed request: op %d with %lu buffers", op, (unsigned long)nbufs);
    }
    const uint8_t *in[MAX_BUFS] = {NULL, NULL, NULL};
    size_t len[MAX_BUFS] = {0, 0, 0};
    uint64_t at = 8 + 4 * (uint64_t)nbufs;
    for (uint32_t i = 0; i < nbufs; i++) {
      uint32_t n = get_u32(body + 8 + 4 * i);
      if (n == ABSENT) continue; /* NULL, 0 */
      len[i] = n;
      in[i] = body + at;
      at += n;
    }
    if (at != body_len) fail(3, "malformed request: buffer lengths do not add up to the frame's");

    switch (op) {
      case OP_HELLO: hello(); break;
      case OP_INIT: init(in[0], len[0]); break;
      case OP_CLEANUP: cleanup(); break;
      default: hook(op, in, len); break;
    }
    if (body_cap > KEEP_BODY_BYTES) {
      free(body);
      body = NULL;
      body_cap = 0;
    }
  }
}
