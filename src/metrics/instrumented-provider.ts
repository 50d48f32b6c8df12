/**
 * A Provider decorator that measures upstream time and reads token usage, for every provider alike.
 *
 * Upstream time is the time the gateway waits on the provider: the call until it resolves, and for a stream, each
 * wait for the next chunk (not the time the gateway spends on a chunk between two waits, which is the gateway's own).
 * It is added to the request's exchange, so the gateway's overhead is the request's total time minus this.
 */
import type { Payload } from '../payload.js';
import type { Json, JsonObject } from '../plugins/plugin.js';
import type { ChatCall, EmbeddingsCall, KeyState, Provider, ProviderCall, StreamChunk } from '../providers/provider.js';
import { addUpstreamTime } from './exchange.js';

export interface Usage {
  input: number;
  output: number;
}

export interface UpstreamObserver {
  upstreamCall(provider: string, model: string, ms: number, ok: boolean): void;
  tokens(provider: string, model: string, usage: Usage): void;
}

export class InstrumentedProvider implements Provider {
  /** The inner provider's, when it has one; not timed (a count is not a model call). */
  readonly countTokens?: (call: ProviderCall) => Promise<Payload>;
  /** The inner provider's, when it has keys to tell of. */
  readonly keyStates?: () => KeyState[];

  constructor(
    private readonly inner: Provider,
    private readonly observer: UpstreamObserver,
  ) {
    if (inner.countTokens !== undefined) this.countTokens = (call) => (inner.countTokens as (c: ProviderCall) => Promise<Payload>).call(inner, call);
    if (inner.keyStates !== undefined) this.keyStates = () => (inner.keyStates as () => KeyState[]).call(inner);
  }

  get name(): string {
    return this.inner.name;
  }

  get models(): readonly string[] | undefined {
    return this.inner.models;
  }

  chat(call: ChatCall): Promise<Payload> {
    return this.answer(call, performance.now(), this.inner.chat(call));
  }

  embeddings(call: EmbeddingsCall): Promise<Payload> {
    return this.answer(call, performance.now(), this.inner.embeddings(call));
  }

  async stream(call: ChatCall): Promise<AsyncIterable<StreamChunk>> {
    const start = performance.now();
    let chunks: AsyncIterable<StreamChunk>;
    try {
      chunks = await this.inner.stream(call);
    } catch (err) {
      this.done(call, performance.now() - start, false);
      throw err;
    }
    return this.relay(call, chunks, performance.now() - start);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async *relay(call: ChatCall, chunks: AsyncIterable<StreamChunk>, waitedMs: number): AsyncGenerator<StreamChunk> {
    const iterator = chunks[Symbol.asyncIterator]();
    // Usage comes in the last chunk that has one (OpenAI sends it only with stream_options.include_usage, and null
    // before). It is read from the chunk's parsed value: a property read per chunk, counted once at the end.
    let usage: Json | undefined;
    let ended = false;
    let ok = false;
    try {
      for (;;) {
        const waitStart = performance.now();
        let next: IteratorResult<StreamChunk>;
        try {
          next = await iterator.next();
        } finally {
          waitedMs += performance.now() - waitStart;
        }
        if (next.done === true) break;
        const reported = next.value.value.usage;
        if (reported !== undefined && reported !== null) usage = reported;
        yield next.value;
      }
      ended = true;
      ok = true;
    } catch (err) {
      ended = true; // the upstream's iterator failed: it has finished already
      throw err;
    } finally {
      // The client went away or a hook ended the stream: let the provider release the upstream connection.
      if (!ended) await iterator.return?.();
      this.done(call, waitedMs, ok);
      const tokens = usageIn(usage);
      if (tokens !== undefined) this.observer.tokens(this.inner.name, call.model, tokens);
    }
  }

  /** Times a call that answers with one JSON object (chat, embeddings), and counts the tokens it reports. */
  private async answer(call: ProviderCall, start: number, answered: Promise<Payload>): Promise<Payload> {
    let response: Payload;
    try {
      response = await answered;
    } catch (err) {
      this.done(call, performance.now() - start, false);
      throw err;
    }
    this.done(call, performance.now() - start, true);
    const usage = usageOf(response);
    if (usage !== undefined) this.observer.tokens(this.inner.name, call.model, usage);
    return response;
  }

  private done(call: ProviderCall, ms: number, ok: boolean): void {
    addUpstreamTime(call.signal, ms);
    this.observer.upstreamCall(this.inner.name, call.model, ms, ok);
  }
}

/**
 * The response's usage. Providers hand over a parsed value as a rule (the OpenAI provider parses to validate, the
 * mock builds one), so this costs a property read; a provider that returned raw bytes would pay one parse here.
 */
function usageOf(response: Payload): Usage | undefined {
  try {
    return usageIn(response.value().usage);
  } catch {
    return undefined; // not JSON: the pipeline reports that, not the metrics
  }
}

function usageIn(usage: Json | undefined): Usage | undefined {
  if (!isObject(usage)) return undefined;
  const input = usage.prompt_tokens;
  const output = usage.completion_tokens;
  if (typeof input !== 'number' && typeof output !== 'number') return undefined;
  return { input: countOf(input), output: countOf(output) };
}

function countOf(value: Json | undefined): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
