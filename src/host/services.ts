/**
 * The host services of ABI 1.2, as the gateway serves them: log, metrics, per-request state and the shared
 * key-value store. One HostServices per process (configured from the "host" section of config.json when a gateway
 * is created); a PluginHost is one plugin's view of it, which is what its host table calls reach in every mode
 * (abi.ts binds it for inline and threaded plugins, isolated/host-process.ts serves the child's calls with it).
 *
 * Nothing here waits: every call answers from memory (the redis backend keeps its local view in step in the
 * background), so an inline hook can call it on the event loop.
 */
import type { Logger } from 'pino';
import type { HostConfig } from '../config/schema.js';
import { Errors } from '../errors.js';
import { MemoryKv, type KvStore } from './kv.js';
import { PluginMetrics, type Definition } from './plugin-metrics.js';
import { RequestStates } from './request-state.js';
import { HostStatus, type Count, type Read } from './status.js';

export const DEFAULT_HOST_CONFIG: HostConfig = {
  log_max_bytes: 4096,
  state: { max_keys: 64, max_bytes: 64 * 1024 },
  kv: {
    backend: 'memory', max_keys: 100_000, max_key_bytes: 512, max_value_bytes: 64 * 1024,
    redis: { url: 'redis://127.0.0.1:6379', key_prefix: 'heimdall:', lease: 10, max_pending: 10_000, connect_timeout_ms: 2000 },
  },
};

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

export class HostServices {
  readonly states: RequestStates;
  readonly metrics = new PluginMetrics();
  private readonly plugins = new Map<string, PluginHost>();

  constructor(
    readonly config: HostConfig,
    public log: Logger,
    readonly kv: KvStore,
  ) {
    this.states = new RequestStates({ maxKeys: config.state.max_keys, maxBytes: config.state.max_bytes });
  }

  /** One plugin's view: its name scopes its metrics, request state and keys. */
  plugin(name: string): PluginHost {
    let host = this.plugins.get(name);
    if (host === undefined) {
      host = new PluginHost(name, this);
      this.plugins.set(name, host);
    }
    return host;
  }

  /** The plugins' metrics, in the text format ('' when none are defined). */
  renderMetrics(): string {
    return this.metrics.render();
  }

  close(): Promise<void> {
    return this.kv.close();
  }
}

export class PluginHost {
  /** Refusals already logged, one line per kind per plugin: a plugin looping on a refused call must not flood. */
  private readonly reported = new Set<string>();
  private readonly prefix: string;

  constructor(
    readonly name: string,
    private readonly services: HostServices,
  ) {
    this.prefix = `${name}:`;
  }

  /** What the callers check before they copy a plugin's input (a length over these is refused uncopied). */
  get limits(): { logBytes: number; stateBytes: number; keyBytes: number; valueBytes: number } {
    const { config } = this.services;
    return {
      logBytes: config.log_max_bytes,
      stateBytes: config.state.max_bytes,
      keyBytes: config.kv.max_key_bytes,
      valueBytes: config.kv.max_value_bytes,
    };
  }

  /** Whether a line at this level would be written (the logger's level). */
  logs(level: number): boolean {
    return this.services.log.isLevelEnabled(LEVELS[level] ?? 'error');
  }

  /** `message` may be cut already (to host.log_max_bytes): `length` is what the plugin passed. */
  log(request: number, level: number, message: Buffer, length = message.length): void {
    const { log, config, states } = this.services;
    const max = config.log_max_bytes;
    let text = message.toString('utf8', 0, Math.min(message.length, max));
    if (length > max) text += `... (${length} bytes in all)`;
    const requestId = request === 0 ? undefined : states.requestId(request);
    const fields = requestId === undefined ? { plugin: this.name } : { plugin: this.name, request_id: requestId };
    log[LEVELS[level] ?? 'error'](fields, text);
  }

  /** A host call that threw (a bug of the gateway's, or input it could not take): the plugin gets E_INVALID. */
  failed(what: string, err: unknown): void {
    this.refused(what, `it failed: ${err instanceof Error ? err.message : String(err)}`);
  }

  metricDefine(d: Definition): { status: HostStatus; id: number } {
    const r = this.services.metrics.define(this.name, d);
    if (r.why !== undefined) this.refused('metric_define', r.why);
    return r;
  }

  metricRecord(id: number, labelValues: string, value: number): HostStatus {
    const r = this.services.metrics.record(this.name, id, labelValues, value);
    if (r.why !== undefined) this.refused('metric_record', r.why);
    return r.status;
  }

  stateGet(request: number, key: Buffer): Read {
    return this.services.states.get(request, this.name, key);
  }

  stateSet(request: number, key: Buffer, value: Buffer | null): HostStatus {
    const status = this.services.states.set(request, this.name, key, value);
    if (status === HostStatus.E_LIMIT) {
      const { max_keys, max_bytes } = this.services.config.state;
      this.refused('state_set', `a request's state is over its bound (${max_keys} keys, ${max_bytes} bytes: host.state)`);
    }
    return status;
  }

  kvGet(key: Buffer): Read {
    const k = this.key(key);
    return typeof k === 'string' ? this.services.kv.get(k) : { status: k };
  }

  kvSet(key: Buffer, value: Buffer | null, ttlMs: number): HostStatus {
    const k = this.key(key);
    if (typeof k !== 'string') return k;
    if (value !== null && !this.valueFits(value)) return HostStatus.E_LIMIT;
    return this.unavailable(this.services.kv.set(k, value, ttlMs));
  }

  kvIncr(key: Buffer, delta: bigint, ttlMs: number): Count {
    const k = this.key(key);
    if (typeof k !== 'string') return { status: k, value: 0n };
    const r = this.services.kv.incr(k, delta, ttlMs);
    this.unavailable(r.status);
    return r;
  }

  kvCas(key: Buffer, expected: Buffer | null, value: Buffer, ttlMs: number): HostStatus {
    const k = this.key(key);
    if (typeof k !== 'string') return k;
    if (!this.valueFits(value)) return HostStatus.E_LIMIT;
    return this.unavailable(this.services.kv.cas(k, expected, value, ttlMs));
  }

  /** The namespaced key, or why it is refused. */
  private key(key: Buffer): string | HostStatus {
    if (key.length === 0) {
      this.refused('kv_key', 'an empty key');
      return HostStatus.E_INVALID;
    }
    const max = this.services.config.kv.max_key_bytes;
    if (key.length > max) {
      this.refused('kv_key', `a key of ${key.length} bytes, over host.kv.max_key_bytes (${max})`);
      return HostStatus.E_LIMIT;
    }
    return this.prefix + key.toString('latin1');
  }

  private valueFits(value: Buffer): boolean {
    const max = this.services.config.kv.max_value_bytes;
    if (value.length <= max) return true;
    this.refused('kv_value', `a value of ${value.length} bytes, over host.kv.max_value_bytes (${max})`);
    return false;
  }

  private unavailable(status: HostStatus): HostStatus {
    if (status === HostStatus.E_UNAVAILABLE && !this.reported.has('kv_unavailable')) {
      this.reported.add('kv_unavailable');
      const err = Errors.HOST_KV_UNAVAILABLE(this.name);
      this.services.log.warn({ plugin: this.name, code: err.code }, err.message);
    }
    return status;
  }

  private refused(what: string, why: string): void {
    if (this.reported.has(what)) return;
    this.reported.add(what);
    const err = Errors.HOST_CALL_REFUSED(this.name, why);
    this.services.log.warn({ plugin: this.name, code: err.code }, err.message);
  }
}

/** Until a gateway configures the services (tools, tests that load plugins alone): nothing is written. */
const silent = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  isLevelEnabled: () => false,
} as unknown as Logger;

let current: HostServices | undefined;
/** Gateways of this process using `current`. */
let users = 0;

/** The process's host services: memory backed and logging nowhere until a gateway configures them. */
export function hostServices(): HostServices {
  return (current ??= new HostServices(DEFAULT_HOST_CONFIG, silent, new MemoryKv(DEFAULT_HOST_CONFIG.kv.max_keys)));
}

/**
 * Sets the process's host services from config (a gateway being created). The previous store is closed; plugins
 * already loaded keep calling the process's services, which are now these.
 */
export async function configureHost(config: HostConfig, log: Logger): Promise<HostServices> {
  const previous = current;
  if (previous !== undefined && JSON.stringify(previous.config) === JSON.stringify(config)) {
    previous.log = log;
    users++;
    return previous;
  }
  let kv: KvStore;
  if (config.kv.backend === 'redis') {
    const { RedisKv } = await import('./kv-redis.js');
    kv = await RedisKv.connect(config.kv, log);
  } else {
    kv = new MemoryKv(config.kv.max_keys);
  }
  current = new HostServices(config, log, kv);
  users = 1;
  if (previous !== undefined) await previous.close();
  return current;
}

/** A gateway closes: its services go, unless another gateway of the process has configured newer ones since. */
export async function releaseHost(services: HostServices): Promise<void> {
  if (current !== services || --users > 0) return;
  current = undefined;
  await services.close();
}

/**
 * A request's pipeline run starts: its handle for the host services (ABI 1.2) goes into its context, and its state
 * lives until `release` (the run lets go of its plugins, the stream included). Returns the release to call instead.
 */
export function requestScope(ctx: { readonly requestId: string; handle: number }, release: () => void): () => void {
  const states = hostServices().states;
  const handle = (ctx.handle = states.begin(ctx.requestId));
  return () => {
    states.end(handle);
    release();
  };
}
