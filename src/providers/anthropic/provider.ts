/**
 * The Anthropic Messages API (`POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version`), translated to and
 * from the OpenAI chat shape by request.ts and response.ts.
 *
 * The lossless path: when an Anthropic client's request (call.native) reaches this provider untouched by plugins,
 * its own bytes go upstream, only the model swapped, with its anthropic-version and anthropic-beta headers. The
 * answer is translated for the pipeline either way, and also kept as the upstream sent it (Payload.native, and each
 * chunk's `native` events), so the Anthropic route can hand it back byte for byte when no plugin changed it.
 */
import type { AnthropicProviderConfig } from '../../config/schema.js';
import { Errors, HeimdallError } from '../../errors.js';
import { assertJsonDepth } from '../../json-depth.js';
import { Payload } from '../../payload.js';
import type { JsonObject } from '../../plugins/plugin.js';
import { leaveOut } from '../canonical.js';
import { UpstreamClient, type BuildRequest } from '../http/client.js';
import { basePath, upstreamSettings } from '../http/settings.js';
import type { SseEvent } from '../http/sse.js';
import { preview } from '../http/status.js';
import type { ChatCall, KeyState, NativeRequest, Provider, ProviderCall, StreamChunk } from '../provider.js';
import { unsupported } from '../unsupported.js';
import { toMessagesRequest } from './request.js';
import { fromMessage, StreamTranslator } from './response.js';
import { message, streamEvent } from './wire.js';

/** Client headers an Anthropic client sends that an Anthropic upstream must see (beta features, the API version). */
export const FORWARDED_HEADERS = ['anthropic-beta', 'anthropic-version'] as const;

/** The status an Anthropic error type stands for, when it arrives as a stream event rather than an answer. */
const ERROR_STATUS: Record<string, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529,
};

export function createAnthropicProvider(name: string, config: AnthropicProviderConfig): Provider {
  return new AnthropicProvider(name, config);
}

class AnthropicProvider implements Provider {
  readonly models: readonly string[] | undefined;
  private readonly client: UpstreamClient;
  private readonly path: string;
  private readonly countPath: string;
  /** Header names set in the provider's config: the client's values of these are not forwarded. */
  private readonly pinned: Set<string>;

  constructor(
    readonly name: string,
    private readonly config: AnthropicProviderConfig,
  ) {
    const url = new URL(config.base_url);
    this.models = config.models;
    this.path = `${basePath(url)}/v1/messages`;
    this.countPath = `${basePath(url)}/v1/messages/count_tokens`;
    this.client = new UpstreamClient(upstreamSettings(name, config, url.origin));
    this.pinned = new Set(Object.keys(config.headers).map((h) => h.toLowerCase()));
  }

  async chat(call: ChatCall): Promise<Payload> {
    const body = await this.client.json(call, this.build(call, false));
    assertJsonDepth(body, `provider ${this.name}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `${(err as Error).message}: ${preview(body, this.client.redact)}`);
    }
    const msg = message.safeParse(parsed);
    if (!msg.success) throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `not a Messages API message: ${preview(body, this.client.redact)}`);
    const payload = Payload.fromValue(fromMessage(msg.data));
    if (call.native?.format === 'anthropic') payload.native = { format: 'anthropic', bytes: body };
    return payload;
  }

  async stream(call: ChatCall): Promise<AsyncIterable<StreamChunk>> {
    const events = await this.client.stream(call, this.build(call, true));
    return this.chunks(events, call.native?.format === 'anthropic');
  }

  embeddings(): Promise<Payload> {
    return unsupported(this.name, 'embeddings (the Anthropic API has none)');
  }

  /** The client's count_tokens request, model swapped, to the upstream's; its answer as it came. */
  async countTokens(call: ProviderCall): Promise<Payload> {
    const native = call.native;
    if (native?.format !== 'anthropic') return unsupported(this.name, 'count_tokens outside the Anthropic route');
    const body = nativeBody(native, call.model, undefined);
    const answer = await this.client.json(call, (key) => ({ path: this.countPath, headers: this.headers(key, native), body }));
    assertJsonDepth(answer, `provider ${this.name}`);
    return Payload.fromBytes(answer);
  }

  keyStates(): KeyState[] {
    return this.client.keyStates();
  }

  close(): Promise<void> {
    return this.client.close();
  }

  private build(call: ChatCall, stream: boolean): BuildRequest {
    // Made once per call: retries and key rotation resend the same body.
    const native = call.native?.format === 'anthropic' ? call.native : undefined;
    const body =
      native !== undefined && call.unchanged
        ? nativeBody(native, call.model, stream)
        : JSON.stringify(
            toMessagesRequest(call.request.value(), call.model, {
              defaultMaxTokens: this.config.default_max_tokens,
              stream,
              provider: this.name,
              leaveOut: leaveOut(this.name, this.config.drop_unsupported, call.meta),
            }),
          );
    const version = native !== undefined && call.unchanged ? undefined : this.config.anthropic_version;
    return (key) => ({ path: this.path, headers: this.headers(key, native, version), body });
  }

  /**
   * The key, the API version (the client's own on the lossless path, else the configured one the translation is
   * written for) and the client's anthropic-beta.
   */
  private headers(key: string | undefined, native: NativeRequest | undefined, version?: string): Record<string, string> {
    const headers: Record<string, string> = { 'anthropic-version': this.config.anthropic_version };
    if (native !== undefined) {
      for (const name of FORWARDED_HEADERS) {
        const value = native.headers[name];
        // A value the operator pinned in the provider's headers is the operator's to choose.
        if (value !== undefined && !this.pinned.has(name)) headers[name] = value;
      }
    }
    if (version !== undefined) headers['anthropic-version'] = version;
    if (key !== undefined) headers['x-api-key'] = key;
    return headers;
  }

  /**
   * Upstream events in, chunks out. With `keepNative`, each chunk also carries the SSE text of the upstream events
   * it was made from, and of those before it that made none (ping, content_block_stop, events this gateway does not
   * know), so the events can be handed back as they came.
   */
  private async *chunks(events: AsyncIterable<SseEvent>, keepNative: boolean): AsyncGenerator<StreamChunk> {
    const translator = new StreamTranslator(this.name, this.client.redact);
    let pending = '';
    for await (const sse of events) {
      const { data } = sse;
      assertJsonDepth(data, `provider ${this.name}`);
      let value: unknown;
      try {
        value = JSON.parse(data);
      } catch (err) {
        throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `a stream event is not JSON (${(err as Error).message}): ${preview(data, this.client.redact)}`);
      }
      if (keepNative) pending += frame(sse);
      const event = streamEvent.safeParse(value);
      if (!event.success) continue; // an event type this gateway does not know yet: passed on natively only
      let out: StreamChunk[];
      try {
        out = translator.translate(event.data);
      } catch (err) {
        throw event.data.type === 'error'
          ? withErrorType(err, event.data.error.type, this.name, event.data.error.message, this.client.redact)
          : err;
      }
      if (out.length > 0 && pending !== '') {
        out[0] = { ...(out[0] as StreamChunk), native: pending };
        pending = '';
      } else if (pending !== '' && (event.data.type === 'ping' || pending.length > PENDING_LIMIT)) {
        // Events that make no chunk go on at once all the same: a ping is a keep-alive the client should see now,
        // and an upstream that sends nothing else must not grow what is held here.
        out.push({ text: EMPTY_CHUNK, value: { object: 'chat.completion.chunk', choices: [] }, native: pending });
        pending = '';
      }
      yield* out;
      if (translator.stopped) {
        if (pending !== '') yield { text: EMPTY_CHUNK, value: { object: 'chat.completion.chunk', choices: [] }, native: pending };
        return;
      }
    }
    throw Errors.UPSTREAM_BAD_RESPONSE(this.name, 'the stream ended before message_stop');
  }
}

/** A chunk with nothing in it, to carry native events the translation made no chunk of. */
const EMPTY_CHUNK = '{"object":"chat.completion.chunk","choices":[]}';
/** Native events held for the next chunk, at most (events that make none are otherwise sent on their own). */
const PENDING_LIMIT = 64 * 1024;

/** An SSE event as text again: `event:` and one `data:` line per line of data. */
function frame(e: SseEvent): string {
  const data = e.data.includes('\n') ? e.data.split('\n').map((line) => `data: ${line}`).join('\n') : `data: ${e.data}`;
  return e.event === undefined ? `${data}\n\n` : `event: ${e.event}\n${data}\n\n`;
}

/**
 * An error event as the error its type stands for: the status an answer would have had (for an error that arrives
 * before anything else), and the type kept for the client.
 */
function withErrorType(err: unknown, type: string | undefined, provider: string, message: string | undefined, redact: (s: string) => string): unknown {
  if (typeof type !== 'string' || !(err instanceof HeimdallError)) return err;
  const status = ERROR_STATUS[type] ?? 500;
  const e = Errors.UPSTREAM_STATUS(provider, status, message !== undefined ? redact(message) : type);
  e.statusCode = status;
  e.upstream = { status, type };
  return e;
}

/**
 * The client's request with the upstream model in place of the client's (in its place: key order is kept), as one
 * serialisation of what the gateway parsed. `stream` set forces that field.
 */
export function nativeBody(native: NativeRequest, model: string, stream: boolean | undefined): string {
  const value: JsonObject = { ...native.value, model };
  if (stream !== undefined && (value.stream === true) !== stream) value.stream = stream;
  return JSON.stringify(value);
}
