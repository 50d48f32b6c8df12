/**
 * A Plugin decorator that times every hook call and counts failures and short-circuits, so every plugin is measured
 * without a line of plugin code. It adds one clock read before and after the call and a few additions; the stats
 * objects are looked up once, here, not per call.
 */
import type {
  ChunkResult,
  Maybe,
  Plugin,
  PluginInfo,
  PostHookResult,
  PreHookResult,
  RuntimeStatus,
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

  transportInterceptor(ctx: Buffer, http: Buffer, body: Buffer): Maybe<TransportResult> {
    const stats = this.transport;
    if (stats === undefined) return this.inner.transportInterceptor(ctx, http, body);
    const start = performance.now();
    stats.enter(start);
    let r;
    try {
      r = this.inner.transportInterceptor(ctx, http, body);
    } catch (err) {
      failed(stats, start);
      throw err;
    }
    return settle(stats, start, r, transportShort);
  }

  preHook(ctx: Buffer, request: Buffer): Maybe<PreHookResult> {
    const stats = this.pre;
    if (stats === undefined) return this.inner.preHook(ctx, request);
    const start = performance.now();
    stats.enter(start);
    let r;
    try {
      r = this.inner.preHook(ctx, request);
    } catch (err) {
      failed(stats, start);
      throw err;
    }
    return settle(stats, start, r, preShort);
  }

  postHook(ctx: Buffer, response: Buffer | null, error: Buffer | null): Maybe<PostHookResult> {
    const stats = this.post;
    if (stats === undefined) return this.inner.postHook(ctx, response, error);
    const start = performance.now();
    stats.enter(start);
    let r;
    try {
      r = this.inner.postHook(ctx, response, error);
    } catch (err) {
      failed(stats, start);
      throw err;
    }
    return settle(stats, start, r, never);
  }

  streamChunk(ctx: Buffer, chunk: Buffer): Maybe<ChunkResult> {
    const stats = this.chunk;
    if (stats === undefined) return this.inner.streamChunk(ctx, chunk);
    const start = performance.now();
    stats.enter(start);
    let r;
    try {
      r = this.inner.streamChunk(ctx, chunk);
    } catch (err) {
      failed(stats, start);
      throw err;
    }
    return settle(stats, start, r, chunkShort);
  }

  close(): Maybe<void> {
    return this.inner.close();
  }

  runtime(): RuntimeStatus | undefined {
    return this.inner.runtime();
  }
}

// Which answers skip something (the provider, or the rest of a stream): short-circuits. A PostHook that answers
// replaces the outcome, but skips nothing.
const transportShort = (r: TransportResult): boolean => r.kind === 'response';
const preShort = (r: PreHookResult): boolean => r.kind === 'response' || r.kind === 'error';
const chunkShort = (r: ChunkResult): boolean => r.kind === 'error';
const never = (): boolean => false;

/**
 * Records a call that returned: at once, or when its promise settles (a threaded or isolated plugin). Whatever a
 * hook throws or rejects with, the pipeline treats as the plugin's failure (PluginFailure, or a bug): so do we.
 */
function settle<R>(stats: HookStats, start: number, r: Maybe<R>, shortCircuit: (r: R) => boolean): Maybe<R> {
  if (r instanceof Promise) {
    return r.then(
      (value) => {
        done(stats, start, shortCircuit(value));
        return value;
      },
      (err: unknown) => {
        failed(stats, start);
        throw err;
      },
    );
  }
  done(stats, start, shortCircuit(r));
  return r;
}

function done(stats: HookStats, start: number, shortCircuited: boolean): void {
  stats.record((performance.now() - start) * SECONDS_PER_MS);
  if (shortCircuited) stats.shortCircuited();
}

function failed(stats: HookStats, start: number): void {
  stats.record((performance.now() - start) * SECONDS_PER_MS);
  stats.failed();
}
