/**
 * Gemini's answers in the OpenAI shape: a GenerateContentResponse as a chat.completion (one choice per candidate),
 * each streamed GenerateContentResponse as a chat.completion.chunk (built as a value, serialised once for the
 * client), and batchEmbedContents as an embeddings list.
 * Gemini gives function calls no ids (or only sometimes): they get "call_<n>" ids, unique within the answer.
 */
import type { JsonObject } from '../../plugins/plugin.js';
import { embeddingValue, nowSeconds } from '../canonical.js';
import { chunkOf, type StreamChunk } from '../provider.js';
import { FINISH_REASONS, type Candidate, type GenerateContentResponse, type UsageMetadata } from './wire.js';

export function fromResponse(res: GenerateContentResponse, model: string): JsonObject {
  const candidates = res.candidates ?? [];
  let calls = 0;
  const choices = candidates.map((c, i) => {
    const { text, toolCalls } = readCandidate(c, () => `call_${calls++}`);
    const message: JsonObject = { role: 'assistant', content: text };
    if (toolCalls.length > 0) message.tool_calls = toolCalls;
    return { index: c.index ?? i, message, finish_reason: finishReason(c.finishReason, toolCalls.length > 0), logprobs: null };
  });
  if (choices.length === 0 && res.promptFeedback?.blockReason !== undefined) {
    // A blocked prompt has no candidates: an empty, filtered answer, as OpenAI gives for its own filter.
    choices.push({ index: 0, message: { role: 'assistant', content: null }, finish_reason: 'content_filter', logprobs: null });
  }
  const out: JsonObject = {
    id: res.responseId ?? `gemini-${Date.now()}`,
    object: 'chat.completion',
    created: nowSeconds(),
    model: res.modelVersion ?? model,
    choices,
  };
  if (res.usageMetadata !== undefined) out.usage = openaiUsage(res.usageMetadata);
  return out;
}

function readCandidate(c: Candidate, nextId: () => string): { text: string | null; toolCalls: JsonObject[] } {
  let text: string | null = null;
  const toolCalls: JsonObject[] = [];
  for (const p of c.content?.parts ?? []) {
    if (p.thought === true) continue;
    if (typeof p.text === 'string') text = (text ?? '') + p.text;
    if (p.functionCall !== undefined) {
      toolCalls.push({
        id: p.functionCall.id ?? nextId(),
        type: 'function',
        function: { name: p.functionCall.name, arguments: JSON.stringify(p.functionCall.args ?? {}) },
      });
    }
  }
  return { text, toolCalls };
}

function finishReason(reason: string | undefined, calledTools: boolean): string | null {
  if (reason === undefined || reason === 'FINISH_REASON_UNSPECIFIED') return null;
  if (calledTools && reason === 'STOP') return 'tool_calls';
  return FINISH_REASONS[reason] ?? 'stop';
}

function openaiUsage(u: UsageMetadata): JsonObject {
  const prompt = u.promptTokenCount ?? 0;
  const completion = (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: u.totalTokenCount ?? prompt + completion,
    prompt_tokens_details: { cached_tokens: u.cachedContentTokenCount ?? 0 },
  };
}

/** One streamed answer: each GenerateContentResponse in, one chunk out. */
export class StreamTranslator {
  private readonly created = nowSeconds();
  private id: string | undefined;
  private started = false;
  private calls = 0;
  /** Per choice: whether it called a tool, so its STOP becomes "tool_calls". */
  private readonly calledTools = new Set<number>();
  finished = false;

  constructor(private readonly model: string) {}

  translate(res: GenerateContentResponse): StreamChunk[] {
    this.id ??= res.responseId ?? `gemini-${Date.now()}`;
    const choices = (res.candidates ?? []).map((c, i) => {
      const index = c.index ?? i;
      const { text, toolCalls } = readCandidate(c, () => `call_${this.calls++}`);
      const delta: JsonObject = {};
      if (!this.started) delta.role = 'assistant';
      if (text !== null) delta.content = text;
      if (toolCalls.length > 0) {
        delta.tool_calls = toolCalls.map((call, n) => ({ index: this.calls - toolCalls.length + n, ...call }));
        this.calledTools.add(index);
      }
      const finish = finishReason(c.finishReason, this.calledTools.has(index));
      if (finish !== null) this.finished = true;
      return { index, delta, finish_reason: finish };
    });
    if (choices.length === 0 && res.promptFeedback?.blockReason !== undefined) {
      choices.push({ index: 0, delta: { role: 'assistant' }, finish_reason: 'content_filter' });
      this.finished = true;
    }
    if (choices.length === 0 && res.usageMetadata === undefined) return [];
    this.started = true;
    const chunk: JsonObject = { id: this.id, object: 'chat.completion.chunk', created: this.created, model: res.modelVersion ?? this.model, choices };
    if (res.usageMetadata !== undefined && this.finished) chunk.usage = openaiUsage(res.usageMetadata);
    return [chunkOf(chunk)];
  }
}

export function fromBatchEmbed(embeddings: { values: number[] }[], request: JsonObject, model: string): JsonObject {
  return {
    object: 'list',
    data: embeddings.map((e, index) => ({ object: 'embedding', index, embedding: embeddingValue(e.values, request) })),
    model,
    // Gemini does not count embedding tokens.
    usage: { prompt_tokens: 0, total_tokens: 0 },
  };
}
