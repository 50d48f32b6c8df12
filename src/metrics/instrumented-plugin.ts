/**
 * A Plugin decorator that times every hook call and counts failures and short-circuits, so every plugin is measured
 * without a line of plugin code. It adds one clock read before and after the call and a few additions; the stats
 * objects are looked up once, here, not per call.
 */
import type {
  ChunkResult,
  Plugin,
  PluginInfo,
  PostHookResult,
  PreHookResult,
  TransportResult,
} from '../plugins/plugin.js';
import type { HookMetrics, HookStats } from './hook-stats.js';

const SECONDS_PER_MS = 1e-3;

export class InstrumentedPlugin implements Plugin {
  /** The plugin's own info object: /health, the registry and the logs see the same plugin. */
  readonly info: PluginInfo;
  // Only the hooks the plugin exports get a series: a zero for a hook it lacks would suggest it has one.
  private readonly transport: HookStats | undefined;
  private readonly pre: HookStats | undefined;
  private readonly post: HookStats | undefined;
  private readonly chunk: HookStats | undefined;

  constructor(
    private readonly inner: Plugin,
    metrics: HookMetrics,
  ) {
    this.info = inner.info;
    const { name, hooks } = inner.info;
    this.transport = hooks.transport ? metrics.statsFor(name, 'TransportInterceptor') : undefined;
    this.pre = hooks.pre ? metrics.statsFor(name, 'PreHook') : undefined;
    this.post = hooks.post ? metrics.statsFor(name, 'PostHook') : undefined;
    this.chunk = hooks.chunk ? metrics.statsFor(name, 'StreamChunkHook') : undefined;
  }

  transportInterceptor(ctx: Buffer, http: Buffer, body: Buffer): TransportResult {
    const stats = this.transport;
    if (stats === undefined) return this.inner.transportInterceptor(ctx, http, body);
    const start = performance.now();
    let r: TransportResult;
    try {
      r = this.inner.transportInterceptor(ctx, http, body);
    } catch (err) {
      failed(stats, start);
      throw err;
    }
    stats.record((performance.now() - start) * SECONDS_PER_MS);
    if (r.kind === 'response') stats.shortCircuited();
    return r;
  }

  preHook(ctx: Buffer, request: Buffer): PreHookResult {
    const stats = this.pre;
    if (stats === undefined) return this.inner.preHook(ctx, request);
    const start = performance.now();
    let r: PreHookResult;
    try {
      r = this.inner.preHook(ctx, request);
    } catch (err) {
      failed(stats, start);
      throw err;
    }
    stats.record((performance.now() - start) * SECONDS_PER_MS);
    if (r.kind === 'response' || r.kind === 'error') stats.shortCircuited();
    return r;
  }

  postHook(ctx: Buffer, response: Buffer | null, error: Buffer | null): PostHookResult {
    const stats = this.post;
    if (stats === undefined) return this.inner.postHook(ctx, response, error);
    const start = performance.now();
    let r: PostHookResult;
    try {
      r = this.inner.postHook(ctx, response, error);
    } catch (err) {
      failed(stats, start);
      throw err;
    }
    // A PostHook that answers replaces the outcome, but nothing is skipped: not a short-circuit.
    stats.record((performance.now() - start) * SECONDS_PER_MS);
    return r;
  }

  streamChunk(ctx: Buffer, chunk: Buffer): ChunkResult {
    const stats = this.chunk;
    if (stats === undefined) return this.inner.streamChunk(ctx, chunk);
    const start = performance.now();
    let r: ChunkResult;
    try {
      r = this.inner.streamChunk(ctx, chunk);
    } catch (err) {
      failed(stats, start);
      throw err;
    }
    stats.record((performance.now() - start) * SECONDS_PER_MS);
    if (r.kind === 'error') stats.shortCircuited();
    return r;
  }

  close(): void {
    this.inner.close();
  }
}

/** Whatever a hook throws, the pipeline treats as the plugin's failure (PluginFailure, or a bug): so do we. */
function failed(stats: HookStats, start: number): void {
  stats.record((performance.now() - start) * SECONDS_PER_MS);
  stats.failed();
}
