/**
 * Anthropic's answers in the OpenAI shape: a Message as a chat.completion, and the Messages stream's events
 * (message_start, content_block_start/delta/stop, message_delta, message_stop, ping, error) as
 * chat.completion.chunk objects, each built as a value and serialised once for the client. What OpenAI has no word
 * for travels as canonical extensions (docs/abi.md): thinking as `reasoning_content` and `thinking_blocks`, the
 * matched stop sequence as `stop_sequence`, cache writes as `prompt_tokens_details.cache_creation_tokens`.
 */
import { Errors } from '../../errors.js';
import type { JsonObject } from '../../plugins/plugin.js';
import { nowSeconds } from '../canonical.js';
import { chunkOf, type StreamChunk } from '../provider.js';
import type { Redact } from '../http/redact.js';
import { upstreamMessage } from '../http/status.js';
import { FINISH_REASONS, JSON_OUTPUT_TOOL, STOP_REASONS, type Message, type StreamEvent, type Usage } from './wire.js';

export function fromMessage(msg: Message): JsonObject {
  let text = '';
  let hasText = false;
  let reasoning: string | undefined;
  let jsonOutput = false;
  const thinking: JsonObject[] = [];
  const toolCalls: JsonObject[] = [];
  for (const b of msg.content) {
    if (b.type === 'text' && typeof b.text === 'string') {
      text += b.text;
      hasText = true;
    } else if (b.type === 'thinking' || b.type === 'redacted_thinking') {
      thinking.push(b as JsonObject);
      if (typeof b.thinking === 'string') reasoning = (reasoning ?? '') + b.thinking;
    } else if (b.type === 'tool_use' && b.name === JSON_OUTPUT_TOOL) {
      // response_format's stand-in tool (request.ts): its input is the answer.
      text += JSON.stringify(b.input ?? {});
      hasText = true;
      jsonOutput = true;
    } else if (b.type === 'tool_use') {
      toolCalls.push({ id: b.id as string, type: 'function', function: { name: b.name as string, arguments: JSON.stringify(b.input ?? {}) } });
    }
  }
  const message: JsonObject = { role: 'assistant', content: hasText ? text : null };
  if (reasoning !== undefined) message.reasoning_content = reasoning;
  if (thinking.length > 0) message.thinking_blocks = thinking;
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  const stop = jsonOutput && toolCalls.length === 0 && msg.stop_reason === 'tool_use' ? 'end_turn' : msg.stop_reason;
  const choice: JsonObject = { index: 0, message, ...stopFields(stop, msg.stop_sequence), logprobs: null };
  const out: JsonObject = {
    id: msg.id,
    object: 'chat.completion',
    created: nowSeconds(),
    model: msg.model,
    choices: [choice],
  };
  if (msg.usage !== undefined) out.usage = openaiUsage(msg.usage);
  return out;
}

/**
 * Cached and cache-writing input tokens are input too; OpenAI counts them in prompt_tokens. Cache reads are its
 * cached_tokens; cache writes have no OpenAI name, and are cache_creation_tokens beside it.
 */
function openaiUsage(u: Usage): JsonObject {
  const cached = u.cache_read_input_tokens ?? 0;
  const created = u.cache_creation_input_tokens ?? 0;
  const prompt = (u.input_tokens ?? 0) + cached + created;
  const output = u.output_tokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: output,
    total_tokens: prompt + output,
    prompt_tokens_details: { cached_tokens: cached, cache_creation_tokens: created },
  };
}

/**
 * A stop reason as finish_reason, with what finish_reason can't say: the matched stop sequence, and Anthropic's
 * own reason when it is not the one finish_reason maps back to (pause_turn, model_context_window_exceeded).
 */
function stopFields(stop: string | null | undefined, sequence: string | null | undefined): JsonObject {
  if (stop === null || stop === undefined) return { finish_reason: null };
  const finish = FINISH_REASONS[stop] ?? 'stop';
  const out: JsonObject = { finish_reason: finish };
  if (stop === 'stop_sequence') {
    if (typeof sequence === 'string') out.stop_sequence = sequence;
  } else if (STOP_REASONS[finish] !== stop) {
    out.stop_reason = stop;
  }
  return out;
}

/** One Messages stream's events in, chunks out. */
export class StreamTranslator {
  private id = 'msg';
  private model = '';
  private readonly created = nowSeconds();
  private usage: Usage = {};
  /** Content-block index -> OpenAI tool_calls index, for tool_use blocks. */
  private readonly toolIndex = new Map<number, number>();
  /** Content blocks of response_format's stand-in tool: their input is message text. */
  private readonly jsonBlocks = new Set<number>();
  stopped = false;

  constructor(
    private readonly provider: string,
    private readonly redact: Redact,
  ) {}

  translate(event: StreamEvent): StreamChunk[] {
    switch (event.type) {
      case 'message_start': {
        this.id = event.message.id;
        this.model = event.message.model;
        this.usage = dropNulls(event.message.usage);
        // The input usage is known now; an Anthropic client's message_start needs it (inbound.ts).
        const usage = event.message.usage === undefined ? undefined : openaiUsage(this.usage);
        return [this.chunk({ role: 'assistant', content: '' }, {}, usage)];
      }
      case 'content_block_start':
        return this.blockStart(event.index, event.content_block);
      case 'content_block_delta': {
        const d = event.delta;
        if (d.type === 'text_delta' && typeof d.text === 'string') return [this.chunk({ content: d.text })];
        if (d.type === 'thinking_delta' && typeof d.thinking === 'string') return [this.chunk({ reasoning_content: d.thinking })];
        if (d.type === 'signature_delta' && typeof d.signature === 'string') {
          return [this.chunk({ thinking_blocks: [{ type: 'thinking', signature: d.signature }] })];
        }
        if (d.type === 'input_json_delta' && typeof d.partial_json === 'string') {
          if (this.jsonBlocks.has(event.index)) return [this.chunk({ content: d.partial_json })];
          const index = this.toolIndex.get(event.index);
          if (index === undefined) return [];
          return [this.chunk({ tool_calls: [{ index, function: { arguments: d.partial_json } }] })];
        }
        return []; // citations, server tools' deltas
      }
      case 'message_delta': {
        this.usage = { ...this.usage, ...dropNulls(event.usage) };
        let stop = event.delta.stop_reason;
        if (stop === 'tool_use' && this.jsonBlocks.size > 0 && this.toolIndex.size === 0) stop = 'end_turn';
        const fields = stopFields(stop ?? 'end_turn', event.delta.stop_sequence);
        const { finish_reason: finish, ...extra } = fields;
        return [this.chunk({}, extra, undefined, finish as string)];
      }
      case 'message_stop':
        // The last chunk: no choices, the whole usage (OpenAI's include_usage shape).
        this.stopped = true;
        return [chunkOf({ id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: openaiUsage(this.usage) })];
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

  private blockStart(index: number, b: StreamEvent & { type: 'content_block_start' } extends { content_block: infer B } ? B : never): StreamChunk[] {
    switch (b.type) {
      case 'tool_use': {
        if (b.name === JSON_OUTPUT_TOOL) {
          this.jsonBlocks.add(index);
          return [];
        }
        const n = this.toolIndex.size;
        this.toolIndex.set(index, n);
        return [this.chunk({ tool_calls: [{ index: n, id: b.id as string, type: 'function', function: { name: b.name as string, arguments: '' } }] })];
      }
      case 'text':
        return typeof b.text === 'string' && b.text !== '' ? [this.chunk({ content: b.text })] : [];
      case 'thinking': {
        const out: StreamChunk[] = [];
        if (typeof b.thinking === 'string' && b.thinking !== '') out.push(this.chunk({ reasoning_content: b.thinking }));
        if (typeof b.signature === 'string' && b.signature !== '') out.push(this.chunk({ thinking_blocks: [{ type: 'thinking', signature: b.signature }] }));
        return out;
      }
      case 'redacted_thinking':
        return [this.chunk({ thinking_blocks: [{ type: 'redacted_thinking', data: b.data as string }] })];
      default:
        return []; // server tool blocks have no OpenAI equivalent
    }
  }

  private chunk(delta: JsonObject, choiceExtra: JsonObject = {}, usage?: JsonObject, finish: string | null = null): StreamChunk {
    const c: JsonObject = {
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.model,
      choices: [{ index: 0, delta, finish_reason: finish, ...choiceExtra }],
    };
    if (usage !== undefined) c.usage = usage;
    return chunkOf(c);
  }
}

/** message_delta's usage repeats only what changed; its nulls must not erase message_start's counts. */
function dropNulls(u: Usage | undefined): Usage {
  return Object.fromEntries(Object.entries(u ?? {}).filter(([, v]) => v !== null && v !== undefined));
}
