/**
 * Anthropic's answers in the OpenAI shape: a Message as a chat.completion, and the Messages stream's events
 * (message_start, content_block_start/delta/stop, message_delta, message_stop, ping, error) as
 * chat.completion.chunk objects, each built as a value and serialised once for the client. Thinking blocks have no
 * OpenAI equivalent and are left out.
 */
import { Errors } from '../../errors.js';
import type { JsonObject } from '../../plugins/plugin.js';
import { nowSeconds } from '../canonical.js';
import { chunkOf, type StreamChunk } from '../provider.js';
import type { Redact } from '../http/redact.js';
import { upstreamMessage } from '../http/status.js';
import { FINISH_REASONS, type Message, type StreamEvent, type Usage } from './wire.js';

export function fromMessage(msg: Message): JsonObject {
  let text = '';
  let hasText = false;
  const toolCalls: JsonObject[] = [];
  for (const b of msg.content) {
    if (b.type === 'text' && typeof b.text === 'string') {
      text += b.text;
      hasText = true;
    } else if (b.type === 'tool_use') {
      toolCalls.push({ id: b.id as string, type: 'function', function: { name: b.name as string, arguments: JSON.stringify(b.input ?? {}) } });
    }
  }
  const message: JsonObject = { role: 'assistant', content: hasText ? text : null };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  const out: JsonObject = {
    id: msg.id,
    object: 'chat.completion',
    created: nowSeconds(),
    model: msg.model,
    choices: [{ index: 0, message, finish_reason: finishReason(msg.stop_reason), logprobs: null }],
  };
  if (msg.usage !== undefined) out.usage = openaiUsage(msg.usage, msg.usage.output_tokens ?? 0);
  return out;
}

/** Cached and cache-writing input tokens are input too; OpenAI counts them in prompt_tokens. */
function openaiUsage(u: Usage, output: number): JsonObject {
  const cached = u.cache_read_input_tokens ?? 0;
  const prompt = (u.input_tokens ?? 0) + cached + (u.cache_creation_input_tokens ?? 0);
  return { prompt_tokens: prompt, completion_tokens: output, total_tokens: prompt + output, prompt_tokens_details: { cached_tokens: cached } };
}

function finishReason(stop: string | null | undefined): string | null {
  if (stop === null || stop === undefined) return null;
  return FINISH_REASONS[stop] ?? 'stop';
}

/** One Messages stream's events in, chunks out. */
export class StreamTranslator {
  private id = 'msg';
  private model = '';
  private readonly created = nowSeconds();
  private inputUsage: Usage = {};
  /** Content-block index -> OpenAI tool_calls index, for tool_use blocks. */
  private readonly toolIndex = new Map<number, number>();
  stopped = false;

  constructor(
    private readonly provider: string,
    private readonly redact: Redact,
  ) {}

  translate(event: StreamEvent): StreamChunk[] {
    switch (event.type) {
      case 'message_start':
        this.id = event.message.id;
        this.model = event.message.model;
        this.inputUsage = event.message.usage ?? {};
        return [this.chunk({ role: 'assistant', content: '' })];
      case 'content_block_start': {
        const b = event.content_block;
        if (b.type !== 'tool_use') return [];
        const index = this.toolIndex.size;
        this.toolIndex.set(event.index, index);
        return [this.chunk({ tool_calls: [{ index, id: b.id as string, type: 'function', function: { name: b.name as string, arguments: '' } }] })];
      }
      case 'content_block_delta': {
        const d = event.delta;
        if (d.type === 'text_delta') return [this.chunk({ content: d.text as string })];
        if (d.type === 'input_json_delta') {
          const index = this.toolIndex.get(event.index);
          if (index === undefined) return [];
          return [this.chunk({ tool_calls: [{ index, function: { arguments: d.partial_json as string } }] })];
        }
        return []; // thinking, signatures, citations
      }
      case 'message_delta': {
        const usage = openaiUsage({ ...this.inputUsage, ...dropNulls(event.usage) }, event.usage?.output_tokens ?? 0);
        return [this.chunk({}, finishReason(event.delta.stop_reason) ?? 'stop', usage)];
      }
      case 'message_stop':
        this.stopped = true;
        return [];
      case 'error':
        throw Errors.UPSTREAM_STATUS(
          this.provider,
          200,
          event.error.message !== undefined ? this.redact(event.error.message) : upstreamMessage(JSON.stringify(event), this.redact),
        );
      default:
        return []; // ping, content_block_stop
    }
  }

  private chunk(delta: JsonObject, finish: string | null = null, usage?: JsonObject): StreamChunk {
    const c: JsonObject = {
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    };
    if (usage !== undefined) c.usage = usage;
    return chunkOf(c);
  }
}

/** message_delta's usage repeats only what changed; its nulls must not erase message_start's counts. */
function dropNulls(u: Usage | undefined): Usage {
  return Object.fromEntries(Object.entries(u ?? {}).filter(([, v]) => v !== null && v !== undefined));
}
