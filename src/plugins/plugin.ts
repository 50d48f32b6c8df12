/**
 * What the gateway knows about a plugin. The pipeline sees only this interface, whatever the plugin's execution mode:
 * inline (a koffi call on the event loop), threaded (a koffi call on a worker thread) or isolated (a call to a child
 * process that loads the same file).
 *
 * Hooks take JSON bytes exactly as the ABI defines them (native/include/heimdall_plugin.h), so nothing is
 * re-encoded at the boundary. An inline hook answers at once; the other modes answer with a promise, and callers
 * await only when they get one, so the inline path never pays for the others. A hook that fails throws (or rejects
 * with) PluginFailure; the pipeline logs it under the plugin's name and goes on as the plugin's policy says.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** An error as it crosses the ABI and the pipeline: the ABI's error object. */
export interface AbiError {
  status_code: number;
  message: string;
  type?: string;
  code?: string;
  allow_fallbacks?: boolean;
  /** Extra fields a plugin adds (for example retry_after) travel along. */
  [key: string]: Json | undefined;
}

/** Context values to set (null removes a key). */
export type ContextPatch = JsonObject;

export type PreHookResult =
  | { kind: 'continue'; context?: ContextPatch }
  | { kind: 'request'; request: JsonObject; context?: ContextPatch }
  | { kind: 'response'; response: JsonObject; context?: ContextPatch }
  | { kind: 'error'; error: AbiError; context?: ContextPatch };

export type PostHookResult =
  | { kind: 'continue'; context?: ContextPatch }
  | { kind: 'response'; response: JsonObject; context?: ContextPatch }
  | { kind: 'error'; error: AbiError; context?: ContextPatch };

export type ChunkResult =
  | { kind: 'continue' }
  | { kind: 'chunk'; chunk: JsonObject }
  | { kind: 'drop' }
  | { kind: 'error'; error: AbiError };

export type TransportResult =
  | { kind: 'continue'; headers?: Record<string, string | null>; body?: Json; context?: ContextPatch }
  | { kind: 'response'; response: { status_code: number; headers: Record<string, string>; body: Json }; context?: ContextPatch };

export type Language = 'c' | 'go' | 'rust' | 'unknown';

/** Where a plugin's hooks run; see docs/plugin-modes.md. */
export type ExecutionMode = 'inline' | 'threaded' | 'isolated';

/** A hook's answer: at once (inline), or later (threaded, isolated). */
export type Maybe<T> = T | Promise<T>;

export interface PluginInfo {
  name: string;
  file: string;
  abiVersion: string;
  language: Language;
  hooks: HookSet;
  mode: ExecutionMode;
  /** How many calls may run at once: 1 but for a threaded plugin that declares more (ABI 1.1). */
  concurrency: number;
}

export interface HookSet {
  transport: boolean;
  pre: boolean;
  post: boolean;
  chunk: boolean;
}

export interface Plugin {
  readonly info: PluginInfo;
  transportInterceptor(ctx: Buffer, http: Buffer, body: Buffer): Maybe<TransportResult>;
  preHook(ctx: Buffer, request: Buffer): Maybe<PreHookResult>;
  postHook(ctx: Buffer, response: Buffer | null, error: Buffer | null): Maybe<PostHookResult>;
  streamChunk(ctx: Buffer, chunk: Buffer): Maybe<ChunkResult>;
  /** Runs Cleanup; the plugin is not called afterwards. */
  close(): Maybe<void>;
  /** What the mode knows of the plugin's calls and process (threaded: calls running and queued; isolated: the child). */
  runtime(): RuntimeStatus | undefined;
}

/** A mode's view of a plugin at run time, shown in the admin API's status. */
export type RuntimeStatus = { [key: string]: Json };

export type HookName = 'TransportInterceptor' | 'PreHook' | 'PostHook' | 'StreamChunkHook';

/**
 * A plugin's own failure: a non-zero status, output that is not the JSON the ABI asks for or is too large, a missed
 * deadline, a crash of its isolated host. `answer` is set where the plugin's policy says to fail closed (on_error:
 * fail): the pipeline then answers the request with it instead of going on without the hook.
 */
export class PluginFailure extends Error {
  answer: AbiError | undefined;

  constructor(
    readonly plugin: string,
    readonly hook: string,
    message: string,
  ) {
    super(message);
    this.name = 'PluginFailure';
  }
}
