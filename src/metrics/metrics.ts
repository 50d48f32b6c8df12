/**
 * The gateway's Prometheus metrics, one registry per gateway (never prom-client's global one: a process may run
 * several gateways, as the tests do). Names follow Bifrost's where they fit.
 *
 *   heimdall_requests_total{route,provider,model,status}           every HTTP request (route "" for a 408 or broken HTTP)
 *   heimdall_upstream_latency_seconds{provider,model,outcome}      each provider call (the wait on the upstream)
 *   heimdall_overhead_latency_seconds{route}                       a chat request's total time minus its upstream time
 *   heimdall_input_tokens_total / heimdall_output_tokens_total     from the upstream's usage, by provider and model
 *   heimdall_plugin_hook_*{plugin,hook}                            calls, errors, short-circuits, latency (hook-stats.ts)
 *   heimdall_process_* / heimdall_nodejs_*                         CPU, memory, heap, event loop, GC (process.ts)
 *
 * The decorators measure plugins and providers as the registries create them, so neither knows it is measured.
 *
 * What is recorded per request lives in plain series (series.ts), not in prom-client metrics: a labelled prom-client
 * inc or observe costs microseconds, a plain one tens of nanoseconds. prom-client keeps the registry and the process
 * metrics (process.ts); /metrics writes its output first, then the plain series.
 */
import { Registry } from 'prom-client';
import type { Plugin } from '../plugins/plugin.js';
import type { Provider } from '../providers/provider.js';
import type { Exchange } from './exchange.js';
import type { FlightRecord } from './flight-record.js';
import { HookMetrics } from './hook-stats.js';
import { InstrumentedPlugin } from './instrumented-plugin.js';
import { InstrumentedProvider, type UpstreamObserver, type Usage } from './instrumented-provider.js';
import { ProcessMetrics } from './process.js';
import { RecentWindow, type RecentSnapshot } from './recent.js';
import { CounterFamily, HistogramFamily, renderFamilies } from './series.js';

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

  /** `flight`: in a worker of a pool, the record its primary reads after a crash (flight-record.ts). */
  constructor(flight?: FlightRecord) {
    this.hooks.flight = flight;
  }
  private readonly modelLabels = new Set<string>();
  /** The last minutes of each provider/model's upstream calls, for the dashboard. */
  private readonly upstreamRecent = new Map<string, { provider: string; model: string; window: RecentWindow }>();
  private process: ProcessMetrics | undefined;
  private closed = false;
  private readonly requests = new CounterFamily(
    'heimdall_requests_total',
    'HTTP requests, by route, provider, model and response status.',
    ['route', 'provider', 'model', 'status'],
  );
  private readonly upstream = new HistogramFamily(
    'heimdall_upstream_latency_seconds',
    'Time spent waiting on the upstream provider per call (for a stream, the waits for its chunks).',
    ['provider', 'model', 'outcome'],
    UPSTREAM_BUCKETS,
  );
  private readonly overhead = new HistogramFamily(
    'heimdall_overhead_latency_seconds',
    "The gateway's own time per chat request: total request time minus the time spent waiting on upstreams.",
    ['route'],
    OVERHEAD_BUCKETS,
  );
  private readonly inputTokens = new CounterFamily(
    'heimdall_input_tokens_total',
    'Prompt tokens, as the upstream reported them in usage.',
    ['provider', 'model'],
  );
  private readonly outputTokens = new CounterFamily(
    'heimdall_output_tokens_total',
    'Completion tokens, as the upstream reported them in usage.',
    ['provider', 'model'],
  );

  /** More text for /metrics, after everything else (the plugins' own metrics, ABI 1.2). */
  private readonly sources: (() => string)[] = [];

  addSource(render: () => string): void {
    this.sources.push(render);
  }

  /** For PluginRegistry: every plugin it registers is measured. */
  readonly decoratePlugin = (plugin: Plugin): Plugin => new InstrumentedPlugin(plugin, this.hooks);

  /** For PluginRegistry: a plugin entered (true) or left (false) quarantine. */
  readonly pluginQuarantine = (plugin: string, on: boolean): void => this.hooks.quarantine(plugin, on);

  /** For ProviderRegistry: every provider it creates is measured. */
  readonly decorateProvider = (provider: Provider): Provider => new InstrumentedProvider(provider, this);

  /**
   * Starts the process metrics, whose event-loop delay monitor and GC observer run until close(). Not in the
   * constructor: a gateway whose plugins fail to load is never built, and would leave them running.
   */
  watchProcess(): void {
    if (this.process === undefined && !this.closed) this.process = new ProcessMetrics(this.registry);
  }

  close(): void {
    this.closed = true;
    this.process?.close();
  }

  /**
   * One finished HTTP request. `exchange` is there for chat requests; `totalMs` is the whole request, from its
   * arrival to the last byte of the reply.
   */
  observeRequest(route: string, status: number, totalMs: number, exchange: Exchange | undefined): void {
    const ctx = exchange?.ctx;
    const provider = ctx?.provider ?? '';
    const model = ctx?.model === null || ctx?.model === undefined ? '' : this.modelLabel(ctx.model);
    this.requests.labels(route, provider, model, String(status)).value++;
    if (exchange !== undefined) this.overhead.labels(route).observe(Math.max(0, totalMs - exchange.upstreamMs) / 1000);
  }

  upstreamCall(provider: string, model: string, ms: number, ok: boolean): void {
    const label = this.modelLabel(model);
    this.upstream.labels(provider, label, ok ? 'success' : 'error').observe(ms / 1000);
    const key = `${provider}\u0000${label}`;
    let recent = this.upstreamRecent.get(key);
    if (recent === undefined) this.upstreamRecent.set(key, (recent = { provider, model: label, window: new RecentWindow(UPSTREAM_BUCKETS) }));
    recent.window.record(ms / 1000);
    if (!ok) recent.window.failed();
  }

  /** Each plugin hook's last minutes: calls, errors, short-circuits, p50 and p99 per interval. */
  recentHooks(): ReturnType<HookMetrics['recent']> {
    return this.hooks.recent();
  }

  /** Each provider/model's upstream calls over the last minutes. */
  recentUpstream(): ({ provider: string; model: string } & RecentSnapshot)[] {
    return [...this.upstreamRecent.values()].map(({ provider, model, window }) => ({ provider, model, ...window.snapshot() }));
  }

  tokens(provider: string, model: string, usage: Usage): void {
    const label = this.modelLabel(model);
    if (usage.input > 0) this.inputTokens.labels(provider, label).value += usage.input;
    if (usage.output > 0) this.outputTokens.labels(provider, label).value += usage.output;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Everything, in the Prometheus text format: prom-client's registry, then the plain series. */
  async render(): Promise<string> {
    const plain = [this.requests, this.upstream, this.overhead, this.inputTokens, this.outputTokens];
    if (this.process !== undefined) plain.push(this.process.gc);
    let text = `${await this.registry.metrics()}\n${renderFamilies(plain)}\n${this.hooks.render()}`;
    for (const render of this.sources) {
      const more = render();
      if (more !== '') text += `\n${more}`;
    }
    return text;
  }

  private modelLabel(model: string): string {
    if (this.modelLabels.has(model)) return model;
    if (this.modelLabels.size >= MAX_MODEL_LABELS) return OTHER_MODEL;
    this.modelLabels.add(model);
    return model;
  }
}
