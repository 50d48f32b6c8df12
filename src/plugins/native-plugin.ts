/**
 * A Plugin backed by a shared object loaded in this process through koffi.
 */
import { ActionError, decodeChunk, decodePostHook, decodePreHook, decodeTransport } from './actions.js';
import type { CallResult, NativeLibrary } from './abi.js';
import {
  PluginFailure,
  type ChunkResult,
  type Plugin,
  type PluginInfo,
  type PostHookResult,
  type PreHookResult,
  type TransportResult,
} from './plugin.js';

const CONTINUE = Object.freeze({ kind: 'continue' as const });

export class NativePlugin implements Plugin {
  private closed = false;

  constructor(
    readonly info: PluginInfo,
    private readonly lib: NativeLibrary,
    /** Whether dlclose is safe for this library's runtime (not for Go or Rust). */
    private readonly unloadable: boolean,
  ) {}

  transportInterceptor(ctx: Buffer, http: Buffer, body: Buffer): TransportResult {
    return this.decode('TransportInterceptor', this.lib.transport(ctx, http, body), decodeTransport) ?? CONTINUE;
  }

  preHook(ctx: Buffer, request: Buffer): PreHookResult {
    return this.decode('PreHook', this.lib.pre(ctx, request), decodePreHook) ?? CONTINUE;
  }

  postHook(ctx: Buffer, response: Buffer | null, error: Buffer | null): PostHookResult {
    return this.decode('PostHook', this.lib.post(ctx, response, error), decodePostHook) ?? CONTINUE;
  }

  streamChunk(ctx: Buffer, chunk: Buffer): ChunkResult {
    return this.decode('StreamChunkHook', this.lib.chunk(ctx, chunk), decodeChunk) ?? CONTINUE;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.lib.cleanup();
    } finally {
      if (this.unloadable) this.lib.unload();
    }
  }

  private decode<T>(hook: string, result: CallResult, decode: (output: string) => T): T | undefined {
    if (result.status !== 0) {
      const why = result.output ? `: ${result.output}` : '';
      throw new PluginFailure(this.info.name, hook, `${hook} returned status ${result.status}${why}`);
    }
    if (result.output === undefined || result.output === '') return undefined;
    try {
      return decode(result.output);
    } catch (err) {
      if (err instanceof ActionError) throw new PluginFailure(this.info.name, hook, `${hook} ${err.message}`);
      throw err;
    }
  }
}
