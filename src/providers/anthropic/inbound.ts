/**
 * The drop-in Anthropic route's translation: a Messages request from an Anthropic client into the canonical
 * (OpenAI chat) request the pipeline runs on, and the canonical answer back into Anthropic's message, stream
 * events and error shapes, so the @anthropic-ai/sdk client sees the API it expects whichever provider answered.
 */
import { Errors } from '../../errors.js';
import type { Json, JsonObject } from '../../plugins/plugin.js';
import { isObject } from '../canonical.js';
import {
  STOP_REASONS,
  type ContentBlockParam,
  type DocumentBlock,
  type ImageBlock,
  type MessagesRequest,
  type TextBlock,
  type ToolParam,
  type ToolResultContent,
} from './wire.js';

/**
 * Every field of the Messages request lands somewhere in the canonical one: translated to OpenAI's field, or carried
 * as a canonical extension (docs/abi.md), so that request.ts rebuilds the same Messages request from it.
 */
export function toCanonical(req: MessagesRequest): JsonObject {
  const {
    model, max_tokens, messages: turns, system, stop_sequences, temperature, top_p, stream, tools, tool_choice, metadata, fallbacks,
    ...anthropic
  } = req;
  const messages: JsonObject[] = [];
  if (system !== undefined) messages.push({ role: 'system', content: typeof system === 'string' ? system : system.map(textPart) });
  turns.forEach((m, i) => {
    if (typeof m.content === 'string') messages.push({ role: m.role, content: m.content });
    else if (m.role === 'assistant') messages.push(assistantMessage(m.content, i));
    else messages.push(...userMessages(m.content, i));
  });

  const out: JsonObject = { model, messages, max_tokens };
  if (stream === true) out.stream = true;
  if (temperature !== undefined) out.temperature = temperature;
  if (top_p !== undefined) out.top_p = top_p;
  if (stop_sequences !== undefined) out.stop = stop_sequences;
  if (metadata !== undefined) {
    // Anthropic's user id is OpenAI's user; any other metadata shape travels as it is.
    const keys = Object.keys(metadata);
    if (keys.length === 1 && typeof metadata.user_id === 'string') out.user = metadata.user_id;
    else out.metadata = metadata as JsonObject;
  }
  if (fallbacks !== undefined) out.fallbacks = fallbacks;
  if (tools !== undefined && tools.length > 0) out.tools = tools.map(canonicalTool);
  if (tool_choice !== undefined) {
    if (tool_choice.type === 'auto') out.tool_choice = 'auto';
    else if (tool_choice.type === 'any') out.tool_choice = 'required';
    else if (tool_choice.type === 'none') out.tool_choice = 'none';
    else out.tool_choice = { type: 'function', function: { name: tool_choice.name } };
    if ('disable_parallel_tool_use' in tool_choice && typeof tool_choice.disable_parallel_tool_use === 'boolean') {
      out.parallel_tool_calls = !tool_choice.disable_parallel_tool_use;
    }
  }
  // The rest is Anthropic's alone (top_k, thinking, service_tier, container...): it passes as it is.
  for (const [name, value] of Object.entries(anthropic)) {
    if (value !== undefined) out[name] = value as Json;
  }
  return out;
}

/**
 * A tool with an input_schema is OpenAI's function tool, its other fields (cache_control...) beside type and
 * function; a server tool (web search...) has no OpenAI form and is carried as Anthropic wrote it.
 */
function canonicalTool(t: ToolParam): JsonObject {
  if (t.input_schema === undefined) return t as JsonObject;
  const { name, description, input_schema, type: _custom, strict, ...anthropic } = t;
  const fn: JsonObject = { name, parameters: input_schema as JsonObject };
  if (description !== undefined) fn.description = description;
  if (typeof strict === 'boolean') fn.strict = strict;
  return { type: 'function', function: fn, ...(anthropic as JsonObject) };
}

/** Thinking blocks become thinking_blocks (verbatim) and reasoning_content; tool_use blocks become tool_calls. */
function assistantMessage(blocks: ContentBlockParam[], i: number): JsonObject {
  const thinking: JsonObject[] = [];
  let reasoning: string | undefined;
  const content: JsonObject[] = [];
  const toolCalls: JsonObject[] = [];
  blocks.forEach((b, j) => {
    switch (b.type) {
      case 'thinking':
        thinking.push(b as JsonObject);
        reasoning = (reasoning ?? '') + (b.thinking as string);
        break;
      case 'redacted_thinking':
        thinking.push(b as JsonObject);
        break;
      case 'tool_use': {
        const call: JsonObject = { id: b.id as string, type: 'function', function: { name: b.name as string, arguments: JSON.stringify(b.input ?? {}) } };
        if (b.cache_control !== undefined) call.cache_control = b.cache_control as JsonObject;
        toolCalls.push(call);
        break;
      }
      case 'text':
        content.push(textPart(b as TextBlock));
        break;
      case 'image':
      case 'document':
      case 'tool_result':
        throw Errors.BAD_REQUEST(`messages[${i}].content[${j}]: a ${b.type} block can't be sent by the assistant`);
      default:
        content.push(b as JsonObject); // server tool use and results: Anthropic's own
    }
  });
  const message: JsonObject = { role: 'assistant', content: content.length > 0 || blocks.length === 0 ? content : toolCalls.length > 0 ? null : '' };
  if (reasoning !== undefined) message.reasoning_content = reasoning;
  if (thinking.length > 0) message.thinking_blocks = thinking;
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return message;
}

/** Tool results become tool messages, ahead of the turn's other content (they answer the previous turn). */
function userMessages(blocks: ContentBlockParam[], i: number): JsonObject[] {
  const tools: JsonObject[] = [];
  const parts: JsonObject[] = [];
  blocks.forEach((b, j) => {
    switch (b.type) {
      case 'tool_result': {
        const tool: JsonObject = { role: 'tool', tool_call_id: b.tool_use_id as string };
        const c = b.content as string | ToolResultContent[] | undefined;
        tool.content = c === undefined ? '' : typeof c === 'string' ? c : c.map(part);
        if (typeof b.is_error === 'boolean') tool.is_error = b.is_error;
        if (b.cache_control !== undefined) tool.cache_control = b.cache_control as JsonObject;
        tools.push(tool);
        break;
      }
      case 'tool_use':
      case 'thinking':
      case 'redacted_thinking':
        throw Errors.BAD_REQUEST(`messages[${i}].content[${j}]: a ${b.type} block can't be sent by a user`);
      default:
        parts.push(part(b as ToolResultContent));
    }
  });
  if (parts.length === 0 && tools.length > 0) return tools;
  return [...tools, { role: 'user', content: parts }];
}

/** A user or tool-result block as a canonical part. */
function part(b: ToolResultContent): JsonObject {
  switch (b.type) {
    case 'text':
      return textPart(b as TextBlock);
    case 'image':
      return imagePart(b as ImageBlock);
    case 'document':
      return filePart(b as DocumentBlock);
    default:
      return b as JsonObject; // search results and the like: Anthropic's own
  }
}

/** A text block's other fields (cache_control, citations) stay on the part. */
function textPart(b: TextBlock): JsonObject {
  return { ...b } as JsonObject;
}

function imagePart(b: ImageBlock): JsonObject {
  const { source, type: _image, ...rest } = b;
  const url = source.type === 'base64' ? `data:${source.media_type};base64,${source.data}` : source.url;
  return { type: 'image_url', image_url: { url }, ...(rest as JsonObject) };
}

/**
 * A document as OpenAI's file part. A base64 document with at most a title is exactly that part (the title as its
 * filename); any other (a URL, text or content source, citations, context) also carries the whole block as
 * `anthropic_document`, which is what an Anthropic upstream is sent.
 */
function filePart(b: DocumentBlock): JsonObject {
  const { cache_control, ...doc } = b;
  const file: JsonObject = {};
  const source = doc.source;
  if (source.type === 'base64') file.file_data = `data:${source.media_type};base64,${source.data}`;
  else if (source.type === 'text') file.file_data = `data:${source.media_type};base64,${Buffer.from(source.data, 'utf8').toString('base64')}`;
  if (typeof doc.title === 'string') file.filename = doc.title;
  const plain =
    source.type === 'base64' &&
    Object.keys(source).length === 3 &&
    Object.keys(doc).every((k) => k === 'type' || k === 'source' || (k === 'title' && typeof doc.title === 'string'));
  const out: JsonObject = { type: 'file', file };
  if (!plain) out.anthropic_document = doc as JsonObject;
  if (cache_control !== undefined) out.cache_control = cache_control as JsonObject;
  return out;
}

/** A chat.completion as an Anthropic message. */
export function toMessage(response: JsonObject, requestedModel: string): JsonObject {
  const choice = Array.isArray(response.choices) && isObject(response.choices[0]) ? response.choices[0] : {};
  const message = isObject(choice.message) ? choice.message : {};
  const content: JsonObject[] = [...thinkingBlocks(message)];
  if (typeof message.content === 'string' && message.content !== '') content.push({ type: 'text', text: message.content });
  else if (Array.isArray(message.content)) {
    for (const p of message.content) {
      if (isObject(p) && p.type === 'text' && typeof p.text === 'string' && p.text !== '') content.push({ type: 'text', text: p.text });
    }
  }
  const refused = typeof message.refusal === 'string' && message.refusal !== '';
  if (refused) content.push({ type: 'text', text: message.refusal as string });
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls) {
      if (!isObject(call) || !isObject(call.function)) continue;
      content.push({ type: 'tool_use', id: String(call.id ?? ''), name: String(call.function.name ?? ''), input: parseInput(call.function.arguments) });
    }
  }
  const stop = stopReason(choice, refused);
  return {
    id: messageId(response.id),
    type: 'message',
    role: 'assistant',
    model: typeof response.model === 'string' ? response.model : requestedModel,
    content,
    stop_reason: stop,
    stop_sequence: stop === 'stop_sequence' ? (choice.stop_sequence as string) : null,
    usage: anthropicUsage(response.usage),
  };
}

/**
 * The message's thinking: its thinking_blocks as they are, or, from a provider that only gives the text
 * (reasoning_content), one thinking block without a signature.
 */
function thinkingBlocks(message: JsonObject): JsonObject[] {
  if (Array.isArray(message.thinking_blocks)) {
    return message.thinking_blocks.filter((b): b is JsonObject => isObject(b) && (b.type === 'thinking' || b.type === 'redacted_thinking'));
  }
  if (typeof message.reasoning_content === 'string' && message.reasoning_content !== '') {
    return [{ type: 'thinking', thinking: message.reasoning_content, signature: '' }];
  }
  return [];
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

/** Anthropic's own reason when the choice kept it; else the refusal, the stop sequence, or finish_reason's. */
function stopReason(choice: JsonObject, refused: boolean): string | null {
  if (typeof choice.stop_reason === 'string') return choice.stop_reason;
  if (refused) return 'refusal';
  const finish = choice.finish_reason;
  if (typeof finish !== 'string') return null;
  if (finish === 'stop' && typeof choice.stop_sequence === 'string') return 'stop_sequence';
  return STOP_REASONS[finish] ?? 'end_turn';
}

interface AnthropicUsage {
  input_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  output_tokens: number;
  [key: string]: number;
}

/** OpenAI's prompt_tokens counts cache reads and writes; Anthropic's input_tokens is what is left. */
function anthropicUsage(usage: Json | undefined): AnthropicUsage {
  const u = isObject(usage) ? usage : {};
  const details = isObject(u.prompt_tokens_details) ? u.prompt_tokens_details : {};
  const count = (v: Json | undefined) => (typeof v === 'number' ? v : 0);
  const cached = count(details.cached_tokens);
  const created = count(details.cache_creation_tokens);
  return {
    input_tokens: Math.max(0, count(u.prompt_tokens) - cached - created),
    cache_creation_input_tokens: created,
    cache_read_input_tokens: cached,
    output_tokens: count(u.completion_tokens),
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

type BlockKind = 'text' | 'thinking' | 'tool' | 'redacted';

/**
 * chat.completion.chunk objects in (their parsed values: nothing is parsed here), Anthropic stream events out:
 * message_start once the first chunk is seen (with the input usage, when that chunk has it), a content block per
 * run of thinking, text and per tool call (opened on first use, closed when another begins; a thinking block also
 * closes at its signature, a redacted one at once), then message_delta with the stop reason and the usage the
 * message_start could not give, and message_stop.
 */
export class EventWriter {
  private started = false;
  private open: { index: number; kind: BlockKind; tool?: number } | undefined;
  private blocks = 0;
  private finish: string | null = null;
  private stopSequence: string | undefined;
  /** Anthropic's own stop reason, when the chunks kept it. */
  private anthropicStop: string | undefined;
  private refused = false;
  private startUsage: AnthropicUsage = anthropicUsage(undefined);
  private usage: Json | undefined;

  constructor(private readonly requestedModel: string) {}

  chunk(chunk: JsonObject): SseFrame[] {
    const out = this.start(chunk);
    if (chunk.usage !== undefined && chunk.usage !== null) this.usage = chunk.usage;
    const choice = Array.isArray(chunk.choices) && isObject(chunk.choices[0]) ? chunk.choices[0] : undefined;
    if (choice === undefined) return out;
    const delta = isObject(choice.delta) ? choice.delta : {};
    if (typeof delta.reasoning_content === 'string' && delta.reasoning_content !== '') out.push(...this.thinking(delta.reasoning_content));
    if (Array.isArray(delta.thinking_blocks)) {
      for (const b of delta.thinking_blocks) {
        if (!isObject(b)) continue;
        if (b.type === 'redacted_thinking') {
          out.push(...this.openBlock('redacted', { type: 'redacted_thinking', data: typeof b.data === 'string' ? b.data : '' }));
          out.push(...this.closeBlock());
        } else if (b.type === 'thinking') {
          if (typeof b.thinking === 'string' && b.thinking !== '') out.push(...this.thinking(b.thinking));
          if (typeof b.signature === 'string') {
            if (this.open?.kind !== 'thinking') out.push(...this.openBlock('thinking', { type: 'thinking', thinking: '', signature: '' }));
            out.push(this.delta({ type: 'signature_delta', signature: b.signature }));
            out.push(...this.closeBlock()); // the signature is a thinking block's last delta
          }
        }
      }
    }
    for (const [text, refusal] of [[delta.content, false], [delta.refusal, true]] as const) {
      if (typeof text !== 'string' || text === '') continue;
      if (refusal) this.refused = true;
      if (this.open?.kind !== 'text') out.push(...this.openBlock('text', { type: 'text', text: '' }));
      out.push(this.delta({ type: 'text_delta', text }));
    }
    if (Array.isArray(delta.tool_calls)) {
      for (const call of delta.tool_calls) {
        if (!isObject(call)) continue;
        const fn = isObject(call.function) ? call.function : {};
        const toolIndex = typeof call.index === 'number' ? call.index : 0;
        if (this.open?.kind !== 'tool' || this.open.tool !== toolIndex) {
          out.push(...this.openBlock('tool', { type: 'tool_use', id: String(call.id ?? `toolu_${toolIndex}`), name: String(fn.name ?? ''), input: {} }, toolIndex));
        }
        if (typeof fn.arguments === 'string' && fn.arguments !== '') out.push(this.delta({ type: 'input_json_delta', partial_json: fn.arguments }));
      }
    }
    if (typeof choice.finish_reason === 'string') this.finish = choice.finish_reason;
    if (typeof choice.stop_sequence === 'string') this.stopSequence = choice.stop_sequence;
    if (typeof choice.stop_reason === 'string') this.anthropicStop = choice.stop_reason;
    return out;
  }

  /** The stream's end: close what is open, then message_delta and message_stop. */
  end(): SseFrame[] {
    const out = this.start({});
    out.push(...this.closeBlock());
    const stop = stopReason(
      { finish_reason: this.finish ?? 'stop', stop_sequence: this.stopSequence ?? null, stop_reason: this.anthropicStop ?? null },
      this.refused,
    );
    out.push(this.frame('message_delta', { delta: { stop_reason: stop, stop_sequence: stop === 'stop_sequence' ? this.stopSequence ?? null : null }, usage: this.finalUsage() }));
    out.push(this.frame('message_stop', {}));
    return out;
  }

  /** Output tokens, and the input counts too when message_start did not have them right (usage that came last). */
  private finalUsage(): JsonObject {
    const final = anthropicUsage(this.usage);
    const known = (['input_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const).every((k) => final[k] === this.startUsage[k]);
    return known ? { output_tokens: final.output_tokens } : { ...final };
  }

  private start(chunk: JsonObject): SseFrame[] {
    if (this.started) return [];
    this.started = true;
    const model = typeof chunk.model === 'string' ? chunk.model : this.requestedModel;
    this.startUsage = anthropicUsage(chunk.usage);
    const message = {
      id: messageId(chunk.id), type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null,
      usage: { ...this.startUsage },
    };
    return [this.frame('message_start', { message })];
  }

  private thinking(text: string): SseFrame[] {
    const out = this.open?.kind === 'thinking' ? [] : this.openBlock('thinking', { type: 'thinking', thinking: '', signature: '' });
    out.push(this.delta({ type: 'thinking_delta', thinking: text }));
    return out;
  }

  private openBlock(kind: BlockKind, block: JsonObject, tool?: number): SseFrame[] {
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

  private delta(delta: JsonObject): SseFrame {
    return this.frame('content_block_delta', { index: this.open?.index ?? 0, delta });
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
