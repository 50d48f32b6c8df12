/**
 * The config.json schema. The TypeScript types are inferred from it, so the schema is the one source of truth.
 */
import { z } from 'zod';

/** `env.NAME`: a secret (or any value) read from the environment when the config is loaded. */
export const ENV_REF = /^env\.([A-Za-z_][A-Za-z0-9_]*)$/;

const envRef = z
  .string()
  .regex(ENV_REF, 'must be an environment reference such as "env.OPENAI_API_KEY", so the secret stays out of config.json');

const timeoutMs = z.number().int().positive().max(3_600_000);

// --- providers -------------------------------------------------------------------------------------------------

const modelList = z.array(z.string().min(1));

/** One upstream credential. Several keys share a provider's traffic by weight; `models` limits a key to some models. */
const providerKey = z.strictObject({
  key: envRef,
  weight: z.number().positive().max(1_000_000).default(1),
  models: modelList.optional(),
});

/** Retries of one upstream call, with exponential backoff and jitter, on network errors, 429 and 5xx. */
const retriesSchema = z.strictObject({
  max_retries: z.number().int().min(0).max(20).default(0),
  initial_backoff_ms: z.number().int().positive().max(60_000).default(250),
  max_backoff_ms: z.number().int().positive().max(600_000).default(10_000),
  /** An upstream retry-after longer than this is not waited out: the error goes on (to a fallback, or the client). */
  max_retry_after_ms: z.number().int().nonnegative().max(3_600_000).default(30_000),
});

/** In-flight upstream calls (a stream counts until it ends), and how many more may wait for a slot. */
const concurrencySchema = z.strictObject({
  max_in_flight: z.number().int().positive().max(1_000_000).default(1000),
  max_queue: z.number().int().nonnegative().max(10_000_000).default(1000),
});

/** What every provider that speaks HTTP to an upstream shares: credentials, limits and timeouts. */
const httpProviderFields = {
  /** Shorthand for one key: `"api_key": "env.X"` is `"keys": [{"key": "env.X"}]`. */
  api_key: envRef.optional(),
  keys: z.array(providerKey).min(1).optional(),
  /** When set, only these models may be requested (and /v1/models lists them). */
  models: modelList.optional(),
  /** A non-streamed call's whole answer, or a stream's first response headers, must arrive within this. */
  timeout_ms: timeoutMs.default(60_000),
  /** The longest silence allowed between two chunks of a stream; timeout_ms when unset. */
  stream_idle_timeout_ms: timeoutMs.optional(),
  /** Extra headers sent upstream, e.g. an organisation id. Values may be env references. */
  headers: z.record(z.string(), z.string()).default({}),
  /** Upstream connections kept open per provider. */
  connections: z.number().int().positive().max(4096).default(128),
  retries: retriesSchema.default({ max_retries: 0, initial_backoff_ms: 250, max_backoff_ms: 10_000, max_retry_after_ms: 30_000 }),
  concurrency: concurrencySchema.default({ max_in_flight: 1000, max_queue: 1000 }),
  /** The largest whole (non-streamed) answer taken from the upstream; a larger one fails with its own code. */
  max_response_bytes: z.number().int().positive().max(4 * 1024 * 1024 * 1024).default(32 * 1024 * 1024),
  /** The largest line, and event, of an upstream stream (SSE); a larger one ends the stream with its own code. */
  max_event_bytes: z.number().int().positive().max(256 * 1024 * 1024).default(1024 * 1024),
  /**
   * A request field this provider's wire format can't express is refused with a 400 naming it (the default), or,
   * when true, left out and named in the answer's x-heimdall-dropped header.
   */
  drop_unsupported: z.boolean().default(false),
};

const httpUrl = z.url({ protocol: /^https?$/ });
const oneKeyForm = (p: { api_key?: string | undefined; keys?: unknown[] | undefined }) => p.api_key === undefined || p.keys === undefined;
const oneKeyFormIssue = { message: 'give either "api_key" or "keys", not both', path: ['keys'] };

/** The OpenAI chat-completions wire format, with the default URL of each well-known server that speaks it. */
export const OPENAI_COMPATIBLE_URLS = {
  openai: 'https://api.openai.com/v1',
  groq: 'https://api.groq.com/openai/v1',
  mistral: 'https://api.mistral.ai/v1',
  together: 'https://api.together.xyz/v1',
  deepseek: 'https://api.deepseek.com/v1',
  openrouter: 'https://openrouter.ai/api/v1',
  ollama: 'http://127.0.0.1:11434/v1',
  vllm: 'http://127.0.0.1:8000/v1',
} as const;
export type OpenAICompatibleType = keyof typeof OPENAI_COMPATIBLE_URLS;

function openaiCompatible<T extends OpenAICompatibleType>(type: T) {
  return z
    .strictObject({ type: z.literal(type), base_url: httpUrl.default(OPENAI_COMPATIBLE_URLS[type]), ...httpProviderFields })
    .refine(oneKeyForm, oneKeyFormIssue);
}

const azureProvider = z
  .strictObject({
    type: z.literal('azure'),
    /** The resource endpoint, e.g. https://my-resource.openai.azure.com */
    base_url: httpUrl,
    api_version: z.string().min(1).default('2024-10-21'),
    /** Model name -> deployment name; a model not listed is used as the deployment name itself. */
    deployments: z.record(z.string().min(1), z.string().min(1)).default({}),
    ...httpProviderFields,
  })
  .refine(oneKeyForm, oneKeyFormIssue);

const anthropicProvider = z
  .strictObject({
    type: z.literal('anthropic'),
    base_url: httpUrl.default('https://api.anthropic.com'),
    anthropic_version: z.string().min(1).default('2023-06-01'),
    /** The Messages API requires max_tokens; this is sent when the request gives none. */
    default_max_tokens: z.number().int().positive().default(4096),
    ...httpProviderFields,
  })
  .refine(oneKeyForm, oneKeyFormIssue);

const geminiProvider = z
  .strictObject({
    type: z.literal('gemini'),
    base_url: httpUrl.default('https://generativelanguage.googleapis.com/v1beta'),
    ...httpProviderFields,
  })
  .refine(oneKeyForm, oneKeyFormIssue);

const mockProvider = z.strictObject({
  type: z.literal('mock'),
  models: modelList.optional(),
  /** Delay before answering, and between streamed chunks, to imitate a real model. */
  latency_ms: z.number().int().nonnegative().max(60_000).default(0),
});

export const PROVIDER_TYPES = [...(Object.keys(OPENAI_COMPATIBLE_URLS) as OpenAICompatibleType[]), 'azure', 'anthropic', 'gemini', 'mock'] as const;

export const providerSchema = z.discriminatedUnion('type', [
  openaiCompatible('openai'),
  openaiCompatible('groq'),
  openaiCompatible('mistral'),
  openaiCompatible('together'),
  openaiCompatible('deepseek'),
  openaiCompatible('openrouter'),
  openaiCompatible('ollama'),
  openaiCompatible('vllm'),
  azureProvider,
  anthropicProvider,
  geminiProvider,
  mockProvider,
]);

/** How many failures quarantine a plugin, and for how long; failures: 0 turns the breaker off. */
const breakerSchema = z.strictObject({
  failures: z.number().int().min(0).max(1_000_000).default(5),
  window_ms: z.number().int().positive().max(3_600_000).default(30_000),
  cooldown_ms: z.number().int().positive().max(3_600_000).default(30_000),
});

const pluginSchema = z.strictObject({
  /** The shared object. Relative paths resolve against config.json's directory; the platform's extension
   * (.so or .dylib) is added when the path has none. */
  path: z.string().min(1),
  /**
   * Where the hooks run (docs/plugin-modes.md): "inline" on the event loop (fastest; no deadline, shares the
   * process's fate), "threaded" on a worker thread with a deadline (blocking I/O is fine), "isolated" in a child
   * process (a crash, a runaway loop or too much memory kills only the child, which is restarted).
   */
  mode: z.enum(['inline', 'threaded', 'isolated']).default('inline'),
  /** Threaded and isolated: the deadline of one hook call, from when it is asked for (a wait for a slot counts). */
  timeout_ms: z.number().int().positive().max(600_000).default(2000),
  /** Threaded: calls at once, at most what the plugin declares (heimdall_plugin_concurrency); default: that. */
  concurrency: z.number().int().positive().max(1024).optional(),
  /** Threaded and isolated: calls that may wait for the plugin; beyond, a call fails at once. */
  max_queue: z.number().int().nonnegative().max(1_000_000).default(1024),
  /** Isolated: the child's memory (resident set) cap; past it the child is killed and restarted. */
  max_memory_mb: z.number().int().min(16).max(1_048_576).default(512),
  /** The largest output a hook may hand back; a larger one is a failure, and is not copied. */
  max_output_bytes: z.number().int().positive().max(1024 * 1024 * 1024).default(16 * 1024 * 1024),
  /** When a hook fails: go on without it ("continue"), or answer the request 503 ("fail"). */
  on_error: z.enum(['continue', 'fail']).default('continue'),
  breaker: breakerSchema.default({ failures: 5, window_ms: 30_000, cooldown_ms: 30_000 }),
  enabled: z.boolean().default(true),
  /** An optional plugin that fails to load or initialise is left out instead of stopping the gateway. */
  optional: z.boolean().default(false),
  /** Handed to the plugin's Init as JSON. String values "env.NAME" are resolved first. */
  config: z.record(z.string(), z.unknown()).default({}),
  /** Development: reload the plugin when its file changes on disk (a build finished). */
  watch: z.boolean().default(false),
  /**
   * Loaded only from inside admin.plugin_dirs, checked at every load (start, reload, watch), as a plugin added
   * through the admin API is: the admin API writes this on the entries it persists, so that they stay confined
   * after a restart.
   */
  confine: z.boolean().optional(),
});

const dashboardSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** Requests the inspector keeps (the last ones, each with its hooks' timeline); 0 turns the inspector off. */
  requests: z.number().int().min(0).max(5000).default(200),
  /**
   * When the inspector records: "while_watched" (from the dashboard's first read until 15 minutes after its last,
   * so a gateway nobody watches pays nothing) or "always" (a microsecond or a few per request).
   */
  record: z.enum(['while_watched', 'always']).default('while_watched'),
});

/** The admin API loads native code, so it is off by default, token-protected and loopback-bound. */
const adminSchema = z.strictObject({
  enabled: z.boolean().default(false),
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8081),
  /** The bearer token, as an environment reference. Required when the admin API is enabled. */
  token: envRef.optional(),
  /** Plugins may be loaded through the API only from inside these directories (after resolving symlinks). */
  plugin_dirs: z.array(z.string().min(1)).default([]),
  /** Write changes made through the API back to config.json, so a restart keeps them. */
  persist: z.boolean().default(false),
  /** Environment variables that plugin configs sent through the API may refer to ("env.NAME"). */
  allowed_env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).default([]),
  /**
   * The admin API loads native code: it listens on a non-loopback address only when this says so explicitly (and
   * then only behind TLS or a trusted network, which the gateway can't check).
   */
  allow_remote: z.boolean().default(false),
  /** Largest admin API request body, in bytes. */
  body_limit: z.number().int().positive().max(64 * 1024 * 1024).default(1024 * 1024),
  /** The dashboard page on the admin listener (docs/dashboard.md), and its request inspector. */
  dashboard: dashboardSchema.default({ enabled: true, requests: 200, record: 'while_watched' }),
}).refine((a) => !a.enabled || a.token !== undefined, {
  message: 'the admin API needs a "token" (an environment reference such as "env.HEIMDALL_ADMIN_TOKEN") when enabled',
  path: ['token'],
});

const providerName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'provider names use lower-case letters, digits, "-" and "_"');

// --- host services (ABI 1.2: docs/host-services.md) ------------------------------------------------------------

const redisSchema = z.strictObject({
  /** redis://[user:password@]host:port[/db]; "env.NAME" reads it from the environment. */
  url: z.string().min(1).default('redis://127.0.0.1:6379'),
  /** Every key the gateway writes starts with this, then the plugin's name. */
  key_prefix: z.string().max(64).default('heimdall:'),
  /** kv_incr leases this many units of a counter from Redis at a time (docs/host-services.md: the slack). */
  lease: z.number().int().min(1).max(100_000).default(10),
  /** Redis operations waiting to be sent or answered; a write past it is refused (HEIMDALL_E_UNAVAILABLE). */
  max_pending: z.number().int().min(1).max(1_000_000).default(10_000),
  connect_timeout_ms: z.number().int().positive().max(600_000).default(2000),
});

const hostSchema = z.strictObject({
  /** A plugin's log message is cut to this many bytes. */
  log_max_bytes: z.number().int().min(64).max(1024 * 1024).default(4096),
  state: z
    .strictObject({
      /** Per request and plugin. */
      max_keys: z.number().int().min(1).max(100_000).default(64),
      /** Per request and plugin, keys and values counted. */
      max_bytes: z.number().int().min(64).max(64 * 1024 * 1024).default(64 * 1024),
    })
    .prefault({}),
  kv: z
    .strictObject({
      /** memory: this process only; redis: every worker and gateway that points at the same Redis. */
      backend: z.enum(['memory', 'redis']).default('memory'),
      /** Keys held in this process (the whole store for memory, the local view for redis); the least recently written go first. */
      max_keys: z.number().int().min(1).max(100_000_000).default(100_000),
      max_key_bytes: z.number().int().min(1).max(64 * 1024).default(512),
      max_value_bytes: z.number().int().min(1).max(64 * 1024 * 1024).default(64 * 1024),
      redis: redisSchema.prefault({}),
    })
    .prefault({}),
});

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      /** Largest accepted request body, in bytes. */
      body_limit: z.number().int().positive().default(4 * 1024 * 1024),
      /** Worker threads for threaded plugins, beside Node's own 4 (see docs/plugin-modes.md). */
      plugin_threads: z.number().int().min(1).max(1000).default(16),
      /** A request's headers must all arrive within this. */
      headers_timeout_ms: z.number().int().positive().max(600_000).default(10_000),
      /** A request, headers and body, must all arrive within this (a slow sender is cut off). */
      request_timeout_ms: z.number().int().positive().max(3_600_000).default(30_000),
      /** An idle keep-alive connection is closed after this. */
      keep_alive_timeout_ms: z.number().int().positive().max(600_000).default(5_000),
      /** Open client connections at most; more are refused at once. */
      max_connections: z.number().int().positive().max(1_000_000).default(4096),
      /** On SIGTERM/SIGINT, requests and streams in flight get this long to finish; then the rest are closed. */
      shutdown_timeout_ms: z.number().int().nonnegative().max(600_000).default(10_000),
      /**
       * Worker processes sharing the port, each running the whole gateway with its own plugins (docs/workers.md): a
       * number, or "auto" for one per CPU. Unset: 1, the gateway runs in the `heimdall` process itself.
       */
      workers: z.union([z.number().int().min(1).max(1024), z.literal('auto')]).optional(),
      /**
       * With several workers: one whose event loop has not answered the primary for this long is killed and replaced;
       * 0 turns the watchdog off. Unset: DEFAULT_WATCHDOG_MS.
       */
      watchdog_ms: z
        .number()
        .int()
        .max(600_000)
        .refine((ms) => ms === 0 || ms >= 100, 'must be 0 (off) or at least 100')
        .optional(),
    })
    .default({
      host: '127.0.0.1', port: 8080, body_limit: 4 * 1024 * 1024, plugin_threads: 16, headers_timeout_ms: 10_000,
      request_timeout_ms: 30_000, keep_alive_timeout_ms: 5_000, max_connections: 4096, shutdown_timeout_ms: 10_000,
    }),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** One info line per request (request id, method, path, status, time); off for those who take it from metrics. */
      requests: z.boolean().default(true),
      /** Each request's body and its answer, in one info line: message content, so off unless asked for. */
      bodies: z.boolean().default(false),
    })
    .default({ level: 'info', requests: true, bodies: false }),
  /** Services plugins call (ABI 1.2): log, metrics, per-request state, the shared key-value store. */
  host: hostSchema.prefault({}),
  providers: z.record(providerName, providerSchema),
  plugins: z.array(pluginSchema).default([]),
  admin: adminSchema.default({
    enabled: false, host: '127.0.0.1', port: 8081, plugin_dirs: [], persist: false, allowed_env: [], allow_remote: false, body_limit: 1024 * 1024,
    dashboard: { enabled: true, requests: 200, record: 'while_watched' },
  }),
});

/** server.watchdog_ms when unset. */
export const DEFAULT_WATCHDOG_MS = 5000;

export type Config = z.infer<typeof configSchema>;
export type ProviderConfig = z.infer<typeof providerSchema>;
export type OpenAIProviderConfig = Extract<ProviderConfig, { type: OpenAICompatibleType }>;
export type AzureProviderConfig = z.infer<typeof azureProvider>;
export type AnthropicProviderConfig = z.infer<typeof anthropicProvider>;
export type GeminiProviderConfig = z.infer<typeof geminiProvider>;
/** Any provider that calls an upstream over HTTP (all but mock). */
export type HttpProviderConfig = Exclude<ProviderConfig, { type: 'mock' }>;
export type ProviderKeyConfig = z.infer<typeof providerKey>;
export type MockProviderConfig = z.infer<typeof mockProvider>;
export type PluginConfig = z.infer<typeof pluginSchema>;
export type AdminConfig = z.infer<typeof adminSchema>;
export type HostConfig = z.infer<typeof hostSchema>;
/** A plugin entry as written in config.json (defaults not yet applied), e.g. in an admin API request. */
export type PluginConfigInput = z.input<typeof pluginSchema>;
export { pluginSchema };
