/**
 * The hook pipeline, in the order the plugin guide gives:
 *
 *   TransportInterceptor (registration order) -> parse -> PreHook (registration order; any may short-circuit)
 *   -> provider call (skipped on short-circuit) -> [StreamChunkHook per chunk, reverse order] -> PostHook (reverse
 *   order, only for plugins whose PreHook ran)
 *
 * A plugin's own failure is logged under its name, and the request goes on as if that hook had not run, or, when the
 * plugin's policy is on_error: "fail", is answered with the plugin's refusal (see plugins/guard.ts). Request
 * and response bytes are handed from hook to hook untouched until a hook changes them, so a chain of observing
 * plugins costs no serialisation at all.
 *
 * Every route runs this on the canonical (OpenAI-shaped) request: the drop-in SDK routes translate before and
 * after. When the request names `fallbacks` and an attempt fails, PreHook -> provider -> PostHook runs again for
 * the next model (fallbacks.ts); if every attempt fails, the client gets the primary's error.
 */
import type { Logger } from 'pino';
import type { CancelSignal } from '../cancel.js';
import { Errors, HeimdallError, errorBody } from '../errors.js';
import { requestScope } from '../host/services.js';
import { parseJsonBody, Payload } from '../payload.js';
import { bounded } from '../plugins/native-plugin.js';
import { PluginFailure, type AbiError, type Json, type JsonObject, type Plugin, type PostHookResult, type PreHookResult } from '../plugins/plugin.js';
import type { PluginRegistry } from '../plugins/registry.js';
import { chunkOf, newUpstreamMeta, type NativeRequest, type ProviderCall, type StreamChunk, type UpstreamMeta } from '../providers/provider.js';
import type { ProviderRegistry, ResolvedModel } from '../providers/registry.js';
import { flatHeaders, type RequestContext } from './context.js';
import { fallbackRequest, modelName, parseFallbacks } from './fallbacks.js';
import { responseToChunks, StreamAssembler } from './stream-shapes.js';
import type { Decision, Trace, TraceRecorder } from './trace.js';
import { validateChatRequest } from './validate.js';

/**
 * A response, or an error. `servedBy` ("provider/model") is set when a provider's answer is what the client gets
 * (not a plugin's short-circuit or recovery).
 */
export type Result =
  | { response: Payload; error?: undefined; servedBy?: string; meta?: UpstreamMeta }
  | { error: AbiError; response?: undefined; meta?: UpstreamMeta };

export type TransportOutcome =
  | { kind: 'continue'; body: Buffer }
  | { kind: 'response'; status: number; headers: Record<string, string>; body: Buffer };

/**
 * What the client is sent: chunks, then "done" or one error. Events after the last are PostHook bookkeeping. A
 * chunk comes as its text (what an OpenAI-shaped stream writes) and its parsed value (what a route that translates
 * the chunks reads), so no route parses it again.
 */
export type StreamEvent = { kind: 'chunk'; chunk: StreamChunk } | { kind: 'error'; error: AbiError } | { kind: 'done' };

export type StreamOutcome =
  | {
      kind: 'stream';
      events: AsyncIterable<StreamEvent>;
      servedBy?: string;
      error?: undefined;
      meta?: UpstreamMeta;
      /** True when the chunks are the provider's own, in order, no StreamChunkHook having run on them. */
      untouched?: boolean;
    }
  | { kind: 'error'; error: AbiError; meta?: UpstreamMeta };

export type Operation = 'chat' | 'embeddings';

export interface PrepareOptions {
  /** What the request asks for; chat unless given. */
  operation?: Operation;
  /** On the drop-in SDK routes, a bare model name ("gpt-4o-mini") belongs to this provider. */
  defaultProvider?: string | undefined;
  /** A drop-in route's request in its own format, for a provider of that format (see ProviderCall.native). */
  native?: NativeRequest | undefined;
}

/** One try at answering, for the primary model or one fallback: its own request, target and PreHook count. */
interface Attempt {
  request: Payload;
  /** True while `request` holds the client's own bytes, untouched by plugins. */
  unchanged: boolean;
  target: ResolvedModel;
  /** How many plugins, counted from the first, had their PreHook reached: the ones PostHook runs for. */
  executed: number;
}

export interface PipelineOptions {
  /**
   * Log each request's body and the answer the client got (one `info` line, "bodies", once the answer is complete),
   * through the gateway's logger and so its redaction. Off by default: message content stays out of the logs.
   */
  logBodies?: boolean;
  /** The request inspector's ring (trace.ts): each run records its hooks' decisions and provider attempts there. */
  traces?: TraceRecorder;
}

export class Pipeline {
  constructor(
    private readonly plugins: PluginRegistry,
    private readonly providers: ProviderRegistry,
    private readonly log: Logger,
    private readonly options: PipelineOptions = {},
  ) {}

  /**
   * One request's run. It keeps the plugin instances it started with, whatever reloads happen meanwhile, until
   * release(): an instance replaced mid-request is cleaned up only after its last run lets go of it.
   */
  start(ctx: RequestContext, signal: CancelSignal): PipelineRun {
    const lease = this.plugins.acquire();
    const run = new PipelineRun(ctx, signal, lease.plugins, this.providers, this.log, requestScope(ctx, lease.release), this.options.logBodies === true);
    run.trace = this.options.traces?.start(ctx.requestId, ctx.route);
    return run;
  }
}

export class PipelineRun {
  /** The canonical request as it came in (after TransportInterceptors): every attempt starts from it. */
  private original: Payload | undefined;
  private primary: ResolvedModel | undefined;
  private fallbacks: ResolvedModel[] = [];
  private defaultProvider: string | undefined;
  private native: NativeRequest | undefined;
  private streaming = false;
  /** This run's record for the request inspector, when one is kept. */
  trace: Trace | undefined;

  constructor(
    readonly ctx: RequestContext,
    private readonly signal: CancelSignal,
    private readonly plugins: readonly Plugin[],
    private readonly providers: ProviderRegistry,
    private readonly log: Logger,
    /** Lets go of the plugin instances; call once, when the answer (stream included) is complete. */
    readonly release: () => void = () => {},
    private readonly logBodies = false,
  ) {}

  /**
   * TransportInterceptors, in registration order, on the raw request. An answer at once when every one that runs is
   * inline (or none does); a promise otherwise.
   */
  transport(method: string, path: string, body: Buffer): TransportOutcome | Promise<TransportOutcome> {
    for (const plugin of this.plugins) {
      if (plugin.info.hooks.transport) return this.runTransport(method, path, body);
    }
    return { kind: 'continue', body };
  }

  private async runTransport(method: string, path: string, body: Buffer): Promise<TransportOutcome> {
    const ctx = this.ctx;
    let http: Buffer | undefined;
    for (const plugin of this.plugins) {
      if (!plugin.info.hooks.transport) continue;
      http ??= Buffer.from(JSON.stringify({ method, path, headers: flatHeaders(ctx.allHeaders) }));
      let r;
      const start = this.trace === undefined ? 0 : performance.now();
      try {
        r = plugin.transportInterceptor(ctx.bytes(), http, body);
        if (r instanceof Promise) r = await r;
      } catch (err) {
        const refusal = this.failed(plugin, 'TransportInterceptor', err, start);
        if (refusal !== undefined) {
          return { kind: 'response', status: refusal.status_code, headers: {}, body: Buffer.from(JSON.stringify(errorBody(refusal))) };
        }
        continue;
      }
      ctx.apply(r.context);
      this.trace?.hook('TransportInterceptor', plugin.info.name, r.kind === 'response' ? 'short-circuit' : r.headers !== undefined || r.body !== undefined ? 'modified' : 'continue', start);
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

  /**
   * Parse and check the request, and pick its provider and fallbacks. Throws a 4xx HeimdallError. `body` is the
   * client's bytes, or a request a drop-in route already translated into the canonical shape.
   */
  prepare(body: Buffer | JsonObject, options: PrepareOptions = {}): { stream: boolean } {
    const request = Buffer.isBuffer(body) ? parseObject(body) : body;
    const operation = options.operation ?? 'chat';
    if (operation === 'chat') {
      validateChatRequest(request, options.native !== undefined);
    } else if (!isInput(request.input)) {
      throw Errors.BAD_REQUEST('"input" must be a string, an array of strings, or an array of token arrays, and not empty');
    }
    this.defaultProvider = options.defaultProvider;
    this.native = options.native;
    const target = this.resolve(request.model);
    // Plugins see one naming whatever the route: "provider/model".
    const canonical = modelName(target);
    if (request.model === canonical) {
      this.original = Buffer.isBuffer(body) ? Payload.fromBytes(body, request) : Payload.fromValue(request);
    } else {
      this.original = Payload.fromValue({ ...request, model: canonical });
    }
    this.primary = target;
    this.fallbacks = parseFallbacks(request.fallbacks, (name) => this.resolve(name));
    this.streaming = operation === 'chat' && request.stream === true;
    if (this.trace !== undefined) this.trace.stream = this.streaming;
    this.ctx.setTarget(target.provider.name, target.model, this.streaming);
    return { stream: this.streaming };
  }

  /** PreHooks, the provider, PostHooks; again for each fallback while attempts fail. */
  chat(): Promise<Result> {
    const done = this.withFallbacks((attempt) =>
      this.once(attempt, (call) => attempt.target.provider.chat(call)),
    );
    return this.logBodies ? done.then((result) => this.logResult(result)) : done;
  }

  /** As chat(), for an embeddings request. */
  embeddings(): Promise<Result> {
    const done = this.withFallbacks((attempt) =>
      this.once(attempt, (call) => attempt.target.provider.embeddings(call)),
    );
    return this.logBodies ? done.then((result) => this.logResult(result)) : done;
  }

  /**
   * PreHooks, then the provider's stream. A failure before the first chunk (a PreHook's error, the provider
   * refusing, or the upstream breaking before it sent anything) goes through PostHooks at once, may still be
   * recovered into a response (streamed as chunks), and otherwise moves on to the next fallback. Once a chunk has
   * come, the stream is the client's: a later failure ends it with an error event.
   */
  stream(): Promise<StreamOutcome> {
    const done = this.withFallbacks((attempt) => this.streamOnce(attempt));
    if (!this.logBodies) return done;
    return done.then((outcome) => {
      if (outcome.kind === 'error') this.logExchange(undefined, outcome.error); // a stream logs its own at its end
      return outcome;
    });
  }

  /**
   * Runs attempts until one answers: the primary, then each fallback in order, unless an error says
   * allow_fallbacks: false (then that error is the answer) or the client has gone. When all fail: the primary's.
   */
  private async withFallbacks<T extends { error?: AbiError | undefined }>(run: (attempt: Attempt) => Promise<T>): Promise<T> {
    let first: T | undefined;
    for (let i = 0; ; i++) {
      const outcome = await run(this.attempt(i));
      const error = outcome.error;
      if (error === undefined) return outcome;
      first ??= outcome;
      if (error.allow_fallbacks === false) return outcome;
      if (i >= this.fallbacks.length || this.signal.aborted) return first;
    }
  }

  private attempt(index: number): Attempt {
    const original = this.original;
    const primary = this.primary;
    if (original === undefined || primary === undefined) throw Errors.INTERNAL('prepare() must run before the provider call');
    this.trace?.nextAttempt(modelName(index === 0 ? primary : (this.fallbacks[index - 1] as ResolvedModel)));
    if (index === 0) {
      this.ctx.setTarget(primary.provider.name, primary.model, this.streaming);
      return { request: original, unchanged: true, target: primary, executed: 0 };
    }
    const target = this.fallbacks[index - 1] as ResolvedModel;
    this.ctx.setTarget(target.provider.name, target.model, this.streaming);
    return { request: Payload.fromValue(fallbackRequest(original.value(), target)), unchanged: false, target, executed: 0 };
  }

  /** One attempt of a call that answers with one object (chat, embeddings). */
  private async once(attempt: Attempt, send: (call: ProviderCall) => Promise<Payload>): Promise<Result> {
    let pre = this.runPreHooks(attempt);
    if (pre instanceof Promise) pre = await pre;
    let result: Result;
    let meta: UpstreamMeta | undefined;
    if (pre !== undefined) {
      result = pre;
    } else {
      const call = this.call(attempt);
      meta = call.meta;
      const start = this.trace === undefined ? 0 : performance.now();
      try {
        result = { response: await send(call), servedBy: modelName(attempt.target), meta };
      } catch (err) {
        result = { error: toAbiError(err), meta };
      }
      this.trace?.provider(modelName(attempt.target), start, result.error?.code);
    }
    let after = this.runPostHooks(attempt, result);
    if (after instanceof Promise) after = await after;
    // A PostHook that replaced the answer made it its own; one that only looked keeps the provider's name on it.
    if (after.response !== undefined && after.response === result.response) return result;
    if (after.response !== undefined) return { response: after.response, meta };
    return after === result ? result : { error: after.error, meta };
  }

  private async streamOnce(attempt: Attempt): Promise<StreamOutcome> {
    let pre = this.runPreHooks(attempt);
    if (pre instanceof Promise) pre = await pre;
    if (pre?.response !== undefined) {
      return { kind: 'stream', events: this.streamThroughHooks(attempt, fromArray(responseToChunks(pre.response.value()))) };
    }
    let failure = pre?.error;
    let meta: UpstreamMeta | undefined;
    if (failure === undefined) {
      const call = this.call(attempt);
      meta = call.meta;
      const start = this.trace === undefined ? 0 : performance.now();
      try {
        const upstream = await attempt.target.provider.stream(call);
        const started = await firstChunk(upstream);
        this.trace?.provider(modelName(attempt.target), start);
        const untouched = !this.plugins.slice(0, attempt.executed).some((p) => p.info.hooks.chunk);
        return { kind: 'stream', events: this.streamThroughHooks(attempt, started), servedBy: modelName(attempt.target), meta, untouched };
      } catch (err) {
        failure = toAbiError(err);
        this.trace?.provider(modelName(attempt.target), start, failure.code);
      }
    }
    let result = this.runPostHooks(attempt, { error: failure });
    if (result instanceof Promise) result = await result;
    if (result.error !== undefined) return { kind: 'error', error: result.error, meta };
    if (this.logBodies) this.logExchange(result.response.value(), undefined);
    return { kind: 'stream', events: plain(responseToChunks(result.response.value())) };
  }

  // The PreHook and PostHook passes run synchronously while every hook answers at once (inline), and switch to an
  // asynchronous continuation at the first hook that answers with a promise (threaded, isolated): an all-inline
  // pipeline pays no promise and no microtask for them.

  private runPreHooks(attempt: Attempt, from = 0): Result | undefined | Promise<Result | undefined> {
    for (let i = from; i < this.plugins.length; i++) {
      const plugin = this.plugins[i] as Plugin;
      attempt.executed = i + 1;
      if (!plugin.info.hooks.pre) continue;
      let r;
      const start = this.trace === undefined ? 0 : performance.now();
      try {
        r = plugin.preHook(this.ctx.bytes(), attempt.request.bytes());
      } catch (err) {
        const refusal = this.failed(plugin, 'PreHook', err, start);
        if (refusal !== undefined) return { error: refusal };
        continue;
      }
      if (r instanceof Promise) return this.awaitPreHook(attempt, i, r, start);
      const outcome = this.applyPreHook(attempt, r, plugin, start);
      if (outcome !== undefined) return outcome;
    }
    return undefined;
  }

  private async awaitPreHook(attempt: Attempt, i: number, pending: Promise<PreHookResult>, start: number): Promise<Result | undefined> {
    let r;
    try {
      r = await pending;
    } catch (err) {
      const refusal = this.failed(this.plugins[i] as Plugin, 'PreHook', err, start);
      if (refusal !== undefined) return { error: refusal };
      return this.runPreHooks(attempt, i + 1);
    }
    return this.applyPreHook(attempt, r, this.plugins[i] as Plugin, start) ?? this.runPreHooks(attempt, i + 1);
  }

  /** A PreHook's answer: undefined to go on to the next plugin, or the short-circuit's result. */
  private applyPreHook(attempt: Attempt, r: PreHookResult, plugin: Plugin, start: number): Result | undefined {
    this.ctx.apply(r.context);
    this.trace?.hook('PreHook', plugin.info.name, PRE_DECISION[r.kind], start);
    switch (r.kind) {
      case 'continue':
        return undefined;
      case 'request':
        try {
          this.replaceRequest(attempt, r.request);
        } catch (err) {
          return { error: toAbiError(err) };
        }
        return undefined;
      case 'response':
        return { response: Payload.fromValue(r.response) };
      case 'error':
        return { error: r.error };
    }
  }

  private runPostHooks(attempt: Attempt, result: Result, from = attempt.executed - 1): Result | Promise<Result> {
    let errorBytes: Buffer | undefined;
    for (let i = from; i >= 0; i--) {
      const plugin = this.plugins[i] as Plugin;
      if (!plugin.info.hooks.post) continue;
      let r;
      const start = this.trace === undefined ? 0 : performance.now();
      try {
        if (result.response !== undefined) {
          r = plugin.postHook(this.ctx.bytes(), result.response.bytes(), null);
        } else {
          errorBytes ??= Buffer.from(JSON.stringify(result.error));
          r = plugin.postHook(this.ctx.bytes(), null, errorBytes);
        }
      } catch (err) {
        const next = this.postHookFailed(plugin, err, result, start);
        if (next !== result) errorBytes = undefined;
        result = next;
        continue;
      }
      if (r instanceof Promise) return this.awaitPostHook(attempt, result, i, r, start);
      const next = this.applyPostHook(r, result, plugin, start);
      if (next !== result && next.error !== undefined) errorBytes = undefined;
      result = next;
    }
    return result;
  }

  private async awaitPostHook(attempt: Attempt, result: Result, i: number, pending: Promise<PostHookResult>, start: number): Promise<Result> {
    let next: Result;
    try {
      next = this.applyPostHook(await pending, result, this.plugins[i] as Plugin, start);
    } catch (err) {
      next = this.postHookFailed(this.plugins[i] as Plugin, err, result, start);
    }
    return this.runPostHooks(attempt, next, i - 1);
  }

  private applyPostHook(r: PostHookResult, result: Result, plugin: Plugin, start: number): Result {
    this.ctx.apply(r.context);
    this.trace?.hook('PostHook', plugin.info.name, r.kind === 'continue' ? 'continue' : 'modified', start);
    if (r.kind === 'response') return { response: Payload.fromValue(r.response) };
    if (r.kind === 'error') return { error: r.error };
    return result;
  }

  /** Failing closed keeps a response from going out unchecked; an error already on its way stays as it is. */
  private postHookFailed(plugin: Plugin, err: unknown, result: Result, start: number): Result {
    const refusal = this.failed(plugin, 'PostHook', err, start);
    return refusal !== undefined && result.response !== undefined ? { error: refusal } : result;
  }

  /**
   * StreamChunkHooks (reverse order, plugins whose PreHook ran) on every chunk, then PostHooks once the stream
   * has ended, with the assembled response or the error. Nothing here parses a chunk: StreamChunkHooks get its
   * text as bytes (made only when one runs), the assembler reads its value, and a hook's replacement arrives
   * parsed (its value) and is serialised once (its text).
   */
  private async *streamThroughHooks(attempt: Attempt, upstream: AsyncIterable<StreamChunk>): AsyncGenerator<StreamEvent> {
    const ran = this.plugins.slice(0, attempt.executed);
    const chunkPlugins = ran.filter((p) => p.info.hooks.chunk).reverse();
    const postHooks = ran.some((p) => p.info.hooks.post);
    const assembler = postHooks || this.logBodies ? new StreamAssembler() : undefined;
    const ctx = this.ctx;
    let error: AbiError | undefined;
    let finished = false;
    try {
      chunks: for await (const received of upstream) {
        let chunk = received;
        let bytes: Buffer | undefined;
        for (const plugin of chunkPlugins) {
          let r;
          const start = this.trace === undefined ? 0 : performance.now();
          try {
            r = plugin.streamChunk(ctx.bytes(), (bytes ??= Buffer.from(chunk.text)));
            if (r instanceof Promise) r = await r;
          } catch (err) {
            this.trace?.chunk(plugin.info.name, start, 'error');
            const refusal = this.failed(plugin, 'StreamChunkHook', err);
            if (refusal !== undefined) {
              error = refusal;
              break chunks;
            }
            continue;
          }
          this.trace?.chunk(plugin.info.name, start, r.kind === 'chunk' ? 'modified' : r.kind === 'drop' ? 'dropped' : r.kind === 'error' ? 'error' : 'continue');
          if (r.kind === 'chunk') {
            chunk = chunkOf(r.chunk);
            bytes = undefined;
          } else if (r.kind === 'drop') {
            continue chunks;
          } else if (r.kind === 'error') {
            error = r.error;
            break chunks;
          }
        }
        assembler?.add(chunk.value);
        yield { kind: 'chunk', chunk };
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
        // What the client was sent: the chunks after StreamChunkHooks, assembled (PostHooks come too late to change it).
        const sent = error === undefined ? assembler.response() : undefined;
        if (this.logBodies) this.logExchange(sent, error);
        let outcome = postHooks ? this.runPostHooks(attempt, sent !== undefined ? { response: Payload.fromValue(sent) } : { error: error as AbiError }) : undefined;
        if (outcome instanceof Promise) outcome = await outcome;
        if (outcome?.error !== undefined && error === undefined) {
          this.log.debug({ request_id: ctx.requestId }, 'a PostHook turned a finished stream into an error; the stream was already sent');
        }
      }
    }
  }

  private replaceRequest(attempt: Attempt, request: JsonObject): void {
    const previous = attempt.request.value().model;
    attempt.request = Payload.fromValue(request);
    attempt.unchanged = false;
    if (request.model !== previous) {
      attempt.target = this.resolve(request.model);
      this.ctx.setTarget(attempt.target.provider.name, attempt.target.model, this.ctx.stream);
    }
  }

  private resolve(model: Json | undefined): ResolvedModel {
    return this.providers.resolve(model, this.defaultProvider);
  }

  private call(attempt: Attempt): ProviderCall {
    return {
      model: attempt.target.model,
      request: attempt.request,
      unchanged: attempt.unchanged,
      signal: this.signal,
      meta: newUpstreamMeta(),
      native: this.native,
    };
  }

  /** The "bodies" line of a non-streamed answer. */
  private logResult(result: Result): Result {
    this.logExchange(result.response?.value(), result.error);
    return result;
  }

  /** One line with the request as the pipeline received it (canonical shape) and the answer, or the error. */
  private logExchange(response: JsonObject | undefined, error: AbiError | undefined): void {
    if (this.trace?.redact !== undefined) this.trace.recordBodies(this.original?.value(), response, error as Json | undefined);
    this.log.info({ request_id: this.ctx.requestId, request: this.original?.value(), response, error }, 'bodies');
  }

  /**
   * Logs a plugin's failure under its name. Returns the error to answer with when the plugin's policy is to fail
   * closed (on_error: "fail"), else undefined: the request goes on without the hook.
   */
  private failed(plugin: Plugin, hook: string, err: unknown, start?: number): AbiError | undefined {
    const answer = err instanceof PluginFailure ? err.answer : undefined;
    // A PluginFailure's message is bounded where it is made; anything else (a bug) is bounded here.
    const message = err instanceof PluginFailure ? err.message : bounded((err as Error)?.message ?? String(err));
    if (start !== undefined) this.trace?.hook(hook as 'PreHook', plugin.info.name, 'error', start, message);
    // A quarantine was logged when it began: the requests it refuses are not, one by one.
    const level = answer?.code === Errors.PLUGIN_QUARANTINED.code ? 'debug' : 'warn';
    this.log[level](
      { plugin: plugin.info.name, hook, request_id: this.ctx.requestId },
      answer === undefined
        ? `plugin ${plugin.info.name} failed in ${hook}, continuing without it: ${message}`
        : `plugin ${plugin.info.name} failed in ${hook}, refusing the request (on_error: fail): ${message}`,
    );
    return answer;
  }
}

/** What a PreHook's answer did, for the request inspector. */
const PRE_DECISION: Record<PreHookResult['kind'], Decision> = { continue: 'continue', request: 'modified', response: 'short-circuit', error: 'short-circuit' };

/** The body as a JSON object, or the client's 4xx. */
function parseObject(body: Buffer): JsonObject {
  const value = parseJsonBody(body);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw Errors.BAD_REQUEST('the request body must be a JSON object');
  }
  return value as JsonObject;
}

function isInput(input: Json | undefined): boolean {
  if (typeof input === 'string') return true;
  return Array.isArray(input) && input.length > 0;
}

/**
 * Waits for the stream's first chunk, so that a stream which fails before sending anything fails here (and can
 * fall back) rather than after the client was told 200. The chunk is then handed on first.
 */
async function firstChunk<T>(upstream: AsyncIterable<T>): Promise<AsyncIterable<T>> {
  const iterator = upstream[Symbol.asyncIterator]();
  const first = await iterator.next();
  return {
    [Symbol.asyncIterator]: () => {
      let pending: IteratorResult<T> | undefined = first;
      return {
        next: () => {
          if (pending === undefined) return iterator.next();
          const r = pending;
          pending = undefined;
          return Promise.resolve(r);
        },
        return: async (value?: unknown) => {
          pending = undefined;
          await iterator.return?.(value);
          return { done: true, value: undefined };
        },
      };
    },
  };
}

export function toAbiError(err: unknown): AbiError {
  const e = err instanceof HeimdallError ? err : Errors.INTERNAL((err as Error)?.message ?? String(err));
  const abi: AbiError = { status_code: e.statusCode, message: e.message, type: e.type, code: e.code, allow_fallbacks: e.allowFallbacks };
  if (e.retryAfter !== undefined) abi.retry_after = e.retryAfter;
  if (e.upstream !== undefined) abi.upstream = { ...e.upstream };
  if (e.param !== undefined) abi.param = e.param;
  return abi;
}

async function* fromArray<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

async function* plain(items: StreamChunk[]): AsyncGenerator<StreamEvent> {
  for (const chunk of items) yield { kind: 'chunk', chunk };
  yield { kind: 'done' };
}
