/**
 * A built-in provider with deterministic answers and no network, so the gateway runs offline (the default
 * config.json uses it) and plugins can be tried without an API key.
 */
import { sleep } from '../cancel.js';
import type { MockProviderConfig } from '../config/schema.js';
import { Payload } from '../payload.js';
import type { JsonObject } from '../plugins/plugin.js';
import { embeddingValue } from './canonical.js';
import { chunkOf, type ChatCall, type EmbeddingsCall, type Provider, type StreamChunk } from './provider.js';

export class MockProvider implements Provider {
  readonly models: readonly string[] | undefined;
  private readonly latencyMs: number;
  private seq = 0;

  constructor(
    readonly name: string,
    config: MockProviderConfig,
  ) {
    this.models = config.models;
    this.latencyMs = config.latency_ms;
  }

  async chat(call: ChatCall): Promise<Payload> {
    if (this.latencyMs > 0) await sleep(this.latencyMs, call.signal);
    const { content, usage } = this.answer(call);
    return Payload.fromValue({
      id: this.nextId(),
      object: 'chat.completion',
      created: nowSeconds(),
      model: call.model,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage,
    });
  }

  async stream(call: ChatCall): Promise<AsyncIterable<StreamChunk>> {
    const { content, usage } = this.answer(call);
    const id = this.nextId();
    const created = nowSeconds();
    const latency = this.latencyMs;
    const chunk = (delta: JsonObject, finish: string | null, extra: JsonObject = {}): StreamChunk =>
      chunkOf({
        id, object: 'chat.completion.chunk', created, model: call.model,
        choices: [{ index: 0, delta, finish_reason: finish }], ...extra,
      });
    // Words keep their trailing space, so the chunks concatenate back to the exact content.
    const pieces = content.match(/\S+\s*/g) ?? [];
    return (async function* () {
      yield chunk({ role: 'assistant', content: '' }, null);
      for (const piece of pieces) {
        if (latency > 0) await sleep(latency, call.signal);
        yield chunk({ content: piece }, null);
      }
      yield chunk({}, 'stop', { usage });
    })();
  }

  /** Deterministic 8-dimensional unit vectors derived from each input's text, so equal inputs embed equally. */
  async embeddings(call: EmbeddingsCall): Promise<Payload> {
    const request = call.request.value();
    const inputs = Array.isArray(request.input) ? request.input : [request.input];
    const data = inputs.map((item, index) => ({ object: 'embedding', index, embedding: embeddingValue(pseudoVector(JSON.stringify(item ?? '')), request) }));
    const tokens = inputs.reduce<number>((n, item) => n + countWords(typeof item === 'string' ? item : ''), 0);
    return Payload.fromValue({ object: 'list', data, model: call.model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  }

  async close(): Promise<void> {}

  private answer(call: ChatCall): { content: string; usage: JsonObject } {
    const request = call.request.value();
    const messages = Array.isArray(request.messages) ? request.messages : [];
    const last = [...messages].reverse().find((m) => isObject(m) && m.role === 'user');
    const said = isObject(last) ? textOf(last.content) : '';
    // Saying what the system prompt was makes a prompt-changing plugin's effect visible without a real model.
    const system = messages.filter((m) => isObject(m) && m.role === 'system').map((m) => textOf((m as JsonObject).content));
    const content = `Mock reply from ${call.model}. You said: ${said}` + (system.length ? ` (system prompt: ${system.join(' / ')})` : '');
    const promptTokens = messages.reduce<number>((n, m) => n + (isObject(m) ? countWords(textOf(m.content)) : 0), 0);
    const completionTokens = countWords(content);
    return {
      content,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    };
  }

  private nextId(): string {
    this.seq += 1;
    return `chatcmpl-mock-${this.seq}`;
  }
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (isObject(part) && typeof part.text === 'string' ? part.text : ''))
      .filter(Boolean)
      .join(' ');
  }
  return '';
}

function pseudoVector(text: string): number[] {
  const v = Array.from({ length: 8 }, (_, i) => {
    let h = 2166136261 ^ i;
    for (let c = 0; c < text.length; c++) h = Math.imul(h ^ text.charCodeAt(c), 16777619);
    return ((h >>> 0) / 0xffffffff) * 2 - 1;
  });
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
}

function countWords(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
