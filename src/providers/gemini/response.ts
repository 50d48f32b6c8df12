/**
 * Gemini's answers in the OpenAI shape: a GenerateContentResponse as a chat.completion (one choice per candidate),
 * each streamed GenerateContentResponse as a chat.completion.chunk (built as a value, serialised once for the
 * client), and batchEmbedContents as an embeddings list.
 * Gemini gives function calls no ids (or only sometimes): they get "call_<n>" ids, unique within the answer.
 * Thought summaries are reasoning_content; thought signatures ride in `extra_content.google.thought_signature`
 * (on the tool call whose part carried one, else on the message), so request.ts can send them back.
 */
import type { JsonObject } from '../../plugins/plugin.js';
import { embeddingValue, nowSeconds } from '../canonical.js';
import { chunkOf, type StreamChunk } from '../provider.js';
import { FINISH_REASONS, type Candidate, type GenerateContentResponse, type LogprobsResult, type UsageMetadata } from './wire.js';

export function fromResponse(res: GenerateContentResponse, model: string): JsonObject {
  const candidates = res.candidates ?? [];
  let calls = 0;
  const choices = candidates.map((c, i) => {
    const read = readCandidate(c, () => `call_${calls++}`);
    const message: JsonObject = { role: 'assistant', content: read.text };
    if (read.reasoning !== null) message.reasoning_content = read.reasoning;
    if (read.toolCalls.length > 0) message.tool_calls = read.toolCalls;
    if (read.signature !== undefined) message.extra_content = signed(read.signature);
    return { index: c.index ?? i, message, finish_reason: finishReason(c.finishReason, read.toolCalls.length > 0), logprobs: openaiLogprobs(c.logprobsResult) };
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

interface ReadCandidate {
  text: string | null;
  /** Thought summaries (parts with `thought: true`). */
  reasoning: string | null;
  toolCalls: JsonObject[];
  /** The thought signature of a part that is not a function call (Gemini puts it on the last part). */
  signature: string | undefined;
}

function readCandidate(c: Candidate, nextId: () => string): ReadCandidate {
  const out: ReadCandidate = { text: null, reasoning: null, toolCalls: [], signature: undefined };
  for (const p of c.content?.parts ?? []) {
    if (p.functionCall !== undefined) {
      const call: JsonObject = {
        id: p.functionCall.id ?? nextId(),
        type: 'function',
        function: { name: p.functionCall.name, arguments: JSON.stringify(p.functionCall.args ?? {}) },
      };
      if (p.thoughtSignature !== undefined) call.extra_content = signed(p.thoughtSignature);
      out.toolCalls.push(call);
      continue;
    }
    if (p.thoughtSignature !== undefined) out.signature = p.thoughtSignature;
    if (typeof p.text !== 'string') continue;
    if (p.thought === true) out.reasoning = (out.reasoning ?? '') + p.text;
    else out.text = (out.text ?? '') + p.text;
  }
  return out;
}

/** The canonical place of a thought signature, as Google's own OpenAI endpoint puts it. */
function signed(signature: string): JsonObject {
  return { google: { thought_signature: signature } };
}

/** logprobsResult in OpenAI's shape: one entry per token, with its alternatives. */
function openaiLogprobs(result: LogprobsResult | undefined): JsonObject | null {
  if (result === undefined) return null;
  const entry = (c: { token?: string | undefined; logProbability?: number | undefined }) => {
    const token = c.token ?? '';
    return { token, logprob: c.logProbability ?? 0, bytes: [...Buffer.from(token, 'utf8')] };
  };
  const top = result.topCandidates ?? [];
  return {
    content: (result.chosenCandidates ?? []).map((c, i) => ({ ...entry(c), top_logprobs: (top[i]?.candidates ?? []).map(entry) })),
    refusal: null,
  };
}

function finishReason(reason: string | undefined, calledTools: boolean): string | null {
  if (reason === undefined || reason === 'FINISH_REASON_UNSPECIFIED') return null;
  if (calledTools && reason === 'STOP') return 'tool_calls';
  return FINISH_REASONS[reason] ?? 'stop';
}

/** Thinking tokens are completion tokens (as OpenAI counts reasoning), and also counted apart. */
function openaiUsage(u: UsageMetadata): JsonObject {
  const prompt = u.promptTokenCount ?? 0;
  const thoughts = u.thoughtsTokenCount ?? 0;
  const completion = (u.candidatesTokenCount ?? 0) + thoughts;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: u.totalTokenCount ?? prompt + completion,
    prompt_tokens_details: { cached_tokens: u.cachedContentTokenCount ?? 0 },
    completion_tokens_details: { reasoning_tokens: thoughts },
  };
}

/** One streamed answer: each GenerateContentResponse in, one chunk out. */
export class StreamTranslator {
  private readonly created = nowSeconds();
  private id: string | undefined;
  /** Choices that have had their first delta (which carries the role). */
  private readonly started = new Set<number>();
  /** Ids given so far, unique within the answer. */
  private ids = 0;
  /** Per choice: its tool calls so far (the next call's index), and so whether its STOP is "tool_calls". */
  private readonly calls = new Map<number, number>();
  finished = false;

  constructor(private readonly model: string) {}

  translate(res: GenerateContentResponse): StreamChunk[] {
    this.id ??= res.responseId ?? `gemini-${Date.now()}`;
    const choices: JsonObject[] = (res.candidates ?? []).map((c, i) => {
      const index = c.index ?? i;
      const read = readCandidate(c, () => `call_${this.ids++}`);
      const delta: JsonObject = {};
      if (!this.started.has(index)) delta.role = 'assistant';
      this.started.add(index);
      if (read.reasoning !== null) delta.reasoning_content = read.reasoning;
      if (read.text !== null) delta.content = read.text;
      if (read.signature !== undefined) delta.extra_content = signed(read.signature);
      if (read.toolCalls.length > 0) {
        // Gemini sends each call whole: its delta is the one that starts it, signature included.
        const before = this.calls.get(index) ?? 0;
        delta.tool_calls = read.toolCalls.map((call, n) => ({ index: before + n, ...call }));
        this.calls.set(index, before + read.toolCalls.length);
      }
      const finish = finishReason(c.finishReason, this.calls.has(index));
      if (finish !== null) this.finished = true;
      const choice: JsonObject = { index, delta, finish_reason: finish };
      const logprobs = openaiLogprobs(c.logprobsResult);
      if (logprobs !== null) choice.logprobs = logprobs;
      return choice;
    });
    if (choices.length === 0 && res.promptFeedback?.blockReason !== undefined) {
      choices.push({ index: 0, delta: { role: 'assistant' }, finish_reason: 'content_filter' });
      this.finished = true;
    }
    if (choices.length === 0 && res.usageMetadata === undefined) return [];
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
