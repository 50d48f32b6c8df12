/**
 * Validation of the canonical (OpenAI chat-completions) request, before any plugin or provider sees it.
 *
 * What OpenAI itself refuses is refused here too, so that a plugin (often C) never sees a shape docs/abi.md says
 * cannot happen: a message that is not an object, an unknown role, content of the wrong type, a part without its
 * payload, a tool call without its function, a parameter of the wrong type or out of range. Fields the gateway does
 * not know pass untouched, as do the canonical extensions other routes put there (docs/requests.md lists them);
 * but nothing in the request may nest deeper than MAX_REQUEST_DEPTH, so no recursive serialiser downstream, the
 * gateway's or a plugin's, can run out of stack.
 *
 * Hand-written rather than a zod schema: the hot path allocates nothing (the path of a field is built only once a
 * check has failed), it runs in a small fraction of what parsing the body costs (bench/micro.mjs), and each
 * refusal names the exact field, where a union in a schema reports only that no branch matched.
 */
import { Errors, type HeimdallError } from '../errors.js';
import type { Json, JsonObject } from '../plugins/plugin.js';
import { isObject } from '../providers/canonical.js';

/** Levels of objects and arrays, the request itself being the first: far beyond any real request's. */
export const MAX_REQUEST_DEPTH = 64;

/** Stop sequences, at most: a bound on the request, not any one provider's rule (OpenAI's upstream takes 4). */
const MAX_STOP = 64;

/**
 * Whether the request being checked came through a drop-in route of another format (the Anthropic route), whose
 * own schema already checked the blocks it carries: there a part type the gateway does not know (a block type
 * Anthropic added) passes, as it would to an Anthropic upstream. Set for the one synchronous call below.
 */
let nativeBlocks = false;

/**
 * Throws the client's 400 (HEIMDALL_ERR_BAD_REQUEST, `param` naming the field) when the request is malformed.
 * `native`: the request was translated from a drop-in route's format (see nativeBlocks).
 */
export function validateChatRequest(request: JsonObject, native = false): void {
  nativeBlocks = native;
  try {
    validateRequest(request);
  } finally {
    nativeBlocks = false;
  }
}

function validateRequest(request: JsonObject): void {
  validateMessages(request.messages);

  if (request.model !== undefined && request.model !== null && typeof request.model !== 'string') {
    throw invalid('model', 'a string ("provider/model")', request.model);
  }
  optional(request, 'stream', 'boolean');
  if (isPresent(request.stream_options)) {
    const o = request.stream_options;
    if (!isObject(o)) throw invalid('stream_options', 'an object', o);
    if (isPresent(o.include_usage) && typeof o.include_usage !== 'boolean') throw invalid('stream_options.include_usage', 'a boolean', o.include_usage);
  }
  number(request, 'temperature', 0, 2, false, 'a number from 0 to 2');
  number(request, 'top_p', 0, 1, false, 'a number from 0 to 1');
  number(request, 'n', 1, 128, true, 'an integer from 1 to 128');
  number(request, 'max_tokens', 1, Infinity, true, 'a positive integer');
  number(request, 'max_completion_tokens', 1, Infinity, true, 'a positive integer');
  number(request, 'presence_penalty', -2, 2, false, 'a number from -2 to 2');
  number(request, 'frequency_penalty', -2, 2, false, 'a number from -2 to 2');
  optional(request, 'logprobs', 'boolean');
  number(request, 'top_logprobs', 0, 20, true, 'an integer from 0 to 20');
  number(request, 'seed', -Infinity, Infinity, true, 'an integer');
  number(request, 'top_k', 0, Infinity, false, 'a number, 0 or more');
  if (isPresent(request.logit_bias)) validateLogitBias(request.logit_bias);
  if (isPresent(request.stop)) validateStop(request.stop);
  if (isPresent(request.tools)) validateTools(request.tools);
  if (isPresent(request.tool_choice)) validateToolChoice(request.tool_choice);
  optional(request, 'parallel_tool_calls', 'boolean');
  if (isPresent(request.response_format)) validateResponseFormat(request.response_format);
  optional(request, 'user', 'string');
  optional(request, 'reasoning_effort', 'string');
  if (isPresent(request.thinking) && !isObject(request.thinking)) throw invalid('thinking', 'an object', request.thinking);
  if (isPresent(request.functions)) validateFunctions(request.functions);
  if (isPresent(request.function_call)) validateFunctionChoice(request.function_call);
  if (isPresent(request.fallbacks)) {
    const f = request.fallbacks;
    if (!Array.isArray(f)) throw invalid('fallbacks', 'an array of model names', f);
    for (let i = 0; i < f.length; i++) if (typeof f[i] !== 'string') throw invalid(`fallbacks[${i}]`, 'a model name (a string)', f[i]);
  }

  validateDepth(request);
}

// --- messages -----------------------------------------------------------------------------------------------------

const ROLES = 'one of "system", "developer", "user", "assistant", "tool", "function"';

function validateMessages(messages: Json | undefined): void {
  if (!Array.isArray(messages) || messages.length === 0) throw invalid('messages', 'a non-empty array of messages', messages);
  for (let i = 0; i < messages.length; i++) validateMessage(messages[i], i);
}

function validateMessage(m: Json | undefined, i: number): void {
  if (!isObject(m)) throw invalid(`messages[${i}]`, 'a message object with a "role"', m);
  const role = m.role;
  switch (role) {
    case 'system':
    case 'developer':
    case 'user':
      validateContent(m, i, role, false);
      break;
    case 'assistant': {
      const calls = m.tool_calls;
      if (isPresent(calls)) validateToolCalls(calls, i);
      if (isPresent(m.function_call)) validateFunctionCall(m.function_call, `messages[${i}].function_call`);
      if (isPresent(m.audio) && !(isObject(m.audio) && typeof m.audio.id === 'string')) throw invalid(`messages[${i}].audio`, 'an object {"id": string}', m.audio);
      const answered = (Array.isArray(calls) && calls.length > 0) || isPresent(m.function_call) || isPresent(m.audio);
      validateContent(m, i, role, answered);
      if (isPresent(m.refusal) && typeof m.refusal !== 'string') throw invalid(`messages[${i}].refusal`, 'a string', m.refusal);
      if (isPresent(m.reasoning_content) && typeof m.reasoning_content !== 'string') {
        throw invalid(`messages[${i}].reasoning_content`, 'a string', m.reasoning_content);
      }
      if (isPresent(m.thinking_blocks)) {
        const blocks = m.thinking_blocks;
        if (!Array.isArray(blocks)) throw invalid(`messages[${i}].thinking_blocks`, 'an array of objects', blocks);
        for (let j = 0; j < blocks.length; j++) {
          if (!isObject(blocks[j])) throw invalid(`messages[${i}].thinking_blocks[${j}]`, 'an object', blocks[j]);
        }
      }
      break;
    }
    case 'tool':
      if (typeof m.tool_call_id !== 'string') throw invalid(`messages[${i}].tool_call_id`, 'a string (the id of the tool call answered)', m.tool_call_id);
      validateContent(m, i, role, false);
      if (isPresent(m.is_error) && typeof m.is_error !== 'boolean') throw invalid(`messages[${i}].is_error`, 'a boolean', m.is_error);
      if (isPresent(m.cache_control) && !isObject(m.cache_control)) throw invalid(`messages[${i}].cache_control`, 'an object', m.cache_control);
      break;
    case 'function': // OpenAI's deprecated form of a tool message; still accepted there, so here
      if (typeof m.name !== 'string') throw invalid(`messages[${i}].name`, 'a string (the function\'s name)', m.name);
      if (m.content !== null && typeof m.content !== 'string') throw invalid(`messages[${i}].content`, 'a string or null', m.content);
      break;
    default:
      throw invalid(`messages[${i}].role`, ROLES, role);
  }
  if (isPresent(m.name) && typeof m.name !== 'string') throw invalid(`messages[${i}].name`, 'a string', m.name);
}

type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool';

/** What `content` may be, by role, for the refusal's wording. */
const CONTENT: Record<Role, string> = {
  system: 'a string or a non-empty array of text parts',
  developer: 'a string or a non-empty array of text parts',
  user: 'a string or a non-empty array of content parts',
  assistant: 'a string, an array of content parts, or null when the message has tool_calls',
  tool: 'a string or a non-empty array of content parts',
};

/** `content`: a string, or an array of parts; null (or absent) only for an assistant that called a tool. */
function validateContent(m: JsonObject, i: number, role: Role, mayBeEmpty: boolean): void {
  const content = m.content;
  if (typeof content === 'string') return;
  if (Array.isArray(content)) {
    // An assistant's may be empty: a turn of only thinking, as the Anthropic route carries it.
    if (content.length === 0 && role !== 'assistant') throw invalid(`messages[${i}].content`, CONTENT[role], content);
    for (let j = 0; j < content.length; j++) validatePart(content[j], i, j, role);
    return;
  }
  if (mayBeEmpty && (content === null || content === undefined)) return;
  throw invalid(`messages[${i}].content`, CONTENT[role], content);
}

/** Part types, by role, for the refusal's wording. */
const PARTS: Record<Role, string> = {
  system: 'a text part ("type": "text")',
  developer: 'a text part ("type": "text")',
  user: 'one of "text", "image_url", "input_audio", "file"',
  assistant: 'one of "text", "refusal"',
  tool: 'one of "text", "image_url", "file"',
};

/**
 * Anthropic's own block types, which the Anthropic route carries into the canonical request as they are (search
 * results, server tool use and its results): they pass in user, assistant and tool content.
 */
const ANTHROPIC_BLOCKS = new Set([
  'search_result',
  'server_tool_use',
  'web_search_tool_result',
  'web_fetch_tool_result',
  'code_execution_tool_result',
  'bash_code_execution_tool_result',
  'text_editor_code_execution_tool_result',
  'tool_search_tool_result',
  'mcp_tool_use',
  'mcp_tool_result',
  'container_upload',
]);

function validatePart(p: Json | undefined, i: number, j: number, role: Role): void {
  if (!isObject(p)) throw invalid(`messages[${i}].content[${j}]`, 'a content part object with a "type"', p);
  const type = p.type;
  let allowed: boolean;
  switch (type) {
    case 'text':
      allowed = true;
      if (typeof p.text !== 'string') throw invalid(`messages[${i}].content[${j}].text`, 'a string', p.text);
      break;
    case 'image_url':
      allowed = role === 'user' || role === 'tool';
      if (allowed) validateImage(p.image_url, i, j);
      break;
    case 'input_audio':
      allowed = role === 'user';
      if (allowed) validateAudio(p.input_audio, i, j);
      break;
    case 'file':
      allowed = role === 'user' || role === 'tool';
      if (allowed) validateFile(p, i, j);
      break;
    case 'refusal':
      allowed = role === 'assistant';
      if (allowed && typeof p.refusal !== 'string') throw invalid(`messages[${i}].content[${j}].refusal`, 'a string', p.refusal);
      break;
    default:
      allowed = typeof type === 'string' && role !== 'system' && role !== 'developer' && (nativeBlocks || ANTHROPIC_BLOCKS.has(type));
  }
  if (!allowed) {
    throw invalid(`messages[${i}].content[${j}].type`, `${PARTS[role]} in a ${role} message`, type);
  }
  if (isPresent(p.cache_control) && !isObject(p.cache_control)) {
    throw invalid(`messages[${i}].content[${j}].cache_control`, 'an object', p.cache_control);
  }
}

function validateImage(image: Json | undefined, i: number, j: number): void {
  if (!isObject(image)) throw invalid(`messages[${i}].content[${j}].image_url`, 'an object {"url": string}', image);
  if (typeof image.url !== 'string' || image.url === '') {
    throw invalid(`messages[${i}].content[${j}].image_url.url`, 'a non-empty string (an http(s) or data: URL)', image.url);
  }
  const detail = image.detail;
  if (isPresent(detail) && detail !== 'auto' && detail !== 'low' && detail !== 'high') {
    throw invalid(`messages[${i}].content[${j}].image_url.detail`, 'one of "auto", "low", "high"', detail);
  }
}

function validateAudio(audio: Json | undefined, i: number, j: number): void {
  if (!isObject(audio)) throw invalid(`messages[${i}].content[${j}].input_audio`, 'an object {"data": base64 string, "format": "wav" or "mp3"}', audio);
  if (typeof audio.data !== 'string') throw invalid(`messages[${i}].content[${j}].input_audio.data`, 'a string (base64 audio)', audio.data);
  if (audio.format !== 'wav' && audio.format !== 'mp3') throw invalid(`messages[${i}].content[${j}].input_audio.format`, 'one of "wav", "mp3"', audio.format);
}

/** A file by its data or its id; the Anthropic route's documents also carry the whole block (anthropic_document). */
function validateFile(p: JsonObject, i: number, j: number): void {
  const file = p.file;
  if (!isObject(file)) throw invalid(`messages[${i}].content[${j}].file`, 'an object with "file_data" or "file_id"', file);
  for (const key of FILE_FIELDS) {
    const v = file[key];
    if (v !== undefined && typeof v !== 'string') throw invalid(`messages[${i}].content[${j}].file.${key}`, 'a string', v);
  }
  if (file.file_data === undefined && file.file_id === undefined && !isObject(p.anthropic_document)) {
    throw invalid(`messages[${i}].content[${j}].file`, 'an object with "file_data" or "file_id"', file);
  }
}

const FILE_FIELDS = ['file_data', 'file_id', 'filename'] as const;

function validateToolCalls(calls: Json, i: number): void {
  if (!Array.isArray(calls)) throw invalid(`messages[${i}].tool_calls`, 'an array of tool calls', calls);
  for (let j = 0; j < calls.length; j++) {
    const c = calls[j];
    if (!isObject(c)) throw invalid(`messages[${i}].tool_calls[${j}]`, 'an object {"id", "type": "function", "function": {"name", "arguments"}}', c);
    if (typeof c.id !== 'string') throw invalid(`messages[${i}].tool_calls[${j}].id`, 'a string', c.id);
    if (c.type === 'function') {
      const fn = c.function;
      if (!isObject(fn)) throw invalid(`messages[${i}].tool_calls[${j}].function`, 'an object {"name": string, "arguments": string}', fn);
      if (typeof fn.name !== 'string') throw invalid(`messages[${i}].tool_calls[${j}].function.name`, 'a string', fn.name);
      if (typeof fn.arguments !== 'string') {
        throw invalid(`messages[${i}].tool_calls[${j}].function.arguments`, 'a string (the arguments as JSON text)', fn.arguments);
      }
    } else if (c.type === 'custom') {
      const custom = c.custom;
      if (!isObject(custom)) throw invalid(`messages[${i}].tool_calls[${j}].custom`, 'an object {"name", "input"}', custom);
      if (typeof custom.name !== 'string') throw invalid(`messages[${i}].tool_calls[${j}].custom.name`, 'a string', custom.name);
      if (typeof custom.input !== 'string') throw invalid(`messages[${i}].tool_calls[${j}].custom.input`, 'a string', custom.input);
    } else {
      throw invalid(`messages[${i}].tool_calls[${j}].type`, '"function"', c.type);
    }
    if (isPresent(c.extra_content) && !isObject(c.extra_content)) throw invalid(`messages[${i}].tool_calls[${j}].extra_content`, 'an object', c.extra_content);
    if (isPresent(c.cache_control) && !isObject(c.cache_control)) throw invalid(`messages[${i}].tool_calls[${j}].cache_control`, 'an object', c.cache_control);
  }
}

/** The legacy `function_call` of an assistant message: its name, and its arguments as JSON text. */
function validateFunctionCall(fn: Json | undefined, where: string): void {
  if (!isObject(fn)) throw invalid(where, 'an object {"name": string, "arguments": string}', fn);
  if (typeof fn.name !== 'string') throw invalid(`${where}.name`, 'a string', fn.name);
  if (typeof fn.arguments !== 'string') throw invalid(`${where}.arguments`, 'a string (the arguments as JSON text)', fn.arguments);
}

// --- parameters ---------------------------------------------------------------------------------------------------

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

function validateTools(tools: Json): void {
  if (!Array.isArray(tools)) throw invalid('tools', 'an array of tools', tools);
  for (let i = 0; i < tools.length; i++) {
    const t = tools[i];
    if (!isObject(t)) throw invalid(`tools[${i}]`, 'an object {"type": "function", "function": {...}}', t);
    if (t.type === 'function') {
      const fn = t.function;
      if (!isObject(fn)) throw invalid(`tools[${i}].function`, 'an object {"name", "description", "parameters"}', fn);
      if (typeof fn.name !== 'string' || !TOOL_NAME.test(fn.name)) {
        throw invalid(`tools[${i}].function.name`, '1 to 64 letters, digits, "_" or "-"', fn.name);
      }
      if (isPresent(fn.description) && typeof fn.description !== 'string') throw invalid(`tools[${i}].function.description`, 'a string', fn.description);
      if (isPresent(fn.parameters) && !isObject(fn.parameters)) throw invalid(`tools[${i}].function.parameters`, 'an object (a JSON Schema)', fn.parameters);
      if (isPresent(fn.strict) && typeof fn.strict !== 'boolean') throw invalid(`tools[${i}].function.strict`, 'a boolean', fn.strict);
    } else if (t.type === 'custom') {
      const custom = t.custom;
      if (!isObject(custom)) throw invalid(`tools[${i}].custom`, 'an object {"name", ...}', custom);
      if (typeof custom.name !== 'string' || !TOOL_NAME.test(custom.name)) {
        throw invalid(`tools[${i}].custom.name`, '1 to 64 letters, digits, "_" or "-"', custom.name);
      }
    } else if (!(typeof t.type === 'string' && typeof t.name === 'string' && t.function === undefined)) {
      // What passes here is an Anthropic server tool ({"type": "web_search_20250305", "name": ...}), carried as is.
      throw invalid(`tools[${i}].type`, '"function"', t.type);
    }
    if (isPresent(t.cache_control) && !isObject(t.cache_control)) throw invalid(`tools[${i}].cache_control`, 'an object', t.cache_control);
  }
}

const TOOL_CHOICE = '"none", "auto", "required" or {"type": "function", "function": {"name": string}}';

function validateToolChoice(c: Json): void {
  if (c === 'none' || c === 'auto' || c === 'required') return;
  if (!isObject(c)) throw invalid('tool_choice', TOOL_CHOICE, c);
  if (c.type === 'function') {
    if (!isObject(c.function)) throw invalid('tool_choice.function', 'an object {"name": string}', c.function);
    if (typeof c.function.name !== 'string') throw invalid('tool_choice.function.name', 'a string', c.function.name);
  } else if (c.type === 'custom') {
    if (!isObject(c.custom) || typeof c.custom.name !== 'string') throw invalid('tool_choice.custom', 'an object {"name": string}', c.custom);
  } else if (c.type === 'allowed_tools') {
    if (!isObject(c.allowed_tools) || !Array.isArray(c.allowed_tools.tools)) {
      throw invalid('tool_choice.allowed_tools', 'an object {"mode": "auto" or "required", "tools": [...]}', c.allowed_tools);
    }
  } else {
    throw invalid('tool_choice.type', '"function"', c.type);
  }
}

const SCHEMA_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

function validateResponseFormat(f: Json): void {
  if (!isObject(f)) throw invalid('response_format', 'an object {"type": "text", "json_object" or "json_schema"}', f);
  if (f.type === 'text' || f.type === 'json_object') return;
  if (f.type !== 'json_schema') throw invalid('response_format.type', 'one of "text", "json_object", "json_schema"', f.type);
  const s = f.json_schema;
  if (!isObject(s)) throw invalid('response_format.json_schema', 'an object {"name", "schema", "strict"}', s);
  if (typeof s.name !== 'string' || !SCHEMA_NAME.test(s.name)) throw invalid('response_format.json_schema.name', '1 to 64 letters, digits, "_" or "-"', s.name);
  if (isPresent(s.schema) && !isObject(s.schema)) throw invalid('response_format.json_schema.schema', 'an object (a JSON Schema)', s.schema);
  if (isPresent(s.strict) && typeof s.strict !== 'boolean') throw invalid('response_format.json_schema.strict', 'a boolean', s.strict);
  if (isPresent(s.description) && typeof s.description !== 'string') throw invalid('response_format.json_schema.description', 'a string', s.description);
}

function validateStop(stop: Json): void {
  if (typeof stop === 'string') return;
  if (!Array.isArray(stop) || stop.length > MAX_STOP) throw invalid('stop', `a string or an array of at most ${MAX_STOP} strings`, stop);
  for (let i = 0; i < stop.length; i++) if (typeof stop[i] !== 'string') throw invalid(`stop[${i}]`, 'a string', stop[i]);
}

function validateLogitBias(bias: Json): void {
  if (!isObject(bias)) throw invalid('logit_bias', 'an object mapping token ids to numbers from -100 to 100', bias);
  for (const token in bias) {
    const v = bias[token];
    if (typeof v !== 'number' || v < -100 || v > 100) throw invalid(`logit_bias.${token}`, 'a number from -100 to 100', v);
  }
}

/** The legacy `functions` list: tools before tools. */
function validateFunctions(fns: Json): void {
  if (!Array.isArray(fns)) throw invalid('functions', 'an array of functions', fns);
  for (let i = 0; i < fns.length; i++) {
    const fn = fns[i];
    if (!isObject(fn)) throw invalid(`functions[${i}]`, 'an object {"name", "description", "parameters"}', fn);
    if (typeof fn.name !== 'string' || !TOOL_NAME.test(fn.name)) throw invalid(`functions[${i}].name`, '1 to 64 letters, digits, "_" or "-"', fn.name);
    if (isPresent(fn.parameters) && !isObject(fn.parameters)) throw invalid(`functions[${i}].parameters`, 'an object (a JSON Schema)', fn.parameters);
  }
}

function validateFunctionChoice(c: Json): void {
  if (c === 'none' || c === 'auto') return;
  if (!isObject(c) || typeof c.name !== 'string') throw invalid('function_call', '"none", "auto" or {"name": string}', c);
}

function number(request: JsonObject, name: string, min: number, max: number, integer: boolean, expected: string): void {
  const v = request[name];
  if (v === undefined || v === null) return;
  if (typeof v !== 'number' || v < min || v > max || (integer && !Number.isInteger(v))) throw invalid(name, expected, v);
}

function optional(request: JsonObject, name: string, type: 'boolean' | 'string'): void {
  const v = request[name];
  if (v !== undefined && v !== null && typeof v !== type) throw invalid(name, type === 'boolean' ? 'a boolean' : 'a string', v);
}

/** OpenAI takes null for any optional parameter, as if it were absent. */
function isPresent(v: Json | undefined): v is Json {
  return v !== undefined && v !== null;
}

// --- depth --------------------------------------------------------------------------------------------------------

/**
 * No value in the request nests deeper than MAX_REQUEST_DEPTH. JSON.parse copes with any depth, but the recursive
 * code after it (JSON.stringify, a plugin's parser) does not. Checked last, by top-level field and by message, so
 * that the refusal names where the nesting is.
 */
function validateDepth(request: JsonObject): void {
  for (const key in request) {
    const v = request[key];
    if (key === 'messages' && Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (nestsDeeper(v[i], MAX_REQUEST_DEPTH - 2)) throw tooDeep(`messages[${i}]`);
    } else if (nestsDeeper(v, MAX_REQUEST_DEPTH - 1)) {
      throw tooDeep(key);
    }
  }
}

/** True when `v` has more than `levels` levels of objects and arrays. Recurses at most `levels + 1` deep. */
function nestsDeeper(v: Json | undefined, levels: number): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (levels <= 0) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (nestsDeeper(v[i], levels - 1)) return true;
    return false;
  }
  for (const key in v) if (nestsDeeper(v[key], levels - 1)) return true;
  return false;
}

// --- refusals -----------------------------------------------------------------------------------------------------

function invalid(param: string, expected: string, got: Json | undefined): HeimdallError {
  const message = got === undefined ? `"${param}" is missing: expected ${expected}` : `"${param}" must be ${expected}, got ${describe(got)}`;
  return refusal(param, message);
}

function tooDeep(param: string): HeimdallError {
  return refusal(param, `"${param}" nests objects and arrays deeper than the ${MAX_REQUEST_DEPTH} levels a request may have`);
}

function refusal(param: string, message: string): HeimdallError {
  const err = Errors.BAD_REQUEST(message);
  err.param = param;
  return err;
}

/** What came instead, short: the value itself when it is small, its kind otherwise. */
function describe(v: Json): string {
  if (Array.isArray(v)) return v.length === 0 ? 'an empty array' : 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return v.length > 40 ? `a string (${JSON.stringify(v.slice(0, 40))}...)` : JSON.stringify(v);
  return String(v);
}
