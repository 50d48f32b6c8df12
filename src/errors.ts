/**
 * The error catalogue. Every error Heimdall raises, whether a plugin that can't load, a bad config or a 4xx/5xx
 * answer, is created here, with a stable code that users can search for and docs/errors list.
 */

/** OpenAI's error `type` values, which clients and SDKs switch on. */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'upstream_error'
  | 'timeout_error'
  | 'config_error'
  | 'plugin_error';

/**
 * What an upstream said of its own refusal: its status, and its error's `type`, `code` and `param` as it sent them
 * (OpenAI's, Anthropic's or Gemini's). The client gets these in its own API's error shape, with the gateway's
 * catalogue code beside them as `heimdall_code`.
 */
export interface UpstreamErrorInfo {
  status: number;
  type?: string;
  code?: string;
  param?: string | null;
}

export class HeimdallError extends Error {
  readonly code: string;
  /** An upstream's refusal keeps the upstream's status (see http/status.ts), so this may differ from the catalogue's. */
  statusCode: number;
  readonly type: ErrorType;
  /** Whether a request that failed with this error may be retried on a fallback model. */
  readonly allowFallbacks: boolean;
  /** Seconds the client should wait before trying again, when known (sent as retry-after). */
  retryAfter: number | undefined;
  /** Set when the error is an upstream's answer: what the upstream said, to pass on. */
  upstream: UpstreamErrorInfo | undefined;
  /** The request field the error is about, when it is about one (OpenAI's `param`). */
  param: string | undefined;

  constructor(code: string, statusCode: number, type: ErrorType, message: string, allowFallbacks = true) {
    super(message);
    this.name = 'HeimdallError';
    this.code = code;
    this.statusCode = statusCode;
    this.type = type;
    this.allowFallbacks = allowFallbacks;
    this.retryAfter = undefined;
    this.upstream = undefined;
    this.param = undefined;
  }
}

export interface ErrorFactory<A extends unknown[]> {
  (...args: A): HeimdallError;
  readonly code: string;
  readonly statusCode: number;
}

function define<A extends unknown[]>(
  code: string,
  statusCode: number,
  type: ErrorType,
  message: (...args: A) => string,
): ErrorFactory<A> {
  const factory = (...args: A) => new HeimdallError(code, statusCode, type, message(...args));
  return Object.assign(factory, { code, statusCode });
}

const REBUILD = 'Build the plugin on (or cross-compile it for) the machine that runs the gateway';

/** How to export the ABI's required symbols, by the language the file was written in (inspect.ts detects it). */
const SYMBOL_FIX: Record<string, string> = {
  c: 'in C, put HEIMDALL_PLUGIN_DEFINE_ABI() in one source file and define GetName and Cleanup with HEIMDALL_EXPORT ' +
    '(see native/include/heimdall_plugin.h)',
  go: 'in Go, build with go build -buildmode=c-shared, register the plugin with heimdall.Register (sdk/go) and run ' +
    'go generate to write heimdall_exports.go, the file that exports them',
  rust: 'in Rust, invoke heimdall_plugin::export_plugin!(YourPlugin) once in the crate, whose crate-type is ["cdylib"]',
};
const SYMBOL_FIX_ANY = 'see native/include/heimdall_plugin.h; in C HEIMDALL_PLUGIN_DEFINE_ABI(), in Go the SDK\'s ' +
  'heimdall.Register and go generate, in Rust export_plugin!';

export const Errors = {
  // --- configuration -------------------------------------------------------------------------------------------
  CONFIG_READ: define('HEIMDALL_ERR_CONFIG_READ', 500, 'config_error', (file: string, cause: string) =>
    `cannot read config file ${file}: ${cause}`),
  CONFIG: define('HEIMDALL_ERR_CONFIG', 500, 'config_error', (file: string, issues: string) =>
    `invalid config ${file}:\n${issues}`),
  CONFIG_ENV: define('HEIMDALL_ERR_CONFIG_ENV', 500, 'config_error', (path: string, name: string) =>
    `config ${path} refers to environment variable ${name}, which is not set. Set ${name} or change the reference`),

  // --- plugin loading: each names the file, the cause and the fix ---------------------------------------------
  PLUGIN_PLATFORM: define('HEIMDALL_ERR_PLUGIN_PLATFORM', 500, 'plugin_error', (file: string, platform: string) =>
    `plugin ${file}: native plugins are supported on Linux and macOS only; this gateway runs on ${platform}. ` +
    'Run the gateway on Linux or macOS'),
  PLUGIN_NOT_FOUND: define('HEIMDALL_ERR_PLUGIN_NOT_FOUND', 500, 'plugin_error', (file: string, cause: string) =>
    `plugin ${file}: cannot read the file (${cause}). Check the "path" in config.json (relative paths are resolved ` +
    'against the directory of config.json), and that the plugin was built (npm run build:plugins builds the examples)'),
  PLUGIN_FORMAT: define('HEIMDALL_ERR_PLUGIN_FORMAT', 500, 'plugin_error', (file: string, found: string, expected: string) =>
    `plugin ${file} is ${found}; this gateway needs ${expected}. ${REBUILD}, as a shared library ` +
    '(gcc -shared -fPIC, go build -buildmode=c-shared, or crate-type = ["cdylib"])'),
  PLUGIN_ARCH: define('HEIMDALL_ERR_PLUGIN_ARCH', 500, 'plugin_error', (file: string, built: string, host: string) =>
    `plugin ${file} is built for ${built}; this gateway runs on ${host}. ${REBUILD}`),
  PLUGIN_OPEN: define('HEIMDALL_ERR_PLUGIN_OPEN', 500, 'plugin_error', (file: string, cause: string) =>
    `plugin ${file}: the dynamic loader refused it: ${cause}. Check that the libraries it links against are ` +
    'installed (ldd on Linux, otool -L on macOS)'),
  PLUGIN_OPEN_STUCK: define('HEIMDALL_ERR_PLUGIN_OPEN', 500, 'plugin_error', (file: string, cause: string) =>
    `plugin ${file}: opening it did not complete: ${cause}. Its initialisers (C constructors, a language runtime's ` +
    'start-up), heimdall_plugin_abi_version or GetName hang or crash: run them under a debugger (gdb, lldb)'),
  PLUGIN_SYMBOL: define('HEIMDALL_ERR_PLUGIN_SYMBOL', 500, 'plugin_error', (file: string, missing: string[], language?: string) =>
    `plugin ${file} does not export the required symbol${missing.length > 1 ? 's' : ''} ${missing.join(', ')}. ` +
    `Export them with C linkage: ${SYMBOL_FIX[language ?? ''] ?? SYMBOL_FIX_ANY}`),
  /** A Go plugin built for Go's own loader (Bifrost's way): only a Go program can load it, and dlopen here hangs. */
  PLUGIN_GO_BUILDMODE: define('HEIMDALL_ERR_PLUGIN_FORMAT', 500, 'plugin_error', (file: string) =>
    `plugin ${file} is a Go plugin built with -buildmode=plugin, which only a Go program built by the same toolchain ` +
    'can load (opening it here would hang). Build it with go build -buildmode=c-shared and the Go SDK (sdk/go: ' +
    'heimdall.Register, and go generate for the C exports); docs/bifrost-migration.md converts a Bifrost plugin'),
  PLUGIN_ABI: define('HEIMDALL_ERR_PLUGIN_ABI', 500, 'plugin_error', (file: string, plugin: string, host: string) =>
    `plugin ${file}: incompatible ABI version: gateway speaks ABI ${host}, plugin was built for ABI ${plugin}. ` +
    `Rebuild the plugin against heimdall_plugin.h for ABI ${host}`),
  PLUGIN_NAME: define('HEIMDALL_ERR_PLUGIN_NAME', 500, 'plugin_error', (file: string, cause: string) =>
    `plugin ${file}: ${cause}`),
  PLUGIN_INIT: define('HEIMDALL_ERR_PLUGIN_INIT', 500, 'plugin_error', (name: string, file: string, message: string) =>
    `plugin ${name} (${file}) refused to start: Init failed: ${message}. Fix what the message names (usually the ` +
    'plugin\'s "config" in config.json), or mark the plugin "optional": true to start without it'),
  PLUGIN_HOST: define('HEIMDALL_ERR_PLUGIN_HOST', 500, 'plugin_error', (file: string, cause: string) =>
    `plugin ${file}: its isolated plugin host (the child process that loads it) did not start: ${cause}. The gateway ` +
    'log has what the child wrote, under the plugin\'s name; the host program is build/Release/heimdall-plugin-host, ' +
    'which npm install builds (npx node-gyp rebuild builds it again)'),

  // --- plugin author kit (heimdall plugin new, heimdall plugin test) ----------------------------------------
  SCAFFOLD: define('HEIMDALL_ERR_SCAFFOLD', 500, 'config_error', (what: string, fix: string) =>
    `heimdall plugin new: ${what}. ${fix}`),
  PLUGIN_TEST_INPUT: define('HEIMDALL_ERR_PLUGIN_TEST_INPUT', 500, 'config_error', (source: string, cause: string, fix: string) =>
    `heimdall plugin test: ${source}: ${cause}. ${fix}`),

  // --- plugins at run time ----------------------------------------------------------------------------------
  PLUGIN_FAILED: define('HEIMDALL_ERR_PLUGIN_FAILED', 503, 'server_error', (name: string, hook: string) =>
    `plugin ${name} failed in ${hook}, and its policy is to refuse the request when it fails (on_error: "fail"); ` +
    'the gateway log has the cause under the plugin\'s name'),
  PLUGIN_QUARANTINED: define('HEIMDALL_ERR_PLUGIN_QUARANTINED', 503, 'server_error', (name: string, seconds: number) =>
    `plugin ${name} is quarantined after repeated failures, and its policy is to refuse requests meanwhile ` +
    `(on_error: "fail"); it is tried again within ${seconds} s, or an operator can lift the quarantine`),

  // --- admin API -------------------------------------------------------------------------------------------
  ADMIN_AUTH: define('HEIMDALL_ERR_ADMIN_AUTH', 401, 'authentication_error', () =>
    'the admin API needs "authorization: Bearer <token>" with the token configured in admin.token'),
  ADMIN_PATH: define('HEIMDALL_ERR_ADMIN_PATH', 403, 'permission_error', (file: string, dirs: string[]) =>
    `plugin path ${file} is outside the allowed plugin directories (${dirs.join(', ') || 'none configured'}); ` +
    'put the plugin in one of them, or add its directory to admin.plugin_dirs'),
  ADMIN_PLUGIN_UNKNOWN: define('HEIMDALL_ERR_ADMIN_PLUGIN_UNKNOWN', 404, 'not_found_error', (name: string, known: string[]) =>
    `no plugin named ${JSON.stringify(name)}; registered: ${known.join(', ') || '(none)'}`),
  /** The dashboard's inspector keeps the last requests only (admin.dashboard.requests). */
  ADMIN_REQUEST_UNKNOWN: define('HEIMDALL_ERR_ADMIN_REQUEST_UNKNOWN', 404, 'not_found_error', (id: string) =>
    `request ${JSON.stringify(id)} is not in the inspector's ring: it keeps the last admin.dashboard.requests ` +
    'requests only, recorded while the dashboard is watched (or always, with admin.dashboard.record: "always")'),
  ADMIN_CONFLICT: define('HEIMDALL_ERR_ADMIN_CONFLICT', 409, 'invalid_request_error', (message: string) => message),
  /** The worker pool could not act as one on an admin request (no worker serving, one that did not answer in time). */
  ADMIN_POOL: define('HEIMDALL_ERR_ADMIN_POOL', 503, 'server_error', (message: string) => message),
  ADMIN_BAD_REQUEST: define('HEIMDALL_ERR_ADMIN_BAD_REQUEST', 400, 'invalid_request_error', (message: string) => message),
  ADMIN_BODY_TOO_LARGE: define('HEIMDALL_ERR_ADMIN_BODY_TOO_LARGE', 413, 'invalid_request_error', (limit: number) =>
    `the admin API request body is larger than the limit of ${limit} bytes (admin.body_limit)`),

  // --- requests (4xx) -----------------------------------------------------------------------------------------
  BAD_JSON: define('HEIMDALL_ERR_BAD_JSON', 400, 'invalid_request_error', (cause: string) =>
    `the request body is not valid JSON: ${cause}`),
  BAD_REQUEST: define('HEIMDALL_ERR_BAD_REQUEST', 400, 'invalid_request_error', (message: string) => message),
  CONTENT_TYPE: define('HEIMDALL_ERR_CONTENT_TYPE', 415, 'invalid_request_error', (found: string) =>
    `unsupported content-type ${JSON.stringify(found)}: send the request body as application/json`),
  BODY_TOO_LARGE: define('HEIMDALL_ERR_BODY_TOO_LARGE', 413, 'invalid_request_error', (limit: number) =>
    `the request body is larger than the limit of ${limit} bytes (server.body_limit in config.json)`),
  MODEL_MISSING: define('HEIMDALL_ERR_MODEL_MISSING', 400, 'invalid_request_error', () =>
    'the request has no "model": name one as "provider/model", for example "openai/gpt-4o-mini"'),
  MODEL_FORMAT: define('HEIMDALL_ERR_MODEL_FORMAT', 400, 'invalid_request_error', (model: string) =>
    `model ${JSON.stringify(model)} is not of the form "provider/model", for example "openai/gpt-4o-mini"`),
  PROVIDER_UNKNOWN: define('HEIMDALL_ERR_PROVIDER_UNKNOWN', 404, 'not_found_error', (provider: string, known: string[]) =>
    `unknown provider ${JSON.stringify(provider)}; configured providers: ${known.join(', ') || '(none)'}`),
  MODEL_UNKNOWN: define('HEIMDALL_ERR_MODEL_UNKNOWN', 404, 'not_found_error', (model: string, known: string[]) =>
    `model ${JSON.stringify(model)} is not configured; available: ${known.join(', ')}`),
  PROVIDER_UNAVAILABLE: define('HEIMDALL_ERR_PROVIDER_UNAVAILABLE', 503, 'server_error', (provider: string, cause: string) =>
    `provider ${provider} is not usable: ${cause}`),
  ROUTE_NOT_FOUND: define('HEIMDALL_ERR_ROUTE_NOT_FOUND', 404, 'not_found_error', (method: string, url: string) =>
    `no route for ${method} ${url}`),
  REQUEST_TIMEOUT: define('HEIMDALL_ERR_REQUEST_TIMEOUT', 408, 'invalid_request_error', (part: 'headers' | 'request', ms: number) =>
    part === 'headers'
      ? `the request's headers did not all arrive within ${ms} ms (server.headers_timeout_ms); the connection is closed`
      : `the request, headers and body, did not all arrive within ${ms} ms (server.request_timeout_ms); the connection is closed`),

  // --- upstream (5xx) -----------------------------------------------------------------------------------------
  UPSTREAM_CONNECT: define('HEIMDALL_ERR_UPSTREAM_CONNECT', 502, 'upstream_error', (provider: string, cause: string) =>
    `provider ${provider} could not be reached: ${cause}`),
  UPSTREAM_TIMEOUT: define('HEIMDALL_ERR_UPSTREAM_TIMEOUT', 504, 'timeout_error', (provider: string, ms: number) =>
    `provider ${provider} did not answer within ${ms} ms`),
  UPSTREAM_STATUS: define('HEIMDALL_ERR_UPSTREAM_STATUS', 502, 'upstream_error', (provider: string, status: number, message: string) =>
    `provider ${provider} answered ${status}: ${message}`),
  UPSTREAM_RATE_LIMIT: define('HEIMDALL_ERR_UPSTREAM_RATE_LIMIT', 429, 'rate_limit_error', (provider: string, message: string) =>
    `provider ${provider} is rate limiting: ${message}`),
  UPSTREAM_BAD_RESPONSE: define('HEIMDALL_ERR_UPSTREAM_BAD_RESPONSE', 502, 'upstream_error', (provider: string, cause: string) =>
    `provider ${provider} sent a response that could not be understood: ${cause}`),
  UPSTREAM_REJECTED: define('HEIMDALL_ERR_UPSTREAM_REJECTED', 400, 'invalid_request_error', (provider: string, status: number, message: string) =>
    `provider ${provider} refused the request (${status}): ${message}`),
  UPSTREAM_TOO_LARGE: define('HEIMDALL_ERR_UPSTREAM_TOO_LARGE', 502, 'upstream_error', (provider: string, limit: number) =>
    `provider ${provider} sent an answer larger than ${limit} bytes (max_response_bytes); it was not read further`),
  UPSTREAM_EVENT_TOO_LARGE: define('HEIMDALL_ERR_UPSTREAM_EVENT_TOO_LARGE', 502, 'upstream_error', (provider: string, limit: number) =>
    `provider ${provider} sent a stream line or event larger than ${limit} bytes (max_event_bytes); the stream was ended`),
  JSON_TOO_DEEP: define('HEIMDALL_ERR_JSON_TOO_DEEP', 502, 'upstream_error', (source: string, limit: number) =>
    `${source} sent JSON nested deeper than ${limit} levels; it was refused`),
  UPSTREAM_STREAM_IDLE: define('HEIMDALL_ERR_UPSTREAM_STREAM_IDLE', 504, 'timeout_error', (provider: string, ms: number) =>
    `provider ${provider} sent nothing for ${ms} ms in the middle of a stream (stream_idle_timeout_ms)`),
  PROVIDER_QUEUE_FULL: define('HEIMDALL_ERR_PROVIDER_QUEUE_FULL', 429, 'rate_limit_error', (provider: string, inFlight: number, queued: number) =>
    `provider ${provider} is at its concurrency limit (${inFlight} requests in flight, ${queued} queued); try again shortly ` +
    'or raise concurrency.max_in_flight / concurrency.max_queue'),
  PROVIDER_NO_KEY: define('HEIMDALL_ERR_PROVIDER_NO_KEY', 404, 'not_found_error', (provider: string, model: string) =>
    `no key of provider ${provider} may be used for model ${JSON.stringify(model)}; add the model to a key's "models" list`),
  FIELD_UNSUPPORTED: define('HEIMDALL_ERR_FIELD_UNSUPPORTED', 400, 'invalid_request_error', (provider: string, field: string, why: string) =>
    `provider ${provider} can't take the request field ${field} (${why}); remove it, or let the gateway leave such ` +
    'fields out with the provider\'s "drop_unsupported": true (they are then listed in the x-heimdall-dropped header)'),
  PROVIDER_UNSUPPORTED: define('HEIMDALL_ERR_PROVIDER_UNSUPPORTED', 400, 'invalid_request_error', (provider: string, what: string) =>
    `provider ${provider} does not support ${what}`),
  CLIENT_CLOSED: define('HEIMDALL_ERR_CLIENT_CLOSED', 499, 'invalid_request_error', () =>
    'the client closed the connection before the answer was complete'),
  /** A plugin's host-service call (ABI 1.2) refused: logged once per plugin and kind; the plugin gets a status. */
  HOST_CALL_REFUSED: define('HEIMDALL_ERR_HOST_CALL', 500, 'plugin_error', (plugin: string, why: string) =>
    `plugin ${plugin}: a host service call was refused: ${why}. The plugin got an error status; later refusals of ` +
    'this kind are not logged'),
  HOST_KV_UNAVAILABLE: define('HEIMDALL_ERR_HOST_KV_UNAVAILABLE', 503, 'server_error', (plugin: string) =>
    `plugin ${plugin}: the shared store could not answer (Redis unreachable, or its write backlog full: ` +
    'host.kv.redis.max_pending); the plugin got HEIMDALL_E_UNAVAILABLE. See docs/host-services.md'),
  HOST_REDIS_DOWN: define('HEIMDALL_ERR_HOST_REDIS_DOWN', 503, 'server_error', (url: string, cause: string) =>
    `the shared store's Redis at ${url} is unreachable (${cause}); plugins are served from this process's local ` +
    'view until it is back (docs/host-services.md says what each call sees meanwhile)'),
  HOST_REDIS_CONFIG: define('HEIMDALL_ERR_CONFIG', 500, 'config_error', (cause: string) =>
    `host.kv.redis: ${cause}`),
  INTERNAL: define('HEIMDALL_ERR_INTERNAL', 500, 'server_error', (message: string) => `internal error: ${message}`),
} as const;

/** The OpenAI-style error body every 4xx/5xx answer carries. */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null; heimdall_code?: string };
}

/** A plugin's error may leave out its type: it follows from the status, as OpenAI's do. */
export function typeForStatus(status: number): ErrorType {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 429:
      return 'rate_limit_error';
    default:
      return status < 500 ? 'invalid_request_error' : 'server_error';
  }
}

/** An error as a client of the OpenAI API expects it. An upstream's own type, code and param win over ours. */
export function errorBody(err: {
  message: string;
  type?: string;
  code?: string;
  status_code?: number;
  statusCode?: number;
  upstream?: UpstreamErrorInfo | undefined;
  param?: unknown;
}): ErrorBody {
  const status = err.status_code ?? err.statusCode ?? 500;
  const up = upstreamInfo(err.upstream);
  const body: ErrorBody['error'] = {
    message: err.message,
    type: up?.type ?? err.type ?? typeForStatus(status),
    param: up?.param ?? (typeof err.param === 'string' ? err.param : null),
    code: up?.code ?? err.code ?? null,
  };
  if (up?.code !== undefined && err.code !== undefined) body.heimdall_code = err.code;
  return { error: body };
}

/** An upstream's info as it travels in an AbiError (plain JSON, possibly from a plugin): its well-typed fields. */
export function upstreamInfo(v: unknown): UpstreamErrorInfo | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const u = v as Record<string, unknown>;
  if (typeof u.status !== 'number') return undefined;
  const info: UpstreamErrorInfo = { status: u.status };
  if (typeof u.type === 'string') info.type = u.type;
  if (typeof u.code === 'string') info.code = u.code;
  if (typeof u.param === 'string' || u.param === null) info.param = u.param;
  return info;
}
