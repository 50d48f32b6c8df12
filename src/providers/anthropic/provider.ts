/**
 * The Anthropic Messages API (`POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version`), translated to and
 * from the OpenAI chat shape by request.ts and response.ts.
 */
import type { AnthropicProviderConfig } from '../../config/schema.js';
import { Errors } from '../../errors.js';
import { assertJsonDepth } from '../../json-depth.js';
import { Payload } from '../../payload.js';
import { UpstreamClient, type BuildRequest } from '../http/client.js';
import { basePath, upstreamSettings } from '../http/settings.js';
import type { SseEvent } from '../http/sse.js';
import { preview } from '../http/status.js';
import type { ChatCall, Provider, StreamChunk } from '../provider.js';
import { unsupported } from '../unsupported.js';
import { toMessagesRequest } from './request.js';
import { fromMessage, StreamTranslator } from './response.js';
import { message, streamEvent } from './wire.js';

export function createAnthropicProvider(name: string, config: AnthropicProviderConfig): Provider {
  return new AnthropicProvider(name, config);
}

class AnthropicProvider implements Provider {
  readonly models: readonly string[] | undefined;
  private readonly client: UpstreamClient;
  private readonly path: string;

  constructor(
    readonly name: string,
    private readonly config: AnthropicProviderConfig,
  ) {
    const url = new URL(config.base_url);
    this.models = config.models;
    this.path = `${basePath(url)}/v1/messages`;
    this.client = new UpstreamClient(upstreamSettings(name, config, url.origin));
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
    return Payload.fromValue(fromMessage(msg.data));
  }

  async stream(call: ChatCall): Promise<AsyncIterable<StreamChunk>> {
    const events = await this.client.stream(call, this.build(call, true));
    return this.chunks(events);
  }

  embeddings(): Promise<Payload> {
    return unsupported(this.name, 'embeddings (the Anthropic API has none)');
  }

  close(): Promise<void> {
    return this.client.close();
  }

  private build(call: ChatCall, stream: boolean): BuildRequest {
    // Translated once per call: retries and key rotation resend the same body.
    const body = JSON.stringify(toMessagesRequest(call.request.value(), call.model, this.config.default_max_tokens, stream, this.name));
    return (key) => ({
      path: this.path,
      headers: { 'anthropic-version': this.config.anthropic_version, ...(key === undefined ? {} : { 'x-api-key': key }) },
      body,
    });
  }

  private async *chunks(events: AsyncIterable<SseEvent>): AsyncGenerator<StreamChunk> {
    const translator = new StreamTranslator(this.name, this.client.redact);
    for await (const { data } of events) {
      assertJsonDepth(data, `provider ${this.name}`);
      let value: unknown;
      try {
        value = JSON.parse(data);
      } catch (err) {
        throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `a stream event is not JSON (${(err as Error).message}): ${preview(data, this.client.redact)}`);
      }
      const event = streamEvent.safeParse(value);
      if (!event.success) continue; // an event type this gateway does not know yet
      yield* translator.translate(event.data);
      if (translator.stopped) return;
    }
    throw Errors.UPSTREAM_BAD_RESPONSE(this.name, 'the stream ended before message_stop');
  }
}
