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
}

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
        state = { role: 'assistant', content: '', hasContent: false, toolCalls: [], finishReason: null };
        this.choices.set(index, state);
      }
      const delta = isObject(c.delta) ? c.delta : {};
      if (typeof delta.role === 'string') state.role = delta.role;
      if (typeof delta.content === 'string') {
        state.content += delta.content;
        state.hasContent = true;
      }
      if (Array.isArray(delta.tool_calls)) mergeToolCalls(state.toolCalls, delta.tool_calls);
      if (c.finish_reason !== undefined && c.finish_reason !== null) state.finishReason = c.finish_reason;
    }
  }

  response(): JsonObject {
    const choices = [...this.choices.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, s]) => {
        const message: JsonObject = { role: s.role, content: s.hasContent ? s.content : null };
        if (s.toolCalls.length > 0) message.tool_calls = s.toolCalls;
        return { index, message, finish_reason: s.finishReason };
      });
    const out: JsonObject = { id: this.id, object: 'chat.completion', created: this.created, model: this.model, choices };
    if (this.usage !== undefined) out.usage = this.usage;
    return out;
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
    if (Array.isArray(message.tool_calls)) {
      delta.tool_calls = message.tool_calls.map((call, n) => (isObject(call) ? { index: n, ...call } : call));
    }
    chunks.push(chunkOf({ ...base, choices: [{ index, delta, finish_reason: null }] }));
    chunks.push(chunkOf({ ...base, choices: [{ index, delta: {}, finish_reason: choice.finish_reason ?? 'stop' }] }));
  }
  if (response.usage !== undefined) chunks.push(chunkOf({ ...base, choices: [], usage: response.usage }));
  return chunks;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
