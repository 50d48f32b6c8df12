/**
 * What the gateway knows about a plugin. The pipeline sees only this interface: the native (koffi) implementation
 * is one of possibly several (a future out-of-process plugin implements the same thing).
 *
 * Hooks take and return JSON bytes exactly as the ABI defines them (native/include/heimdall_plugin.h), so nothing is
 * re-encoded at the boundary. A hook that fails throws PluginFailure; the pipeline logs it under the plugin's name
 * and goes on as if the hook had not run.
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

export interface PluginInfo {
  name: string;
  file: string;
  abiVersion: string;
  language: Language;
  hooks: HookSet;
}

export interface HookSet {
  transport: boolean;
  pre: boolean;
  post: boolean;
  chunk: boolean;
}

export interface Plugin {
  readonly info: PluginInfo;
  transportInterceptor(ctx: Buffer, http: Buffer, body: Buffer): TransportResult;
  preHook(ctx: Buffer, request: Buffer): PreHookResult;
  postHook(ctx: Buffer, response: Buffer | null, error: Buffer | null): PostHookResult;
  streamChunk(ctx: Buffer, chunk: Buffer): ChunkResult;
  /** Runs Cleanup; the plugin is not called afterwards. */
  close(): void;
}

/** A plugin's own failure: a non-zero status, or output that is not the JSON the ABI asks for. */
export class PluginFailure extends Error {
  constructor(
    readonly plugin: string,
    readonly hook: string,
    message: string,
  ) {
    super(message);
    this.name = 'PluginFailure';
  }
}
