/**
 * The drop-in Anthropic route's translation: a Messages request from an Anthropic client into the canonical
 * (OpenAI chat) request the pipeline runs on, and the canonical answer back into Anthropic's message, stream
 * events and error shapes, so the @anthropic-ai/sdk client sees the API it expects whichever provider answered.
 */
import { Errors } from '../../errors.js';
import type { Json, JsonObject } from '../../plugins/plugin.js';
import { isObject } from '../canonical.js';
import { STOP_REASONS, type ContentBlockParam, type MessagesRequest } from './wire.js';

export function toCanonical(req: MessagesRequest): JsonObject {
  const messages: JsonObject[] = [];
  if (req.system !== undefined) {
    const text = typeof req.system === 'string' ? req.system : req.system.map((b) => b.text).join('\n\n');
    if (text !== '') messages.push({ role: 'system', content: text });
  }
  req.messages.forEach((m, i) => {
    if (typeof m.content === 'string') {
      messages.push({ role: m.role, content: m.content });
      return;
    }
    if (m.role === 'assistant') messages.push(assistantMessage(m.content));
    else messages.push(...userMessages(m.content, i));
  });

  const out: JsonObject = { model: req.model, messages, max_tokens: req.max_tokens };
  if (req.stream === true) out.stream = true;
  if (req.temperature !== undefined) out.temperature = req.temperature;
  if (req.top_p !== undefined) out.top_p = req.top_p;
  if (req.top_k !== undefined) out.top_k = req.top_k;
  if (req.stop_sequences !== undefined) out.stop = req.stop_sequences;
  if (typeof req.metadata?.user_id === 'string') out.user = req.metadata.user_id;
  if (req.fallbacks !== undefined) out.fallbacks = req.fallbacks;
  if (req.tools !== undefined && req.tools.length > 0) {
    out.tools = req.tools.map((t, i) => {
      if (t.input_schema === undefined) {
        throw Errors.BAD_REQUEST(`tools[${i}] (${t.name}): server tools${t.type ? ` such as ${t.type}` : ''} are not supported through the gateway`);
      }
      const fn: JsonObject = { name: t.name, parameters: t.input_schema as JsonObject };
      if (t.description !== undefined) fn.description = t.description;
      return { type: 'function', function: fn };
    });
  }
  const choice = req.tool_choice;
  if (choice !== undefined) {
    if (choice.type === 'auto') out.tool_choice = 'auto';
    else if (choice.type === 'any') out.tool_choice = 'required';
    else if (choice.type === 'none') out.tool_choice = 'none';
    else out.tool_choice = { type: 'function', function: { name: choice.name } };
    if ('disable_parallel_tool_use' in choice && choice.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
  }
  return out;
}

function assistantMessage(blocks: ContentBlockParam[]): JsonObject {
  let text = '';
  const toolCalls: JsonObject[] = [];
  for (const b of blocks) {
    if (b.type === 'text') text += b.text;
    else if (b.type === 'tool_use') {
      toolCalls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } });
    }
    // thinking blocks are the model's own; other providers can't take them back
  }
  const message: JsonObject = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return message;
}

/** Tool results become tool messages, ahead of the turn's other content (they answer the previous turn). */
function userMessages(blocks: ContentBlockParam[], i: number): JsonObject[] {
  const tools: JsonObject[] = [];
  const parts: JsonObject[] = [];
  blocks.forEach((b, j) => {
    switch (b.type) {
      case 'text':
        parts.push({ type: 'text', text: b.text });
        break;
      case 'image':
        parts.push(imagePart(b.source));
        break;
      case 'tool_result': {
        const content = b.content === undefined ? '' : typeof b.content === 'string' ? b.content : b.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
        tools.push({ role: 'tool', tool_call_id: b.tool_use_id, content: b.is_error === true ? `Error: ${content}` : content });
        break;
      }
      default:
        throw Errors.BAD_REQUEST(`messages[${i}].content[${j}]: a ${b.type} block can't be sent by a user`);
    }
  });
  if (parts.length === 0) return tools;
  const only = parts.length === 1 ? parts[0] : undefined;
  return [...tools, { role: 'user', content: only?.type === 'text' ? (only.text as string) : parts }];
}

function imagePart(source: { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string }): JsonObject {
  const url = source.type === 'base64' ? `data:${source.media_type};base64,${source.data}` : source.url;
  return { type: 'image_url', image_url: { url } };
}

/** A chat.completion as an Anthropic message. */
export function toMessage(response: JsonObject, requestedModel: string): JsonObject {
  const choice = Array.isArray(response.choices) && isObject(response.choices[0]) ? response.choices[0] : {};
  const message = isObject(choice.message) ? choice.message : {};
  const content: JsonObject[] = [];
  if (typeof message.content === 'string' && message.content !== '') content.push({ type: 'text', text: message.content });
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls) {
      if (!isObject(call) || !isObject(call.function)) continue;
      content.push({ type: 'tool_use', id: String(call.id ?? ''), name: String(call.function.name ?? ''), input: parseInput(call.function.arguments) });
    }
  }
  return {
    id: messageId(response.id),
    type: 'message',
    role: 'assistant',
    model: typeof response.model === 'string' ? response.model : requestedModel,
    content,
    stop_reason: stopReason(choice.finish_reason),
    stop_sequence: null,
    usage: anthropicUsage(response.usage),
  };
}

function parseInput(args: Json | undefined): Json {
  if (isObject(args)) return args;
  if (typeof args !== 'string' || args === '') return {};
  try {
    return JSON.parse(args) as Json;
  } catch {
    return {}; // a model that wrote broken arguments: the client gets an empty input rather than no answer
  }
}

function stopReason(finish: Json | undefined): string | null {
  if (typeof finish !== 'string') return null;
  return STOP_REASONS[finish] ?? 'end_turn';
}

interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
  [key: string]: number;
}

function anthropicUsage(usage: Json | undefined): AnthropicUsage {
  const u = isObject(usage) ? usage : {};
  const details = isObject(u.prompt_tokens_details) ? u.prompt_tokens_details : {};
  const cached = typeof details.cached_tokens === 'number' ? details.cached_tokens : 0;
  const prompt = typeof u.prompt_tokens === 'number' ? u.prompt_tokens : 0;
  return {
    input_tokens: Math.max(0, prompt - cached),
    output_tokens: typeof u.completion_tokens === 'number' ? u.completion_tokens : 0,
    cache_read_input_tokens: cached,
    cache_creation_input_tokens: 0,
  };
}

function messageId(id: Json | undefined): string {
  const s = typeof id === 'string' && id !== '' ? id : `${Date.now()}`;
  return s.startsWith('msg_') ? s : `msg_${s}`;
}

export interface SseFrame {
  event: string;
  data: JsonObject;
}

/**
 * chat.completion.chunk objects in (their parsed values: nothing is parsed here), Anthropic stream events out:
 * message_start first, a content block per run of text and per tool call (opened on first use, closed when another
 * begins), then message_delta with the stop reason and usage, and message_stop.
 */
export class EventWriter {
  private started = false;
  private open: { index: number; kind: 'text' | 'tool'; tool?: number } | undefined;
  private blocks = 0;
  private stop: string | null = null;
  private usage: JsonObject = { output_tokens: 0 };

  constructor(private readonly requestedModel: string) {}

  chunk(chunk: JsonObject): SseFrame[] {
    const out = this.start(chunk);
    if (chunk.usage !== undefined && chunk.usage !== null) this.usage = { output_tokens: anthropicUsage(chunk.usage).output_tokens };
    const choice = Array.isArray(chunk.choices) && isObject(chunk.choices[0]) ? chunk.choices[0] : undefined;
    if (choice === undefined) return out;
    const delta = isObject(choice.delta) ? choice.delta : {};
    if (typeof delta.content === 'string' && delta.content !== '') {
      if (this.open?.kind !== 'text') out.push(...this.openBlock('text', { type: 'text', text: '' }));
      out.push(this.frame('content_block_delta', { index: this.open?.index ?? 0, delta: { type: 'text_delta', text: delta.content } }));
    }
    if (Array.isArray(delta.tool_calls)) {
      for (const call of delta.tool_calls) {
        if (!isObject(call)) continue;
        const fn = isObject(call.function) ? call.function : {};
        const toolIndex = typeof call.index === 'number' ? call.index : 0;
        if (this.open?.kind !== 'tool' || this.open.tool !== toolIndex) {
          out.push(...this.openBlock('tool', { type: 'tool_use', id: String(call.id ?? `toolu_${toolIndex}`), name: String(fn.name ?? ''), input: {} }, toolIndex));
        }
        if (typeof fn.arguments === 'string' && fn.arguments !== '') {
          out.push(this.frame('content_block_delta', { index: this.open?.index ?? 0, delta: { type: 'input_json_delta', partial_json: fn.arguments } }));
        }
      }
    }
    if (typeof choice.finish_reason === 'string') this.stop = stopReason(choice.finish_reason);
    return out;
  }

  /** The stream's end: close what is open, then message_delta and message_stop. */
  end(): SseFrame[] {
    const out = this.start({});
    out.push(...this.closeBlock());
    out.push(this.frame('message_delta', { delta: { stop_reason: this.stop ?? 'end_turn', stop_sequence: null }, usage: this.usage }));
    out.push(this.frame('message_stop', {}));
    return out;
  }

  private start(chunk: JsonObject): SseFrame[] {
    if (this.started) return [];
    this.started = true;
    const model = typeof chunk.model === 'string' ? chunk.model : this.requestedModel;
    const message = {
      id: messageId(chunk.id), type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null,
      usage: { input_tokens: 0, output_tokens: 0 },
    };
    return [this.frame('message_start', { message })];
  }

  private openBlock(kind: 'text' | 'tool', block: JsonObject, tool?: number): SseFrame[] {
    const out = this.closeBlock();
    this.open = { index: this.blocks, kind, tool };
    this.blocks += 1;
    out.push(this.frame('content_block_start', { index: this.open.index, content_block: block }));
    return out;
  }

  private closeBlock(): SseFrame[] {
    if (this.open === undefined) return [];
    const frame = this.frame('content_block_stop', { index: this.open.index });
    this.open = undefined;
    return [frame];
  }

  private frame(event: string, body: JsonObject): SseFrame {
    return { event, data: { type: event, ...body } };
  }
}

/** Anthropic's error type for a status, as its SDK maps them back to error classes. */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 529:
      return 'overloaded_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/** Anthropic's error body; the gateway's code stays visible as `error.code`. */
export function anthropicError(error: { status_code: number; message: string; code?: string | undefined }): JsonObject {
  const body: JsonObject = { type: anthropicErrorType(error.status_code), message: error.message };
  if (typeof error.code === 'string') body.code = error.code;
  return { type: 'error', error: body };
}
