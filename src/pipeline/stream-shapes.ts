/**
 * Converting between a chat.completion and its chat.completion.chunk stream: assembling the full response from
 * the chunks' parsed values (so PostHook sees a streamed response whole, without parsing any chunk again) and
 * splitting a response into chunks (so a short-circuit or recovered response can be streamed).
 */
import type { Json, JsonObject } from '../plugins/plugin.js';
import { chunkOf, type StreamChunk } from '../providers/provider.js';

interface ChoiceState {
  role: string;
  content: string;
  hasContent: boolean;
  toolCalls: JsonObject[];
  finishReason: Json;
  /** The canonical extensions a stream may carry (docs/abi.md): thinking, refusals, the stop's details. */
  reasoning: string | undefined;
  thinking: JsonObject[];
  /** The thinking block that text is still being added to (closed by its signature, or by a redacted block). */
  openThinking: JsonObject | undefined;
  refusal: string | undefined;
  extra: JsonObject | undefined;
}

/** Choice-level fields of a chunk that the assembled choice keeps (the last one seen wins). */
const CHOICE_EXTRAS = ['stop_sequence', 'stop_reason', 'logprobs'] as const;

export class StreamAssembler {
  private id: Json = null;
  private model: Json = null;
  private created: Json = null;
  private usage: Json | undefined;
  private readonly choices = new Map<number, ChoiceState>();

  /**
   * One chunk's value (a StreamChunk's `value`). Nothing of it is changed; `usage` is kept by reference, other
   * fields are copied into the assembler's own objects.
   */
  add(chunk: JsonObject): void {
    this.id ??= chunk.id ?? null;
    this.model ??= chunk.model ?? null;
    this.created ??= chunk.created ?? null;
    if (chunk.usage !== undefined && chunk.usage !== null) this.usage = chunk.usage;
    if (!Array.isArray(chunk.choices)) return;
    for (const c of chunk.choices) {
      if (!isObject(c)) continue;
      const index = typeof c.index === 'number' ? c.index : 0;
      let state = this.choices.get(index);
      if (state === undefined) {
        state = {
          role: 'assistant',
          content: '',
          hasContent: false,
          toolCalls: [],
          finishReason: null,
          reasoning: undefined,
          thinking: [],
          openThinking: undefined,
          refusal: undefined,
          extra: undefined,
        };
        this.choices.set(index, state);
      }
      const delta = isObject(c.delta) ? c.delta : {};
      if (typeof delta.role === 'string') state.role = delta.role;
      if (typeof delta.content === 'string') {
        state.content += delta.content;
        state.hasContent = true;
      }
      if (Array.isArray(delta.tool_calls)) mergeToolCalls(state.toolCalls, delta.tool_calls);
      const blocks = Array.isArray(delta.thinking_blocks) ? delta.thinking_blocks : undefined;
      if (typeof delta.reasoning_content === 'string') {
        // Whole blocks beside it (a response split into chunks) already hold this text.
        if (blocks?.some((b) => isObject(b) && typeof b.thinking === 'string')) state.reasoning = (state.reasoning ?? '') + delta.reasoning_content;
        else addReasoning(state, delta.reasoning_content);
      }
      if (blocks !== undefined) addThinkingBlocks(state, blocks);
      if (typeof delta.refusal === 'string') state.refusal = (state.refusal ?? '') + delta.refusal;
      if (c.finish_reason !== undefined && c.finish_reason !== null) state.finishReason = c.finish_reason;
      for (const field of CHOICE_EXTRAS) {
        const v = c[field];
        if (v !== undefined && v !== null) (state.extra ??= {})[field] = v;
      }
    }
  }

  response(): JsonObject {
    const choices = [...this.choices.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, s]) => {
        const message: JsonObject = { role: s.role, content: s.hasContent ? s.content : null };
        if (s.toolCalls.length > 0) message.tool_calls = s.toolCalls;
        if (s.refusal !== undefined) message.refusal = s.refusal;
        if (s.reasoning !== undefined) message.reasoning_content = s.reasoning;
        if (s.thinking.length > 0) message.thinking_blocks = s.thinking;
        return { index, message, finish_reason: s.finishReason, ...s.extra };
      });
    const out: JsonObject = { id: this.id, object: 'chat.completion', created: this.created, model: this.model, choices };
    if (this.usage !== undefined) out.usage = this.usage;
    return out;
  }
}

function addReasoning(state: ChoiceState, text: string): void {
  state.reasoning = (state.reasoning ?? '') + text;
  if (state.openThinking === undefined) {
    state.openThinking = { type: 'thinking', thinking: '' };
    state.thinking.push(state.openThinking);
  }
  state.openThinking.thinking = (state.openThinking.thinking as string) + text;
}

/** A signature closes the open thinking block (or is a block of its own); any other block is taken whole. */
function addThinkingBlocks(state: ChoiceState, blocks: Json[]): void {
  for (const b of blocks) {
    if (!isObject(b)) continue;
    if (b.type === 'thinking' && typeof b.signature === 'string' && typeof b.thinking !== 'string') {
      if (state.openThinking !== undefined) state.openThinking.signature = b.signature;
      else state.thinking.push({ type: 'thinking', thinking: '', signature: b.signature });
    } else {
      state.thinking.push({ ...b });
    }
    state.openThinking = undefined;
  }
}

function mergeToolCalls(into: JsonObject[], deltas: Json[]): void {
  for (const d of deltas) {
    if (!isObject(d)) continue;
    const index = typeof d.index === 'number' ? d.index : into.length;
    let call = into[index];
    if (call === undefined) {
      call = { id: d.id ?? null, type: d.type ?? 'function', function: { name: '', arguments: '' } };
      into[index] = call;
    }
    if (typeof d.id === 'string') call.id = d.id;
    const fn = isObject(d.function) ? d.function : {};
    const target = call.function as JsonObject;
    if (typeof fn.name === 'string') target.name = (target.name as string) + fn.name;
    if (typeof fn.arguments === 'string') target.arguments = (target.arguments as string) + fn.arguments;
    if (isObject(d.extra_content)) call.extra_content = d.extra_content;
  }
}

/**
 * A full chat.completion as a chunk stream: a role chunk, one content chunk per choice, a finish chunk (and a
 * usage chunk when the response has usage).
 */
export function responseToChunks(response: JsonObject): StreamChunk[] {
  const base = {
    id: response.id ?? 'chatcmpl-heimdall',
    object: 'chat.completion.chunk',
    created: response.created ?? Math.floor(Date.now() / 1000),
    model: response.model ?? null,
  };
  const choices = Array.isArray(response.choices) ? response.choices.filter(isObject) : [];
  const chunks: StreamChunk[] = [];
  for (const [i, choice] of choices.entries()) {
    const index = typeof choice.index === 'number' ? choice.index : i;
    const message = isObject(choice.message) ? choice.message : {};
    const delta: JsonObject = { role: typeof message.role === 'string' ? message.role : 'assistant' };
    if (typeof message.content === 'string') delta.content = message.content;
    for (const field of ['refusal', 'reasoning_content', 'thinking_blocks'] as const) {
      if (message[field] !== undefined && message[field] !== null) delta[field] = message[field];
    }
    if (Array.isArray(message.tool_calls)) {
      delta.tool_calls = message.tool_calls.map((call, n) => (isObject(call) ? { index: n, ...call } : call));
    }
    chunks.push(chunkOf({ ...base, choices: [{ index, delta, finish_reason: null }] }));
    const finish: JsonObject = { index, delta: {}, finish_reason: choice.finish_reason ?? 'stop' };
    for (const field of CHOICE_EXTRAS) if (choice[field] !== undefined && choice[field] !== null) finish[field] = choice[field];
    chunks.push(chunkOf({ ...base, choices: [finish] }));
  }
  if (response.usage !== undefined) chunks.push(chunkOf({ ...base, choices: [], usage: response.usage }));
  return chunks;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
