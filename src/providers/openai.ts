/**
 * The OpenAI wire format: chat completions (plain and streamed) and embeddings, for OpenAI itself, every
 * OpenAI-compatible server (Groq, Mistral, Together, DeepSeek, OpenRouter, Ollama, vLLM...) and, with its own
 * paths and key header, Azure OpenAI (azure.ts). Requests already are OpenAI-shaped, so the client's bytes go
 * upstream as they came whenever that is possible, and a streamed chunk goes to the client as the upstream's own
 * `data` text, parsed once here (to see errors and the finish) into the value the rest of the gateway reads.
 */
import { Errors, type HeimdallError } from '../errors.js';
import { assertJsonDepth } from '../json-depth.js';
import { Payload } from '../payload.js';
import type { JsonObject } from '../plugins/plugin.js';
import { UpstreamClient, type BuildRequest, type UpstreamSettings } from './http/client.js';
import type { SseEvent } from './http/sse.js';
import { preview, upstreamMessage } from './http/status.js';
import type { ChatCall, EmbeddingsCall, KeyState, Provider, ProviderCall, StreamChunk } from './provider.js';
import { leaveOut, type LeaveOut } from './canonical.js';
import { fromNativeExtensions } from './openai-from-native.js';

/** Where a dialect of the OpenAI format puts its operations and its key. */
export interface OpenAIDialect {
  path(operation: 'chat/completions' | 'embeddings', model: string): string;
  auth(key: string): Record<string, string>;
}

/** Fields of the gateway's own that the upstream never sees. */
const GATEWAY_FIELDS = ['fallbacks'] as const;

export class OpenAIProvider implements Provider {
  private readonly client: UpstreamClient;
  private readonly dropUnsupported: boolean;

  constructor(
    readonly name: string,
    readonly models: readonly string[] | undefined,
    settings: UpstreamSettings,
    private readonly dialect: OpenAIDialect,
  ) {
    this.client = new UpstreamClient(settings);
    this.dropUnsupported = settings.dropUnsupported;
  }

  /** OpenAI's own dialect: `{base_url}/chat/completions`, `Authorization: Bearer KEY`. */
  static bearer(basePath: string): OpenAIDialect {
    return {
      path: (operation) => `${basePath}/${operation}`,
      auth: (key) => ({ authorization: `Bearer ${key}` }),
    };
  }

  async chat(call: ChatCall): Promise<Payload> {
    const body = await this.client.json(call, this.build(call, 'chat/completions', false));
    return this.parse(body);
  }

  async stream(call: ChatCall): Promise<AsyncIterable<StreamChunk>> {
    const events = await this.client.stream(call, this.build(call, 'chat/completions', true));
    return this.chunks(events);
  }

  async embeddings(call: EmbeddingsCall): Promise<Payload> {
    const body = await this.client.json(call, this.build(call, 'embeddings', undefined));
    return this.parse(body);
  }

  keyStates(): KeyState[] {
    return this.client.keyStates();
  }

  close(): Promise<void> {
    return this.client.close();
  }

  private build(call: ProviderCall, operation: 'chat/completions' | 'embeddings', stream: boolean | undefined): BuildRequest {
    const path = this.dialect.path(operation, call.model);
    // Only a drop-in route's request can carry fields the OpenAI format lacks: the policy is built for those alone.
    const body = upstreamBody(call, stream, call.native === undefined ? undefined : leaveOut(this.name, this.dropUnsupported, call.meta));
    return (key) => ({ path, headers: key === undefined ? {} : this.dialect.auth(key), body });
  }

  private parse(body: Buffer): Payload {
    assertJsonDepth(body, `provider ${this.name}`);
    const payload = Payload.fromBytes(body);
    try {
      payload.value(); // validate now: a broken upstream answer is the upstream's error, not a plugin's
    } catch (err) {
      throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `${(err as Error).message}: ${preview(body, this.client.redact)}`);
    }
    return payload;
  }

  /** Each `data` parsed once; the text the client is sent stays the upstream's own. */
  private async *chunks(events: AsyncIterable<SseEvent>): AsyncGenerator<StreamChunk> {
    let finished = false;
    for await (const { data } of events) {
      if (data === '[DONE]') return;
      assertJsonDepth(data, `provider ${this.name}`);
      let value: unknown;
      try {
        value = JSON.parse(data);
      } catch (err) {
        throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `a stream chunk is not JSON (${(err as Error).message}): ${preview(data, this.client.redact)}`);
      }
      if (!isObject(value)) throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `a stream chunk is not a JSON object: ${preview(data, this.client.redact)}`);
      if (value.error !== undefined) throw this.streamedError(data);
      if (!finished && Array.isArray(value.choices)) {
        finished = value.choices.some((c) => isObject(c) && c.finish_reason !== null && c.finish_reason !== undefined);
      }
      yield { text: data, value };
    }
    // Some compatible servers end without [DONE] once the answer is finished; before that, the stream was cut.
    if (!finished) throw Errors.UPSTREAM_BAD_RESPONSE(this.name, 'the stream ended without "data: [DONE]"');
  }

  private streamedError(data: string): HeimdallError {
    return Errors.UPSTREAM_STATUS(this.name, 200, upstreamMessage(data, this.client.redact));
  }
}

/**
 * The upstream body: the client's bytes when nothing changed them, with only the model name swapped. The swap is
 * safe when the gateway's model name occurs exactly once as a JSON string, since that occurrence must be the
 * "model" value; otherwise (or when "stream" needs forcing, or a gateway field must go) the request is serialised.
 * `stream` undefined leaves the field as it is (embeddings have none). With `leave` (a drop-in route's request), the
 * fields the OpenAI format lacks are handed to it first (openai-from-native.ts).
 */
export function upstreamBody(call: ProviderCall, stream: boolean | undefined, leave?: LeaveOut): Buffer | string {
  if (leave !== undefined) return JSON.stringify(outOf(fromNativeExtensions(call.request.value(), leave, stream), call.model, stream));
  const request = call.request.value();
  const gatewayFields = GATEWAY_FIELDS.some((f) => request[f] !== undefined);
  if (call.unchanged && !gatewayFields && (stream === undefined || (request.stream === true) === stream)) {
    const raw = call.request.bytes();
    const token = JSON.stringify(request.model);
    const at = raw.indexOf(token);
    if (at !== -1 && raw.indexOf(token, at + token.length) === -1) {
      return Buffer.concat([raw.subarray(0, at), Buffer.from(JSON.stringify(call.model)), raw.subarray(at + Buffer.byteLength(token))]);
    }
  }
  return JSON.stringify(outOf(request, call.model, stream));
}

function outOf(request: JsonObject, model: string, stream: boolean | undefined): JsonObject {
  const out: JsonObject = { ...request, model };
  for (const f of GATEWAY_FIELDS) delete out[f];
  if (stream !== undefined) out.stream = stream;
  return out;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
