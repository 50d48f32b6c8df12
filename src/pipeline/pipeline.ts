/**
 * The hook pipeline, in the order the plugin guide gives:
 *
 *   TransportInterceptor (registration order) -> parse -> PreHook (registration order; any may short-circuit)
 *   -> provider call (skipped on short-circuit) -> [StreamChunkHook per chunk, reverse order] -> PostHook (reverse
 *   order, only for plugins whose PreHook ran)
 *
 * A plugin's own failure is logged under its name and the request goes on as if that hook had not run. Request
 * and response bytes are handed from hook to hook untouched until a hook changes them, so a chain of observing
 * plugins costs no serialisation at all.
 */
import type { Logger } from 'pino';
import { Errors, HeimdallError } from '../errors.js';
import { Payload } from '../payload.js';
import type { AbiError, JsonObject, Plugin } from '../plugins/plugin.js';
import type { PluginRegistry } from '../plugins/registry.js';
import type { ChatCall } from '../providers/provider.js';
import type { ProviderRegistry, ResolvedModel } from '../providers/registry.js';
import { flatHeaders, type RequestContext } from './context.js';
import { responseToChunks, StreamAssembler } from './stream-shapes.js';

export type Result = { response: Payload; error?: undefined } | { error: AbiError; response?: undefined };

export type TransportOutcome =
  | { kind: 'continue'; body: Buffer }
  | { kind: 'response'; status: number; headers: Record<string, string>; body: Buffer };

/** What the client is sent: chunks, then "done" or one error. Events after the last are PostHook bookkeeping. */
export type StreamEvent = { kind: 'chunk'; data: string } | { kind: 'error'; error: AbiError } | { kind: 'done' };

export type StreamOutcome = { kind: 'stream'; events: AsyncIterable<StreamEvent> } | { kind: 'error'; error: AbiError };

export class Pipeline {
  constructor(
    private readonly plugins: PluginRegistry,
    private readonly providers: ProviderRegistry,
    private readonly log: Logger,
  ) {}

  /**
   * One request's run. It keeps the plugin instances it started with, whatever reloads happen meanwhile, until
   * release(): an instance replaced mid-request is cleaned up only after its last run lets go of it.
   */
  start(ctx: RequestContext, signal: AbortSignal): PipelineRun {
    const lease = this.plugins.acquire();
    return new PipelineRun(ctx, signal, lease.plugins, this.providers, this.log, lease.release);
  }
}

export class PipelineRun {
  private request: Payload | undefined;
  private unchanged = true;
  private target: ResolvedModel | undefined;
  /** How many plugins, counted from the first, had their PreHook reached: the ones PostHook runs for. */
  private executed = 0;

  constructor(
    readonly ctx: RequestContext,
    private readonly signal: AbortSignal,
    private readonly plugins: readonly Plugin[],
    private readonly providers: ProviderRegistry,
    private readonly log: Logger,
    /** Lets go of the plugin instances; call once, when the answer (stream included) is complete. */
    readonly release: () => void = () => {},
  ) {}

  /** TransportInterceptors, in registration order, on the raw request. */
  transport(method: string, path: string, body: Buffer): TransportOutcome {
    const ctx = this.ctx;
    let http: Buffer | undefined;
    for (const plugin of this.plugins) {
      if (!plugin.info.hooks.transport) continue;
      http ??= Buffer.from(JSON.stringify({ method, path, headers: flatHeaders(ctx.allHeaders) }));
      let r;
      try {
        r = plugin.transportInterceptor(ctx.bytes(), http, body);
      } catch (err) {
        this.failed(plugin, 'TransportInterceptor', err);
        continue;
      }
      ctx.apply(r.context);
      if (r.kind === 'response') {
        const { status_code, headers, body: answer } = r.response;
        return { kind: 'response', status: status_code, headers, body: Buffer.from(JSON.stringify(answer)) };
      }
      if (r.headers !== undefined) {
        ctx.rewriteHeaders(r.headers);
        http = undefined;
      }
      if (r.body !== undefined) body = Buffer.from(JSON.stringify(r.body));
    }
    return { kind: 'continue', body };
  }

  /** Parse and check the chat request, and pick its provider. Throws a 4xx HeimdallError. */
  prepare(body: Buffer): { stream: boolean } {
    if (body.length === 0) throw Errors.BAD_JSON('the body is empty');
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw Errors.BAD_JSON((err as Error).message);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw Errors.BAD_REQUEST('the request body must be a JSON object');
    }
    const request = value as JsonObject;
    if (!Array.isArray(request.messages) || request.messages.length === 0) {
      throw Errors.BAD_REQUEST('"messages" must be a non-empty array of messages');
    }
    if (request.stream !== undefined && request.stream !== null && typeof request.stream !== 'boolean') {
      throw Errors.BAD_REQUEST('"stream" must be a boolean');
    }
    this.target = this.providers.resolve(request.model);
    this.request = Payload.fromBytes(body, request);
    const stream = request.stream === true;
    this.ctx.setTarget(this.target.provider.name, this.target.model, stream);
    return { stream };
  }

  /** PreHooks, the provider, PostHooks. */
  async chat(): Promise<Result> {
    const pre = this.runPreHooks();
    let result: Result;
    if (pre !== undefined) {
      result = pre;
    } else {
      try {
        result = { response: await this.targetOf().provider.chat(this.call()) };
      } catch (err) {
        result = { error: toAbiError(err) };
      }
    }
    return this.runPostHooks(result);
  }

  /**
   * PreHooks, then the provider's stream. A failure before the first chunk (a PreHook's error, or the provider
   * refusing) goes through PostHooks at once and may still be recovered into a response, streamed as chunks.
   */
  async stream(): Promise<StreamOutcome> {
    const pre = this.runPreHooks();
    if (pre?.response !== undefined) {
      return { kind: 'stream', events: this.streamThroughHooks(fromArray(responseToChunks(pre.response.value()))) };
    }
    let failure = pre?.error;
    if (failure === undefined) {
      try {
        const upstream = await this.targetOf().provider.stream(this.call());
        return { kind: 'stream', events: this.streamThroughHooks(upstream) };
      } catch (err) {
        failure = toAbiError(err);
      }
    }
    const result = this.runPostHooks({ error: failure });
    if (result.error !== undefined) return { kind: 'error', error: result.error };
    return { kind: 'stream', events: plain(responseToChunks(result.response.value())) };
  }

  private runPreHooks(): Result | undefined {
    const ctx = this.ctx;
    for (let i = 0; i < this.plugins.length; i++) {
      const plugin = this.plugins[i] as Plugin;
      this.executed = i + 1;
      if (!plugin.info.hooks.pre) continue;
      let r;
      try {
        r = plugin.preHook(ctx.bytes(), (this.request as Payload).bytes());
      } catch (err) {
        this.failed(plugin, 'PreHook', err);
        continue;
      }
      ctx.apply(r.context);
      switch (r.kind) {
        case 'continue':
          break;
        case 'request':
          try {
            this.replaceRequest(r.request);
          } catch (err) {
            return { error: toAbiError(err) };
          }
          break;
        case 'response':
          return { response: Payload.fromValue(r.response) };
        case 'error':
          return { error: r.error };
      }
    }
    return undefined;
  }

  private runPostHooks(result: Result): Result {
    const ctx = this.ctx;
    let errorBytes: Buffer | undefined;
    for (let i = this.executed - 1; i >= 0; i--) {
      const plugin = this.plugins[i] as Plugin;
      if (!plugin.info.hooks.post) continue;
      let r;
      try {
        if (result.response !== undefined) {
          r = plugin.postHook(ctx.bytes(), result.response.bytes(), null);
        } else {
          errorBytes ??= Buffer.from(JSON.stringify(result.error));
          r = plugin.postHook(ctx.bytes(), null, errorBytes);
        }
      } catch (err) {
        this.failed(plugin, 'PostHook', err);
        continue;
      }
      ctx.apply(r.context);
      if (r.kind === 'response') {
        result = { response: Payload.fromValue(r.response) };
      } else if (r.kind === 'error') {
        result = { error: r.error };
        errorBytes = undefined;
      }
    }
    return result;
  }

  /**
   * StreamChunkHooks (reverse order, plugins whose PreHook ran) on every chunk, then PostHooks once the stream
   * has ended, with the assembled response or the error.
   */
  private async *streamThroughHooks(upstream: AsyncIterable<string>): AsyncGenerator<StreamEvent> {
    const ran = this.plugins.slice(0, this.executed);
    const chunkPlugins = ran.filter((p) => p.info.hooks.chunk).reverse();
    const assembler = ran.some((p) => p.info.hooks.post) ? new StreamAssembler() : undefined;
    const ctx = this.ctx;
    let error: AbiError | undefined;
    let finished = false;
    try {
      chunks: for await (const data of upstream) {
        let text = data;
        let bytes: Buffer | undefined;
        for (const plugin of chunkPlugins) {
          let r;
          try {
            r = plugin.streamChunk(ctx.bytes(), (bytes ??= Buffer.from(text)));
          } catch (err) {
            this.failed(plugin, 'StreamChunkHook', err);
            continue;
          }
          if (r.kind === 'chunk') {
            text = JSON.stringify(r.chunk);
            bytes = undefined;
          } else if (r.kind === 'drop') {
            continue chunks;
          } else if (r.kind === 'error') {
            error = r.error;
            break chunks;
          }
        }
        assembler?.add(text);
        yield { kind: 'chunk', data: text };
      }
      // The client hears the end before PostHooks run, so their cost never delays the stream.
      finished = error === undefined;
      yield error === undefined ? { kind: 'done' } : { kind: 'error', error };
    } catch (err) {
      error = toAbiError(err);
      yield { kind: 'error', error };
    } finally {
      if (!finished && error === undefined) error = toAbiError(Errors.CLIENT_CLOSED());
      if (assembler !== undefined) {
        const outcome = this.runPostHooks(error ? { error } : { response: Payload.fromValue(assembler.response()) });
        if (outcome.error !== undefined && error === undefined) {
          this.log.debug({ request_id: ctx.requestId }, 'a PostHook turned a finished stream into an error; the stream was already sent');
        }
      }
    }
  }

  private replaceRequest(request: JsonObject): void {
    const previous = (this.request as Payload).value().model;
    this.request = Payload.fromValue(request);
    this.unchanged = false;
    if (request.model !== previous) {
      this.target = this.providers.resolve(request.model);
      this.ctx.setTarget(this.target.provider.name, this.target.model, this.ctx.stream);
    }
  }

  private call(): ChatCall {
    return { model: this.targetOf().model, request: this.request as Payload, unchanged: this.unchanged, signal: this.signal };
  }

  private targetOf(): ResolvedModel {
    if (this.target === undefined) throw Errors.INTERNAL('prepare() must run before the provider call');
    return this.target;
  }

  private failed(plugin: Plugin, hook: string, err: unknown): void {
    this.log.warn(
      { plugin: plugin.info.name, hook, request_id: this.ctx.requestId },
      `plugin ${plugin.info.name} failed in ${hook}, continuing without it: ${(err as Error).message ?? String(err)}`,
    );
  }
}

export function toAbiError(err: unknown): AbiError {
  const e = err instanceof HeimdallError ? err : Errors.INTERNAL((err as Error)?.message ?? String(err));
  return { status_code: e.statusCode, message: e.message, type: e.type, code: e.code, allow_fallbacks: e.allowFallbacks };
}

async function* fromArray(items: string[]): AsyncGenerator<string> {
  yield* items;
}

async function* plain(items: string[]): AsyncGenerator<StreamEvent> {
  for (const data of items) yield { kind: 'chunk', data };
  yield { kind: 'done' };
}
