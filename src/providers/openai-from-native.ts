/**
 * A request that came in through a drop-in route of another format (an Anthropic client's Messages request, in
 * its canonical form), bound for an OpenAI-format upstream. The canonical form carries that format's features as
 * extensions (docs/abi.md, "Canonical extensions"); the OpenAI API has no field for them and refuses unknown ones,
 * so each is translated where OpenAI has an equivalent and otherwise handed to `leaveOut` (a 400 naming it, or,
 * with the provider's drop_unsupported, left out and listed in x-heimdall-dropped). An OpenAI client's own request
 * never comes here: its fields pass to an OpenAI-format upstream as they are.
 */
import type { Json, JsonObject } from '../plugins/plugin.js';
import { isObject, type LeaveOut } from './canonical.js';

/** Top-level fields of the other format with no OpenAI equivalent. */
const TOP_LEVEL = ['thinking', 'top_k'] as const;

export function fromNativeExtensions(request: JsonObject, leaveOut: LeaveOut, stream: boolean | undefined): JsonObject {
  const out: JsonObject = { ...request };
  for (const field of TOP_LEVEL) {
    if (out[field] === undefined) continue;
    leaveOut(field, 'the OpenAI API has no such parameter');
    delete out[field];
  }
  if (Array.isArray(request.tools)) out.tools = request.tools.map((tool, i) => withoutCacheControl(tool, `tools[${i}]`, leaveOut));
  if (Array.isArray(request.messages)) out.messages = request.messages.map((m, i) => message(m, `messages[${i}]`, leaveOut));
  // The client's format reports usage on every stream; OpenAI only when asked.
  if (stream === true && !isObject(out.stream_options)) out.stream_options = { include_usage: true };
  return out;
}

function message(m: Json, where: string, leaveOut: LeaveOut): Json {
  if (!isObject(m)) return m;
  const out: JsonObject = { ...m };
  for (const field of ['thinking_blocks', 'reasoning_content'] as const) {
    if (out[field] === undefined) continue;
    leaveOut(`${where}.${field}`, 'OpenAI models take no thinking back from earlier turns');
    delete out[field];
  }
  if (m.role === 'tool' && out.is_error !== undefined) {
    // The Messages API marks a failed tool run; OpenAI has only the text, so the mark goes into it.
    if (out.is_error === true) out.content = prefixError(out.content);
    delete out.is_error;
  }
  if (Array.isArray(m.content)) {
    out.content = m.content.map((part, j) => {
      const at = `${where}.content[${j}]`;
      if (m.role === 'tool' && isObject(part) && part.type !== 'text') {
        leaveOut(at, 'an OpenAI tool message holds text only');
        return undefined;
      }
      return withoutCacheControl(part, at, leaveOut);
    }).filter((p) => p !== undefined);
  }
  return out;
}

function withoutCacheControl(v: Json, where: string, leaveOut: LeaveOut): Json {
  if (!isObject(v) || v.cache_control === undefined) return v;
  leaveOut(`${where}.cache_control`, 'OpenAI caches prompts by itself and has no cache_control');
  const { cache_control: _, ...rest } = v;
  return rest;
}

function prefixError(content: Json | undefined): Json {
  if (typeof content === 'string') return `Error: ${content}`;
  if (Array.isArray(content)) return [{ type: 'text', text: 'Error:' }, ...content];
  return 'Error';
}
