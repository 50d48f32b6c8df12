/**
 * Reading the canonical request: the OpenAI chat-completions shape every route hands providers. The wire formats
 * that translate (Anthropic, Gemini) read it through these, so each OpenAI quirk (string or part-list content, the
 * "developer" role, max_completion_tokens, tool_choice's four forms) is handled once. A shape a provider can't
 * express is the client's 400, naming the message.
 */
import { Errors } from '../errors.js';
import type { Json, JsonObject } from '../plugins/plugin.js';
import type { UpstreamMeta } from './provider.js';

export type Part =
  | { kind: 'text'; text: string }
  /** An image by URL: http(s), or a data: URL already split into its media type and base64 data. */
  | { kind: 'image'; url: string; mediaType: string | undefined; base64: string | undefined };

export interface ToolCall {
  id: string;
  name: string;
  /** The arguments as parsed JSON (OpenAI sends them as a string). */
  args: JsonObject;
}

export type Message =
  | { role: 'system'; text: string }
  | { role: 'user'; parts: Part[] }
  | { role: 'assistant'; parts: Part[]; toolCalls: ToolCall[] }
  | { role: 'tool'; toolCallId: string; text: string };

export interface ToolDefinition {
  name: string;
  description: string | undefined;
  /** JSON Schema of the arguments. */
  parameters: JsonObject;
}

export type ToolChoice = { kind: 'auto' } | { kind: 'none' } | { kind: 'required' } | { kind: 'function'; name: string };

export function readMessages(request: JsonObject): Message[] {
  const messages = Array.isArray(request.messages) ? request.messages : [];
  return messages.map((m, i) => readMessage(m, i));
}

function readMessage(m: Json, i: number): Message {
  const where = `messages[${i}]`;
  if (!isObject(m)) throw Errors.BAD_REQUEST(`${where} must be an object`);
  switch (m.role) {
    case 'system':
    case 'developer':
      return { role: 'system', text: textOnly(m.content, where) };
    case 'user':
      return { role: 'user', parts: readParts(m.content, where) };
    case 'assistant': {
      const parts = m.content === null || m.content === undefined ? [] : readParts(m.content, where);
      const calls = Array.isArray(m.tool_calls) ? m.tool_calls.map((c, j) => readToolCall(c, `${where}.tool_calls[${j}]`)) : [];
      return { role: 'assistant', parts, toolCalls: calls };
    }
    case 'tool':
      if (typeof m.tool_call_id !== 'string') throw Errors.BAD_REQUEST(`${where}: a tool message needs "tool_call_id"`);
      return { role: 'tool', toolCallId: m.tool_call_id, text: textOnly(m.content, where) };
    default:
      throw Errors.BAD_REQUEST(`${where}: unsupported role ${JSON.stringify(m.role)}`);
  }
}

function readParts(content: Json | undefined, where: string): Part[] {
  if (typeof content === 'string') return [{ kind: 'text', text: content }];
  if (!Array.isArray(content)) throw Errors.BAD_REQUEST(`${where}.content must be a string or an array of parts`);
  return content.map((p, j) => {
    if (!isObject(p)) throw Errors.BAD_REQUEST(`${where}.content[${j}] must be an object`);
    if (p.type === 'text' && typeof p.text === 'string') return { kind: 'text', text: p.text };
    if (p.type === 'image_url') {
      const url = isObject(p.image_url) ? p.image_url.url : p.image_url;
      if (typeof url !== 'string') throw Errors.BAD_REQUEST(`${where}.content[${j}].image_url.url must be a string`);
      const data = parseDataUrl(url);
      return { kind: 'image', url, mediaType: data?.mediaType, base64: data?.base64 };
    }
    throw Errors.BAD_REQUEST(`${where}.content[${j}]: content parts of type ${JSON.stringify(p.type)} are not supported by this provider`);
  });
}

function textOnly(content: Json | undefined, where: string): string {
  if (content === null || content === undefined) return '';
  return readParts(content, where)
    .map((p) => {
      if (p.kind !== 'text') throw Errors.BAD_REQUEST(`${where}: only text is allowed in this message`);
      return p.text;
    })
    .join('\n');
}

function readToolCall(c: Json, where: string): ToolCall {
  if (!isObject(c) || !isObject(c.function) || typeof c.function.name !== 'string') {
    throw Errors.BAD_REQUEST(`${where} must be {"id", "type": "function", "function": {"name", "arguments"}}`);
  }
  return { id: typeof c.id === 'string' ? c.id : '', name: c.function.name, args: parseArguments(c.function.arguments, where) };
}

/** Tool-call arguments: a JSON object as text (OpenAI), or already an object. */
export function parseArguments(args: Json | undefined, where: string): JsonObject {
  if (isObject(args)) return args;
  if (args === undefined || args === null || args === '') return {};
  if (typeof args === 'string') {
    try {
      const parsed: unknown = JSON.parse(args);
      if (isObject(parsed)) return parsed;
    } catch {
      // reported below
    }
  }
  throw Errors.BAD_REQUEST(`${where}: "arguments" must be a JSON object (as text)`);
}

export function readTools(request: JsonObject): ToolDefinition[] {
  if (!Array.isArray(request.tools)) return [];
  return request.tools.map((t, i) => {
    const fn = isObject(t) && isObject(t.function) ? t.function : undefined;
    if (fn === undefined || typeof fn.name !== 'string' || (isObject(t) && t.type !== undefined && t.type !== 'function')) {
      throw Errors.BAD_REQUEST(`tools[${i}] must be {"type": "function", "function": {"name", "description", "parameters"}}`);
    }
    return {
      name: fn.name,
      description: typeof fn.description === 'string' ? fn.description : undefined,
      parameters: isObject(fn.parameters) ? fn.parameters : { type: 'object', properties: {} },
    };
  });
}

export function readToolChoice(request: JsonObject): ToolChoice | undefined {
  const c = request.tool_choice;
  if (c === undefined || c === null) return undefined;
  if (c === 'auto' || c === 'none' || c === 'required') return { kind: c };
  if (isObject(c) && isObject(c.function) && typeof c.function.name === 'string') return { kind: 'function', name: c.function.name };
  throw Errors.BAD_REQUEST('"tool_choice" must be "auto", "none", "required" or {"type": "function", "function": {"name"}}');
}

/** max_completion_tokens (the current name) or max_tokens. */
export function maxTokens(request: JsonObject): number | undefined {
  const n = request.max_completion_tokens ?? request.max_tokens;
  return typeof n === 'number' ? n : undefined;
}

export function stopSequences(request: JsonObject): string[] | undefined {
  const stop = request.stop;
  if (typeof stop === 'string') return [stop];
  if (Array.isArray(stop)) return stop.filter((s): s is string => typeof s === 'string');
  return undefined;
}

/** "data:image/png;base64,AAAA" -> its media type and data. */
export function parseDataUrl(url: string): { mediaType: string; base64: string } | undefined {
  const m = /^data:([^;,]+)(?:;[^,]*)?;base64,(.*)$/s.exec(url);
  return m ? { mediaType: m[1] as string, base64: m[2] as string } : undefined;
}

/** OpenAI's single-number field, when it is one. */
export function numberField(request: JsonObject, name: string): number | undefined {
  const v = request[name];
  return typeof v === 'number' ? v : undefined;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * An embedding vector as the request asked for it: numbers, or with `encoding_format: "base64"` (the openai
 * client's default) little-endian float32 bytes in base64.
 */
export function embeddingValue(values: readonly number[], request: JsonObject): Json {
  if (request.encoding_format !== 'base64') return [...values];
  const floats = Float32Array.from(values);
  return Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).toString('base64');
}

/**
 * What a translation does with a request field its target can't express: `(field, why)`. Every field is
 * translated, passed through, or handed to this, never dropped quietly (docs/providers.md).
 */
export type LeaveOut = (field: string, why: string) => void;

/**
 * The provider's policy for such fields: a 400 naming the field (HEIMDALL_ERR_FIELD_UNSUPPORTED, with `param`
 * set), or, with `drop_unsupported`, the field left out and recorded in `meta.dropped` for the x-heimdall-dropped
 * header.
 */
export function leaveOut(provider: string, dropUnsupported: boolean, meta: UpstreamMeta | undefined): LeaveOut {
  return (field, why) => {
    if (!dropUnsupported) {
      const err = Errors.FIELD_UNSUPPORTED(provider, field, why);
      err.param = field;
      throw err;
    }
    // One name per kind of field: messages[*].content[*].cache_control, however many messages had one.
    const kind = field.replace(/\[\d+\]/g, '[*]');
    if (meta !== undefined && !meta.dropped.includes(kind)) meta.dropped.push(kind);
  };
}
