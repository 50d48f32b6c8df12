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

const openaiProvider = z.strictObject({
  type: z.literal('openai'),
  /** Any OpenAI-compatible server: OpenAI, Groq, Together, Mistral, vLLM, Ollama... */
  base_url: z.url({ protocol: /^https?$/ }).default('https://api.openai.com/v1'),
  api_key: envRef.optional(),
  /** When set, only these models may be requested (and /v1/models lists them). */
  models: z.array(z.string().min(1)).optional(),
  timeout_ms: timeoutMs.default(60_000),
  /** Extra headers sent upstream, e.g. an organisation id. Values may be env references. */
  headers: z.record(z.string(), z.string()).default({}),
  /** Upstream connections kept open per provider. */
  connections: z.number().int().positive().max(4096).default(128),
});

const mockProvider = z.strictObject({
  type: z.literal('mock'),
  models: z.array(z.string().min(1)).optional(),
  /** Delay before answering, and between streamed chunks, to imitate a real model. */
  latency_ms: z.number().int().nonnegative().max(60_000).default(0),
});

export const PROVIDER_TYPES = ['openai', 'mock'] as const;

export const providerSchema = z.discriminatedUnion('type', [openaiProvider, mockProvider]);

const pluginSchema = z.strictObject({
  /** The shared object. Relative paths resolve against config.json's directory; the platform's extension
   * (.so or .dylib) is added when the path has none. */
  path: z.string().min(1),
  enabled: z.boolean().default(true),
  /** An optional plugin that fails to load or initialise is left out instead of stopping the gateway. */
  optional: z.boolean().default(false),
  /** Handed to the plugin's Init as JSON. String values "env.NAME" are resolved first. */
  config: z.record(z.string(), z.unknown()).default({}),
  /** Development: reload the plugin when its file changes on disk (a build finished). */
  watch: z.boolean().default(false),
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
}).refine((a) => !a.enabled || a.token !== undefined, {
  message: 'the admin API needs a "token" (an environment reference such as "env.HEIMDALL_ADMIN_TOKEN") when enabled',
  path: ['token'],
});

const providerName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'provider names use lower-case letters, digits, "-" and "_"');

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      /** Largest accepted request body, in bytes. */
      body_limit: z.number().int().positive().default(4 * 1024 * 1024),
    })
    .default({ host: '127.0.0.1', port: 8080, body_limit: 4 * 1024 * 1024 }),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .default({ level: 'info' }),
  providers: z.record(providerName, providerSchema),
  plugins: z.array(pluginSchema).default([]),
  admin: adminSchema.default({ enabled: false, host: '127.0.0.1', port: 8081, plugin_dirs: [], persist: false }),
});

export type Config = z.infer<typeof configSchema>;
export type ProviderConfig = z.infer<typeof providerSchema>;
export type OpenAIProviderConfig = z.infer<typeof openaiProvider>;
export type MockProviderConfig = z.infer<typeof mockProvider>;
export type PluginConfig = z.infer<typeof pluginSchema>;
export type AdminConfig = z.infer<typeof adminSchema>;
/** A plugin entry as written in config.json (defaults not yet applied), e.g. in an admin API request. */
export type PluginConfigInput = z.input<typeof pluginSchema>;
export { pluginSchema };
