/**
 * The gateway's Prometheus metrics, one registry per gateway (never prom-client's global one: a process may run
 * several gateways, as the tests do). Names follow Bifrost's where they fit.
 *
 *   heimdall_requests_total{route,provider,model,status}           every HTTP request
 *   heimdall_upstream_latency_seconds{provider,model,outcome}      each provider call (the wait on the upstream)
 *   heimdall_overhead_latency_seconds{route}                       a chat request's total time minus its upstream time
 *   heimdall_input_tokens_total / heimdall_output_tokens_total     from the upstream's usage, by provider and model
 *   heimdall_plugin_hook_*{plugin,hook}                            calls, errors, short-circuits, latency (hook-stats.ts)
 *
 * The decorators measure plugins and providers as the registries create them, so neither knows it is measured.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import type { Plugin } from '../plugins/plugin.js';
import type { Provider } from '../providers/provider.js';
import type { Exchange } from './exchange.js';
import { HookMetrics } from './hook-stats.js';
import { InstrumentedPlugin } from './instrumented-plugin.js';
import { InstrumentedProvider, type UpstreamObserver, type Usage } from './instrumented-provider.js';

/** Gateway overhead is counted in tens of microseconds to milliseconds. */
const OVERHEAD_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Model calls take from milliseconds (a cache, a small model) to minutes (a long generation). */
const UPSTREAM_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * A provider without a model list forwards whatever model name a client sends. Past this many distinct names, the
 * rest are counted under "other", so that clients cannot grow the number of series without bound.
 */
const MAX_MODEL_LABELS = 200;
const OTHER_MODEL = 'other';

export class GatewayMetrics implements UpstreamObserver {
  readonly registry = new Registry();
  private readonly hooks = new HookMetrics();
  private readonly modelLabels = new Set<string>();
  private readonly requests: Counter<'route' | 'provider' | 'model' | 'status'>;
  private readonly upstream: Histogram<'provider' | 'model' | 'outcome'>;
  private readonly overhead: Histogram<'route'>;
  private readonly inputTokens: Counter<'provider' | 'model'>;
  private readonly outputTokens: Counter<'provider' | 'model'>;

  constructor() {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'heimdall_requests_total',
      help: 'HTTP requests, by route, provider, model and response status.',
      labelNames: ['route', 'provider', 'model', 'status'],
      registers,
    });
    this.upstream = new Histogram({
      name: 'heimdall_upstream_latency_seconds',
      help: 'Time spent waiting on the upstream provider per call (for a stream, the waits for its chunks).',
      labelNames: ['provider', 'model', 'outcome'],
      buckets: UPSTREAM_BUCKETS,
      registers,
    });
    this.overhead = new Histogram({
      name: 'heimdall_overhead_latency_seconds',
      help: "The gateway's own time per chat request: total request time minus the time spent waiting on upstreams.",
      labelNames: ['route'],
      buckets: OVERHEAD_BUCKETS,
      registers,
    });
    this.inputTokens = new Counter({
      name: 'heimdall_input_tokens_total',
      help: 'Prompt tokens, as the upstream reported them in usage.',
      labelNames: ['provider', 'model'],
      registers,
    });
    this.outputTokens = new Counter({
      name: 'heimdall_output_tokens_total',
      help: 'Completion tokens, as the upstream reported them in usage.',
      labelNames: ['provider', 'model'],
      registers,
    });
  }

  /** For PluginRegistry: every plugin it registers is measured. */
  readonly decoratePlugin = (plugin: Plugin): Plugin => new InstrumentedPlugin(plugin, this.hooks);

  /** For ProviderRegistry: every provider it creates is measured. */
  readonly decorateProvider = (provider: Provider): Provider => new InstrumentedProvider(provider, this);

  /**
   * One finished HTTP request. `exchange` is there for chat requests; `totalMs` is the whole request, from its
   * arrival to the last byte of the reply.
   */
  observeRequest(route: string, status: number, totalMs: number, exchange: Exchange | undefined): void {
    const ctx = exchange?.ctx;
    this.requests.inc({
      route,
      provider: ctx?.provider ?? '',
      model: ctx?.model === null || ctx?.model === undefined ? '' : this.modelLabel(ctx.model),
      status: String(status),
    });
    if (exchange !== undefined) this.overhead.observe({ route }, Math.max(0, totalMs - exchange.upstreamMs) / 1000);
  }

  upstreamCall(provider: string, model: string, ms: number, ok: boolean): void {
    this.upstream.observe({ provider, model: this.modelLabel(model), outcome: ok ? 'success' : 'error' }, ms / 1000);
  }

  tokens(provider: string, model: string, usage: Usage): void {
    const labels = { provider, model: this.modelLabel(model) };
    if (usage.input > 0) this.inputTokens.inc(labels, usage.input);
    if (usage.output > 0) this.outputTokens.inc(labels, usage.output);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Everything, in the Prometheus text format. */
  async render(): Promise<string> {
    return `${await this.registry.metrics()}\n${this.hooks.render()}`;
  }

  private modelLabel(model: string): string {
    if (this.modelLabels.has(model)) return model;
    if (this.modelLabels.size >= MAX_MODEL_LABELS) return OTHER_MODEL;
    this.modelLabels.add(model);
    return model;
  }
}
