/**
 * A Plugin backed by a shared object, in any execution mode: what differs between modes is only how a hook is
 * called (the HookCaller): on the event loop, on a worker thread, or in a child process. Decoding the output into an
 * action, and turning a bad one into a PluginFailure, is the same for all of them.
 */
import { hostServices } from '../host/services.js';
import { ActionError, decodeChunk, decodePostHook, decodePreHook, decodeTransport } from './actions.js';
import { useHostServices, type CallResult } from './abi.js';
import {
  PluginFailure,
  type ChunkResult,
  type HookName,
  type Maybe,
  type Plugin,
  type PluginInfo,
  type PostHookResult,
  type PreHookResult,
  type RuntimeStatus,
  type TransportResult,
} from './plugin.js';

/** How a loaded plugin's hooks are called: at once (inline) or with a promise (threaded, isolated). */
export interface HookCaller {
  transport(ctx: Buffer, http: Buffer, body: Buffer): Maybe<CallResult>;
  pre(ctx: Buffer, request: Buffer): Maybe<CallResult>;
  post(ctx: Buffer, response: Buffer | null, error: Buffer | null): Maybe<CallResult>;
  chunk(ctx: Buffer, chunk: Buffer): Maybe<CallResult>;
  /** Cleanup, and whatever the mode must release afterwards (dlclose, the child process). */
  close(): Maybe<void>;
  runtime?(): RuntimeStatus;
}

// Plugins loaded in this process (inline, threaded) get the process's host services (ABI 1.2) before Init.
useHostServices((name) => hostServices().plugin(name));

/** A failure message is logged and may be shown to a client: it is cut to this many characters. */
export const MAX_FAILURE_MESSAGE = 1024;

const CONTINUE = Object.freeze({ kind: 'continue' as const });

export class NativePlugin implements Plugin {
  private closed = false;

  constructor(
    readonly info: PluginInfo,
    private readonly caller: HookCaller,
  ) {}

  transportInterceptor(ctx: Buffer, http: Buffer, body: Buffer): Maybe<TransportResult> {
    if (this.closed) throw this.gone('TransportInterceptor');
    const r = this.caller.transport(ctx, http, body);
    if (r instanceof Promise) return r.then((x) => this.decode('TransportInterceptor', x, decodeTransport) ?? CONTINUE);
    return this.decode('TransportInterceptor', r, decodeTransport) ?? CONTINUE;
  }

  preHook(ctx: Buffer, request: Buffer): Maybe<PreHookResult> {
    if (this.closed) throw this.gone('PreHook');
    const r = this.caller.pre(ctx, request);
    if (r instanceof Promise) return r.then((x) => this.decode('PreHook', x, decodePreHook) ?? CONTINUE);
    return this.decode('PreHook', r, decodePreHook) ?? CONTINUE;
  }

  postHook(ctx: Buffer, response: Buffer | null, error: Buffer | null): Maybe<PostHookResult> {
    if (this.closed) throw this.gone('PostHook');
    const r = this.caller.post(ctx, response, error);
    if (r instanceof Promise) return r.then((x) => this.decode('PostHook', x, decodePostHook) ?? CONTINUE);
    return this.decode('PostHook', r, decodePostHook) ?? CONTINUE;
  }

  streamChunk(ctx: Buffer, chunk: Buffer): Maybe<ChunkResult> {
    if (this.closed) throw this.gone('StreamChunkHook');
    const r = this.caller.chunk(ctx, chunk);
    if (r instanceof Promise) return r.then((x) => this.decode('StreamChunkHook', x, decodeChunk) ?? CONTINUE);
    return this.decode('StreamChunkHook', r, decodeChunk) ?? CONTINUE;
  }

  close(): Maybe<void> {
    if (this.closed) return;
    this.closed = true;
    return this.caller.close();
  }

  runtime(): RuntimeStatus | undefined {
    return this.caller.runtime?.();
  }

  /** A call after close: the library may be unloaded, so it is refused rather than made (a request that outlived a
   * shutdown's deadline, say). */
  private gone(hook: HookName): PluginFailure {
    return new PluginFailure(this.info.name, hook, `${hook} not called: the plugin has been cleaned up`);
  }

  private decode<T>(hook: HookName, result: CallResult, decode: (output: string) => T): T | undefined {
    if (result.refused !== undefined) throw new PluginFailure(this.info.name, hook, `${hook} ${result.refused}`);
    if (result.status !== 0) {
      const why = result.output ? `: ${bounded(result.output)}` : '';
      throw new PluginFailure(this.info.name, hook, `${hook} returned status ${result.status}${why}`);
    }
    if (result.output === undefined || result.output === '') return undefined;
    try {
      return decode(result.output);
    } catch (err) {
      if (err instanceof ActionError) throw new PluginFailure(this.info.name, hook, `${hook} ${bounded(err.message)}`);
      throw err;
    }
  }
}

/** A plugin's text, cut to MAX_FAILURE_MESSAGE characters with a note of how long it was. */
export function bounded(text: string): string {
  if (text.length <= MAX_FAILURE_MESSAGE) return text;
  return `${text.slice(0, MAX_FAILURE_MESSAGE)}... (${text.length} characters in all)`;
}
