/**
 * A request that came in through a drop-in route of another format (an Anthropic client's Messages request, in
 * its canonical form), bound for an OpenAI-format upstream. The canonical form carries that format's features as
 * extensions (docs/abi.md, "Canonical extensions"), and whatever else the client sent that the gateway does not
 * translate (container, mcp_servers, server tools, blocks of new types). The OpenAI API has no field for them, and
 * an OpenAI-compatible server may ignore what it does not know, so nothing here relies on the upstream: what the
 * OpenAI format can take is listed, and everything else is handed to `leaveOut` (a 400 naming it, or, with the
 * provider's drop_unsupported, left out and listed in x-heimdall-dropped). An OpenAI client's own request never
 * comes here: its fields pass to an OpenAI-format upstream as they are.
 */
import type { Json, JsonObject } from '../plugins/plugin.js';
import { isObject, type LeaveOut } from './canonical.js';

/** The request fields the Anthropic route's canonical request may hold that an OpenAI upstream takes. */
const REQUEST_FIELDS = new Set([
  'model', 'messages', 'max_tokens', 'stream', 'stream_options', 'temperature', 'top_p', 'stop', 'user',
  'tools', 'tool_choice', 'parallel_tool_calls', 'fallbacks',
]);
const MESSAGE_FIELDS = new Set(['role', 'content', 'name', 'tool_calls', 'tool_call_id', 'refusal']);
const PART_TYPES = new Set(['text', 'image_url', 'input_audio', 'file', 'refusal']);
const WHY_FIELD = 'the OpenAI API has no such field';

export function fromNativeExtensions(request: JsonObject, leaveOut: LeaveOut, stream: boolean | undefined): JsonObject {
  const out: JsonObject = {};
  for (const [field, value] of Object.entries(request)) {
    if (value === undefined) continue;
    if (REQUEST_FIELDS.has(field)) out[field] = value;
    else leaveOut(field, WHY_FIELD);
  }
  if (Array.isArray(request.tools)) out.tools = keep(request.tools.map((tool, i) => toolOf(tool, `tools[${i}]`, leaveOut)));
  if (Array.isArray(request.messages)) out.messages = request.messages.map((m, i) => message(m, `messages[${i}]`, leaveOut));
  // The client's format reports usage on every stream; OpenAI only when asked.
  if (stream === true && !isObject(out.stream_options)) out.stream_options = { include_usage: true };
  return out;
}

function toolOf(tool: Json, where: string, leaveOut: LeaveOut): Json | undefined {
  if (!isObject(tool)) return tool;
  if (!isObject(tool.function)) {
    leaveOut(where, 'OpenAI has function tools only (this is a server tool)');
    return undefined;
  }
  return withoutCacheControl(tool, where, leaveOut);
}

function message(m: Json, where: string, leaveOut: LeaveOut): Json {
  if (!isObject(m)) return m;
  const out: JsonObject = {};
  for (const [field, value] of Object.entries(m)) {
    if (MESSAGE_FIELDS.has(field)) out[field] = value;
    else if (field === 'is_error' && m.role === 'tool') continue; // below
    else {
      leaveOut(`${where}.${field}`, field === 'thinking_blocks' || field === 'reasoning_content'
        ? 'OpenAI models take no thinking back from earlier turns'
        : WHY_FIELD);
    }
  }
  // The Messages API marks a failed tool run; OpenAI has only the text, so the mark goes into it.
  if (m.role === 'tool' && m.is_error === true) out.content = prefixError(m.content);
  if (Array.isArray(out.content)) out.content = keep(out.content.map((part, j) => partOf(part, m.role, `${where}.content[${j}]`, leaveOut)));
  if (Array.isArray(m.tool_calls)) out.tool_calls = m.tool_calls.map((c, j) => withoutCacheControl(c, `${where}.tool_calls[${j}]`, leaveOut));
  return out;
}

function partOf(part: Json, role: Json | undefined, at: string, leaveOut: LeaveOut): Json | undefined {
  if (!isObject(part)) return part;
  if (role === 'tool' && part.type !== 'text') {
    leaveOut(at, 'an OpenAI tool message holds text only');
    return undefined;
  }
  if (typeof part.type !== 'string' || !PART_TYPES.has(part.type)) {
    leaveOut(at, `OpenAI has no ${JSON.stringify(part.type)} content part`);
    return undefined;
  }
  let out = withoutCacheControl(part, at, leaveOut) as JsonObject;
  if (out.anthropic_document !== undefined) {
    const { anthropic_document: _, ...rest } = out;
    const file = isObject(rest.file) ? rest.file : {};
    if (typeof file.file_data !== 'string' && typeof file.file_id !== 'string') {
      leaveOut(at, 'OpenAI takes documents as base64 file data only');
      return undefined;
    }
    leaveOut(`${at}.anthropic_document`, 'OpenAI has no document source, title, context or citations');
    out = rest;
  }
  return out;
}

function withoutCacheControl(v: Json, where: string, leaveOut: LeaveOut): Json {
  if (!isObject(v) || v.cache_control === undefined) return v;
  leaveOut(`${where}.cache_control`, 'OpenAI caches prompts by itself and has no cache_control');
  const { cache_control: _, ...rest } = v;
  return rest;
}

function keep<T>(items: (T | undefined)[]): T[] {
  return items.filter((x): x is T => x !== undefined);
}

function prefixError(content: Json | undefined): Json {
  if (typeof content === 'string') return `Error: ${content}`;
  if (Array.isArray(content)) return [{ type: 'text', text: 'Error:' }, ...content];
  return 'Error';
}
