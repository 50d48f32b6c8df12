/**
 * OpenAI chat-completions wire format, for OpenAI itself and every compatible server (Groq, Together, Mistral,
 * vLLM, Ollama...) through base_url.
 */
import { createParser } from 'eventsource-parser';
import { Pool, errors as undiciErrors } from 'undici';
import type { Dispatcher } from 'undici';
import { Errors, HeimdallError } from '../errors.js';
import { Payload } from '../payload.js';
import type { OpenAIProviderConfig } from '../config/schema.js';
import type { ChatCall, Provider } from './provider.js';

export class OpenAIProvider implements Provider {
  readonly models: readonly string[] | undefined;
  private readonly pool: Pool;
  private readonly path: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  /** `config` has its env references resolved already. */
  constructor(
    readonly name: string,
    config: OpenAIProviderConfig,
  ) {
    const url = new URL(config.base_url);
    this.path = `${url.pathname.replace(/\/+$/, '')}/chat/completions`;
    this.models = config.models;
    this.timeoutMs = config.timeout_ms;
    this.headers = { 'content-type': 'application/json', ...lowerCaseKeys(config.headers) };
    if (config.api_key) this.headers.authorization = `Bearer ${config.api_key}`;
    this.pool = new Pool(url.origin, {
      connections: config.connections,
      headersTimeout: config.timeout_ms,
      bodyTimeout: config.timeout_ms,
    });
  }

  async chat(call: ChatCall): Promise<Payload> {
    const res = await this.send(call, false);
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode < 200 || res.statusCode > 299) throw this.statusError(res.statusCode, body);
    const payload = Payload.fromBytes(body);
    try {
      payload.value(); // validate now: a broken upstream answer is the upstream's error, not a plugin's
    } catch (err) {
      throw Errors.UPSTREAM_BAD_RESPONSE(this.name, `${(err as Error).message}: ${preview(body)}`);
    }
    return payload;
  }

  async stream(call: ChatCall): Promise<AsyncIterable<string>> {
    const res = await this.send(call, true);
    if (res.statusCode < 200 || res.statusCode > 299) {
      throw this.statusError(res.statusCode, Buffer.from(await res.body.arrayBuffer()));
    }
    return this.events(res.body);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  private async *events(body: Dispatcher.ResponseData['body']): AsyncIterable<string> {
    const queue: string[] = [];
    let done = false;
    const parser = createParser({
      onEvent: (event) => {
        if (event.data === '[DONE]') done = true;
        else if (!done) queue.push(event.data);
      },
    });
    try {
      for await (const piece of body) {
        parser.feed(typeof piece === 'string' ? piece : (piece as Buffer).toString('utf8'));
        while (queue.length > 0) {
          const data = queue.shift() as string;
          if (data.startsWith('{"error"') || data.startsWith('{ "error"')) throw this.streamedError(data);
          yield data;
        }
        if (done) return;
      }
    } catch (err) {
      throw this.toHeimdallError(err);
    } finally {
      if (!body.destroyed) body.destroy();
    }
    throw Errors.UPSTREAM_BAD_RESPONSE(this.name, 'the stream ended without "data: [DONE]"');
  }

  private async send(call: ChatCall, stream: boolean): Promise<Dispatcher.ResponseData> {
    try {
      return await this.pool.request({
        method: 'POST',
        path: this.path,
        headers: this.headers,
        body: upstreamBody(call, stream),
        signal: call.signal,
      });
    } catch (err) {
      throw this.toHeimdallError(err);
    }
  }

  private toHeimdallError(err: unknown): HeimdallError {
    if (err instanceof HeimdallError) return err;
    if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
      return Errors.UPSTREAM_TIMEOUT(this.name, this.timeoutMs);
    }
    const e = err as NodeJS.ErrnoException;
    return Errors.UPSTREAM_CONNECT(this.name, e.code ? `${e.code} ${e.message}` : String(e.message ?? err));
  }

  private statusError(status: number, body: Buffer): HeimdallError {
    const message = upstreamMessage(body);
    return status === 429
      ? Errors.UPSTREAM_RATE_LIMIT(this.name, message)
      : Errors.UPSTREAM_STATUS(this.name, status, message);
  }

  private streamedError(data: string): HeimdallError {
    return Errors.UPSTREAM_STATUS(this.name, 200, upstreamMessage(Buffer.from(data)));
  }
}

/**
 * The upstream body: the client's bytes when nothing changed them, with only the model name swapped. The swap is
 * safe when the gateway's model name occurs exactly once as a JSON string, since that occurrence must be the
 * "model" value; otherwise (or when "stream" needs forcing) the request is serialised.
 */
export function upstreamBody(call: ChatCall, stream: boolean): Buffer | string {
  const request = call.request.value();
  if (call.unchanged && (request.stream === true) === stream) {
    const raw = call.request.bytes();
    const token = JSON.stringify(request.model);
    const at = raw.indexOf(token);
    if (at !== -1 && raw.indexOf(token, at + token.length) === -1) {
      return Buffer.concat([raw.subarray(0, at), Buffer.from(JSON.stringify(call.model)), raw.subarray(at + Buffer.byteLength(token))]);
    }
  }
  return JSON.stringify({ ...request, model: call.model, stream });
}

function upstreamMessage(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: { message?: unknown } | string; message?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
    if (typeof parsed.error?.message === 'string') return parsed.error.message;
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON: show it as text
  }
  return preview(body) || '(empty body)';
}

function preview(body: Buffer): string {
  const text = body.subarray(0, 300).toString('utf8');
  return body.length > 300 ? `${text}...` : text;
}

function lowerCaseKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k.toLowerCase(), v]));
}
