/**
 * The Gemini API (`{base_url}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
 * `:batchEmbedContents`; the key in `x-goog-api-key`), translated to and from the OpenAI shape by request.ts and
 * response.ts.
 */
import type { GeminiProviderConfig } from '../../config/schema.js';
import { Errors, type HeimdallError } from '../../errors.js';
import { assertJsonDepth } from '../../json-depth.js';
import { Payload } from '../../payload.js';
import type { z } from 'zod';
import { UpstreamClient, type BuildRequest } from '../http/client.js';
import { basePath, upstreamSettings } from '../http/settings.js';
import type { SseEvent } from '../http/sse.js';
import { preview, statusError } from '../http/status.js';
import type { JsonObject } from '../../plugins/plugin.js';
import { leaveOut } from '../canonical.js';
import type { ChatCall, EmbeddingsCall, KeyState, Provider, ProviderCall, StreamChunk } from '../provider.js';
import { toBatchEmbedRequest, toGenerateContentRequest } from './request.js';
import { fromBatchEmbed, fromResponse, StreamTranslator } from './response.js';
import { batchEmbedResponse, generateContentResponse } from './wire.js';

export function createGeminiProvider(name: string, config: GeminiProviderConfig): Provider {
  return new GeminiProvider(name, config);
}

class GeminiProvider implements Provider {
  readonly models: readonly string[] | undefined;
  private readonly client: UpstreamClient;
  private readonly root: string;
  private readonly dropUnsupported: boolean;

  constructor(
    readonly name: string,
    config: GeminiProviderConfig,
  ) {
    const url = new URL(config.base_url);
    this.models = config.models;
    this.dropUnsupported = config.drop_unsupported;
    this.root = basePath(url);
    this.client = new UpstreamClient(upstreamSettings(name, config, url.origin));
  }

  async chat(call: ChatCall): Promise<Payload> {
    const body = await this.client.json(call, this.build(call, 'generateContent', this.translate(call)));
    return Payload.fromValue(fromResponse(this.parse(body, generateContentResponse), call.model));
  }

  async stream(call: ChatCall): Promise<AsyncIterable<StreamChunk>> {
    const events = await this.client.stream(call, this.build(call, 'streamGenerateContent?alt=sse', this.translate(call)));
    return this.chunks(events, call.model);
  }

  async embeddings(call: EmbeddingsCall): Promise<Payload> {
    const request = call.request.value();
    const body = await this.client.json(call, this.build(call, 'batchEmbedContents', toBatchEmbedRequest(request, call.model, this.name)));
    return Payload.fromValue(fromBatchEmbed(this.parse(body, batchEmbedResponse).embeddings, request, call.model));
  }

  keyStates(): KeyState[] {
    return this.client.keyStates();
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /** Fields Gemini can't express are refused, or with drop_unsupported left out and listed in call.meta. */
  private translate(call: ChatCall): JsonObject {
    return toGenerateContentRequest(call.request.value(), { model: call.model, leaveOut: leaveOut(this.name, this.dropUnsupported, call.meta) });
  }

  /** Translated once per call: retries and key rotation resend the same body. */
  private build(call: ProviderCall, method: string, request: object): BuildRequest {
    const path = `${this.root}/models/${encodeURI(call.model)}:${method}`;
    const body = JSON.stringify(request);
    return (key) => {
      const headers: Record<string, string> = key === undefined ? {} : { 'x-goog-api-key': key };
      return { path, headers, body };
    };
  }

  private parse<T extends z.ZodType>(body: Buffer | string, schema: T): z.infer<T> {
    assertJsonDepth(body, `provider ${this.name}`);
    let value: unknown;
    try {
      value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
    } catch (err) {
      throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `${(err as Error).message}: ${preview(body, this.client.redact)}`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `unexpected shape: ${preview(body, this.client.redact)}`);
    return parsed.data;
  }

  /**
   * An error sent as a stream event: as the answer it would have been (its status from the error's `code`, 502
   * without one), so one that arrives before anything else is answered with it, and its status name is kept.
   */
  private streamedError(data: string): HeimdallError {
    const status = /"code"\s*:\s*(\d{3})\b/.exec(data)?.[1];
    return statusError(this.name, status !== undefined ? Number(status) : 502, Buffer.from(data), this.client.redact);
  }

  private async *chunks(events: AsyncIterable<SseEvent>, model: string): AsyncGenerator<StreamChunk> {
    const translator = new StreamTranslator(model);
    for await (const { data } of events) {
      if (data.includes('"error"') && /^\s*[[{]\s*"error"/.test(data)) throw this.streamedError(data);
      yield* translator.translate(this.parse(data, generateContentResponse));
    }
    // Gemini's stream has no end marker: an answer that never finished was cut off.
    if (!translator.finished) throw Errors.UPSTREAM_BAD_RESPONSE(this.name, 'the stream ended before a finishReason');
  }
}
