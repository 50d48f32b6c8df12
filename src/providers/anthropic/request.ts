/**
 * The canonical (OpenAI chat) request as an Anthropic Messages request. Every field is translated, passed on, or
 * handed to `leaveOut` (a 400 naming it, or with drop_unsupported, left out and listed): the table is in
 * docs/abi.md, "Canonical extensions". The extensions described there carry what an Anthropic client
 * sent that OpenAI has no word for (cache_control, thinking blocks, documents, system blocks), so a Messages request
 * that went through inbound.ts comes back out of here as it came in.
 *
 * System and developer messages become `system` (a string, or blocks when any message has parts); tool messages
 * become user turns of tool_result blocks; consecutive turns of one role merge (the Messages API wants them
 * alternating). A part or top-level field that is not OpenAI's is Anthropic's, and passes as it is.
 */
import { Errors } from '../../errors.js';
import type { Json, JsonObject } from '../../plugins/plugin.js';
import { isObject, maxTokens, parseArguments, parseDataUrl, readToolChoice, stopSequences, type LeaveOut } from '../canonical.js';
import { JSON_OUTPUT_TOOL } from './wire.js';

export interface MessagesRequestOptions {
  /** Sent as max_tokens when the request has neither max_tokens nor max_completion_tokens. */
  defaultMaxTokens: number;
  stream: boolean;
  provider: string;
  leaveOut: LeaveOut;
}

type Block = JsonObject;
interface Turn {
  role: 'user' | 'assistant';
  /** A string while the turn is one message with string content (as the client wrote it), blocks once merged. */
  content: string | Block[];
}

/** OpenAI's top-level request fields: each is translated below, a no-op at its default, or left out. */
const OPENAI_FIELDS = new Set([
  'model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'n', 'stop', 'stream', 'stream_options',
  'presence_penalty', 'frequency_penalty', 'logit_bias', 'logprobs', 'top_logprobs', 'seed', 'user', 'tools', 'tool_choice',
  'parallel_tool_calls', 'response_format', 'reasoning_effort', 'service_tier', 'store', 'metadata', 'modalities', 'audio',
  'prediction', 'web_search_options', 'verbosity', 'prompt_cache_key', 'safety_identifier', 'functions', 'function_call',
]);

/** The gateway's own fields: read by the pipeline, never sent upstream. */
const GATEWAY_FIELDS = new Set(['fallbacks']);

/** Anthropic's budget for each reasoning_effort (its minimum is 1024). */
const THINKING_BUDGETS: Record<string, number> = { minimal: 1024, low: 2048, medium: 8192, high: 24576 };

export function toMessagesRequest(request: JsonObject, model: string, options: MessagesRequestOptions): JsonObject {
  const { leaveOut } = options;
  const out: JsonObject = { model };
  const { system, turns } = readConversation(request, leaveOut);
  out.max_tokens = maxTokens(request) ?? options.defaultMaxTokens;
  out.messages = turns.map((t) => ({ role: t.role, content: t.content }));
  if (system !== undefined) out.system = system;

  for (const name of ['temperature', 'top_p'] as const) {
    if (typeof request[name] === 'number') out[name] = request[name];
  }
  const stop = stopSequences(request);
  if (stop !== undefined) out.stop_sequences = stop;

  // Parameters at their defaults ask for nothing; anything else Anthropic can't do is left out.
  if (isSet(request.n) && request.n !== 1) leaveOut('n', 'Anthropic answers one choice per request');
  for (const name of ['presence_penalty', 'frequency_penalty'] as const) {
    if (isSet(request[name]) && request[name] !== 0) leaveOut(name, 'Anthropic has no token penalties');
  }
  if (isObject(request.logit_bias) && Object.keys(request.logit_bias).length > 0) leaveOut('logit_bias', 'Anthropic has no logit bias');
  if (request.logprobs === true) leaveOut('logprobs', 'Anthropic returns no log probabilities');
  if (isSet(request.top_logprobs) && request.top_logprobs !== 0) leaveOut('top_logprobs', 'Anthropic returns no log probabilities');
  if (isSet(request.seed)) leaveOut('seed', 'Anthropic has no seeded sampling');
  if (request.store === true) leaveOut('store', 'Anthropic does not store completions');
  if (Array.isArray(request.modalities) && request.modalities.some((m) => m !== 'text')) leaveOut('modalities', 'Anthropic answers text only');
  for (const name of ['audio', 'prediction', 'web_search_options', 'verbosity', 'prompt_cache_key', 'functions', 'function_call'] as const) {
    if (isSet(request[name])) leaveOut(name, WHY[name]);
  }

  const metadata = readMetadata(request, leaveOut);
  if (metadata !== undefined) out.metadata = metadata;
  if (isSet(request.service_tier)) {
    // Anthropic's values pass; OpenAI's "default" (no priority capacity) is Anthropic's standard_only.
    if (request.service_tier === 'auto' || request.service_tier === 'standard_only') out.service_tier = request.service_tier;
    else if (request.service_tier === 'default') out.service_tier = 'standard_only';
    else leaveOut('service_tier', `Anthropic has no ${JSON.stringify(request.service_tier)} tier`);
  }

  const thinking = readThinking(request, out, options);
  if (thinking !== undefined) out.thinking = thinking;

  const tools = readTools(request, leaveOut);
  const toolChoice = readChoice(request, tools.length > 0);
  if (tools.length > 0) out.tools = tools;
  if (toolChoice !== undefined) out.tool_choice = toolChoice;
  structuredOutput(request, out, leaveOut);

  // What is left is not OpenAI's and not the gateway's: an Anthropic field (top_k, container, mcp_servers...).
  for (const [name, value] of Object.entries(request)) {
    if (OPENAI_FIELDS.has(name) || GATEWAY_FIELDS.has(name) || name === 'thinking' || value === undefined) continue;
    out[name] = value;
  }
  if (options.stream) out.stream = true;
  return out;
}

const WHY: Record<'audio' | 'prediction' | 'web_search_options' | 'verbosity' | 'prompt_cache_key' | 'functions' | 'function_call', string> = {
  audio: 'Anthropic answers text only',
  prediction: 'Anthropic has no predicted outputs',
  web_search_options: 'use Anthropic\'s web_search server tool instead',
  verbosity: 'Anthropic has no verbosity setting',
  prompt_cache_key: 'Anthropic caches by cache_control breakpoints instead',
  functions: 'the legacy "functions" field is not translated; use "tools"',
  function_call: 'the legacy "function_call" field is not translated; use "tool_choice"',
};

/** Present and not null: OpenAI clients send null for "not set". */
function isSet(v: Json | undefined): boolean {
  return v !== undefined && v !== null;
}

// --- messages --------------------------------------------------------------------------------------------------

function readConversation(request: JsonObject, leaveOut: LeaveOut): { system: string | Block[] | undefined; turns: Turn[] } {
  const messages = Array.isArray(request.messages) ? request.messages : [];
  const systems: (string | Block[])[] = [];
  const turns: Turn[] = [];
  const push = (role: Turn['role'], content: string | Block[]) => {
    const last = turns.at(-1);
    if (last === undefined || last.role !== role) {
      turns.push({ role, content });
      return;
    }
    last.content = [...asBlocks(last.content), ...asBlocks(content)];
  };
  messages.forEach((m, i) => {
    const where = `messages[${i}]`;
    if (!isObject(m)) throw Errors.BAD_REQUEST(`${where} must be an object`);
    if (isSet(m.name)) leaveOut(`${where}.name`, 'Anthropic has no participant names');
    switch (m.role) {
      case 'system':
      case 'developer':
        systems.push(systemContent(m.content, where));
        break;
      case 'user':
        push('user', typeof m.content === 'string' ? m.content : parts(m.content, where, leaveOut));
        break;
      case 'assistant':
        push('assistant', assistantContent(m, where, leaveOut));
        break;
      case 'tool':
        push('user', [toolResult(m, where, leaveOut)]);
        break;
      default:
        throw Errors.BAD_REQUEST(`${where}: unsupported role ${JSON.stringify(m.role)}`);
    }
  });
  return { system: joinSystem(systems), turns };
}

function asBlocks(content: string | Block[]): Block[] {
  return typeof content === 'string' ? [{ type: 'text', text: content }] : content;
}

/** One system string stays a string (several join with blank lines); text parts become blocks, one per part. */
function joinSystem(systems: (string | Block[])[]): string | Block[] | undefined {
  if (systems.length === 0) return undefined;
  if (systems.every((s) => typeof s === 'string')) return systems.join('\n\n');
  return systems.flatMap((s) => (typeof s === 'string' ? (s === '' ? [] : [{ type: 'text', text: s }]) : s));
}

function systemContent(content: Json | undefined, where: string): string | Block[] {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw Errors.BAD_REQUEST(`${where}.content must be a string or an array of parts`);
  return content.map((p, j) => {
    if (!isObject(p) || p.type !== 'text' || typeof p.text !== 'string') throw Errors.BAD_REQUEST(`${where}.content[${j}]: only text is allowed in a system message`);
    return textBlock(p);
  });
}

/** Thinking blocks first (Anthropic wants them ahead of the text they led to), then the content, then tool calls. */
function assistantContent(m: JsonObject, where: string, leaveOut: LeaveOut): string | Block[] {
  const thinking: Block[] = [];
  if (Array.isArray(m.thinking_blocks)) {
    m.thinking_blocks.forEach((b, j) => {
      if (!isObject(b) || (b.type !== 'thinking' && b.type !== 'redacted_thinking')) {
        throw Errors.BAD_REQUEST(`${where}.thinking_blocks[${j}] must be an Anthropic thinking or redacted_thinking block`);
      }
      thinking.push(b);
    });
  } else if (typeof m.reasoning_content === 'string' && m.reasoning_content !== '') {
    // Without its signature Anthropic refuses thinking text back.
    leaveOut(`${where}.reasoning_content`, 'Anthropic takes earlier thinking back only as signed thinking_blocks');
  }
  for (const name of ['audio', 'function_call'] as const) {
    if (isSet(m[name])) leaveOut(`${where}.${name}`, 'Anthropic has no equivalent in an assistant turn');
  }
  const calls = Array.isArray(m.tool_calls) ? m.tool_calls.map((c, j) => toolUse(c, `${where}.tool_calls[${j}]`)) : [];
  const refusal: Block[] = typeof m.refusal === 'string' && m.refusal !== '' ? [{ type: 'text', text: m.refusal }] : [];

  if (typeof m.content === 'string' && thinking.length === 0 && calls.length === 0 && refusal.length === 0) return m.content;
  let content: Block[] = [];
  if (typeof m.content === 'string') content = [{ type: 'text', text: m.content }];
  else if (Array.isArray(m.content)) content = parts(m.content, where, leaveOut);
  else if (m.content !== null && m.content !== undefined) throw Errors.BAD_REQUEST(`${where}.content must be a string or an array of parts`);
  // Anthropic refuses empty text blocks; OpenAI clients send "" beside tool calls.
  content = content.filter((b) => b.type !== 'text' || b.text !== '' || b.cache_control !== undefined);
  return [...thinking, ...content, ...refusal, ...calls];
}

function toolUse(c: Json, where: string): Block {
  if (!isObject(c) || !isObject(c.function) || typeof c.function.name !== 'string') {
    throw Errors.BAD_REQUEST(`${where} must be {"id", "type": "function", "function": {"name", "arguments"}}`);
  }
  const block: Block = { type: 'tool_use', id: typeof c.id === 'string' ? c.id : '', name: c.function.name, input: parseArguments(c.function.arguments, where) };
  if (c.cache_control !== undefined) block.cache_control = c.cache_control;
  return block;
}

function toolResult(m: JsonObject, where: string, leaveOut: LeaveOut): Block {
  if (typeof m.tool_call_id !== 'string') throw Errors.BAD_REQUEST(`${where}: a tool message needs "tool_call_id"`);
  const block: Block = { type: 'tool_result', tool_use_id: m.tool_call_id };
  if (Array.isArray(m.content)) block.content = parts(m.content, where, leaveOut);
  else if (typeof m.content === 'string' && m.content !== '') block.content = m.content;
  else if (m.content !== undefined && m.content !== null && m.content !== '') throw Errors.BAD_REQUEST(`${where}.content must be a string or an array of parts`);
  if (typeof m.is_error === 'boolean') block.is_error = m.is_error;
  if (m.cache_control !== undefined) block.cache_control = m.cache_control;
  return block;
}

/** OpenAI parts become blocks; a part of a type OpenAI doesn't have is an Anthropic block, and passes. */
function parts(content: Json | undefined, where: string, leaveOut: LeaveOut): Block[] {
  if (!Array.isArray(content)) throw Errors.BAD_REQUEST(`${where}.content must be a string or an array of parts`);
  const out: Block[] = [];
  content.forEach((p, j) => {
    const at = `${where}.content[${j}]`;
    if (!isObject(p)) throw Errors.BAD_REQUEST(`${at} must be an object`);
    switch (p.type) {
      case 'text':
        if (typeof p.text !== 'string') throw Errors.BAD_REQUEST(`${at}.text must be a string`);
        out.push(textBlock(p));
        return;
      case 'refusal':
        if (typeof p.refusal === 'string') out.push({ type: 'text', text: p.refusal });
        return;
      case 'image_url':
        out.push(withCache(imageBlock(p, at, leaveOut), p));
        return;
      case 'file': {
        const doc = documentBlock(p, at, leaveOut);
        if (doc !== undefined) out.push(withCache(doc, p));
        return;
      }
      case 'input_audio':
        leaveOut(at, 'Anthropic takes no audio input');
        return;
      default:
        out.push(p);
    }
  });
  return out;
}

/** An OpenAI text part has only type and text: any other field (cache_control, citations) is Anthropic's. */
function textBlock(p: JsonObject): Block {
  return { ...p };
}

function withCache(block: Block, part: JsonObject): Block {
  if (part.cache_control !== undefined) block.cache_control = part.cache_control;
  return block;
}

function imageBlock(p: JsonObject, at: string, leaveOut: LeaveOut): Block {
  const image = isObject(p.image_url) ? p.image_url : undefined;
  const url = image !== undefined ? image.url : p.image_url;
  if (typeof url !== 'string') throw Errors.BAD_REQUEST(`${at}.image_url.url must be a string`);
  if (image !== undefined && isSet(image.detail) && image.detail !== 'auto') leaveOut(`${at}.image_url.detail`, 'Anthropic has no image detail setting');
  const data = parseDataUrl(url);
  if (data !== undefined) return { type: 'image', source: { type: 'base64', media_type: data.mediaType, data: data.base64 } };
  return { type: 'image', source: { type: 'url', url } };
}

/**
 * OpenAI's file part as a document block. An Anthropic document that the file part can't say (a URL, text or
 * content source, citations, context) rides along whole as `anthropic_document`, and is what is sent.
 */
function documentBlock(p: JsonObject, at: string, leaveOut: LeaveOut): Block | undefined {
  if (isObject(p.anthropic_document)) return { ...p.anthropic_document };
  const file = isObject(p.file) ? p.file : {};
  if (typeof file.file_data !== 'string') {
    if (typeof file.file_id !== 'string') throw Errors.BAD_REQUEST(`${at}.file needs "file_data" (a data: URL)`);
    leaveOut(`${at}.file.file_id`, 'OpenAI file ids mean nothing to Anthropic; send file_data');
    return undefined;
  }
  const data = parseDataUrl(file.file_data);
  if (data === undefined) throw Errors.BAD_REQUEST(`${at}.file.file_data must be a base64 data: URL`);
  const block: Block = { type: 'document', source: { type: 'base64', media_type: data.mediaType, data: data.base64 } };
  if (typeof file.filename === 'string') block.title = file.filename;
  return block;
}

// --- everything else -------------------------------------------------------------------------------------------

/** Anthropic's metadata holds only user_id: OpenAI's safety_identifier or user, or the metadata's own. */
function readMetadata(request: JsonObject, leaveOut: LeaveOut): JsonObject | undefined {
  let metadata: JsonObject | undefined;
  if (isObject(request.metadata)) {
    const extra = Object.keys(request.metadata).filter((k) => k !== 'user_id');
    if (extra.length > 0) leaveOut('metadata', `Anthropic's metadata holds only user_id (not ${extra.join(', ')})`);
    else metadata = { ...request.metadata };
  }
  const ids = (['safety_identifier', 'user'] as const).filter((name) => typeof request[name] === 'string');
  for (const name of ids) {
    const id = request[name] as string;
    if (metadata?.user_id === undefined) metadata = { ...metadata, user_id: id };
    else if (metadata.user_id !== id) leaveOut(name, 'Anthropic takes one user id (metadata.user_id), and another was given');
  }
  return metadata;
}

/** Anthropic's `thinking` as given, or OpenAI's reasoning_effort as a thinking budget. */
function readThinking(request: JsonObject, out: JsonObject, options: MessagesRequestOptions): Json | undefined {
  const effort = request.reasoning_effort;
  if (request.thinking !== undefined && request.thinking !== null) {
    if (isSet(effort)) options.leaveOut('reasoning_effort', 'the request sets Anthropic\'s "thinking" as well');
    return request.thinking;
  }
  if (!isSet(effort) || effort === 'none') return undefined;
  const budget = typeof effort === 'string' ? THINKING_BUDGETS[effort] : undefined;
  if (budget === undefined) {
    options.leaveOut('reasoning_effort', `${JSON.stringify(effort)} has no Anthropic thinking budget`);
    return undefined;
  }
  // The budget must fit inside max_tokens: a client's own max_tokens is kept, the default grows to hold it.
  const max = out.max_tokens as number;
  if (maxTokens(request) === undefined) {
    if (max <= budget) out.max_tokens = budget + options.defaultMaxTokens;
    return { type: 'enabled', budget_tokens: budget };
  }
  if (max <= 1024) {
    options.leaveOut('reasoning_effort', 'Anthropic thinking needs max_tokens above 1024');
    return undefined;
  }
  return { type: 'enabled', budget_tokens: Math.min(budget, max - 1) };
}

/**
 * OpenAI function tools become Anthropic tools; a tool beside type/function keeps its Anthropic fields
 * (cache_control...); a tool of a type that is not OpenAI's is an Anthropic server tool, and passes.
 */
function readTools(request: JsonObject, leaveOut: LeaveOut): Block[] {
  if (!isSet(request.tools)) return [];
  if (!Array.isArray(request.tools)) throw Errors.BAD_REQUEST('"tools" must be an array');
  const out: Block[] = [];
  request.tools.forEach((t, i) => {
    if (!isObject(t)) throw Errors.BAD_REQUEST(`tools[${i}] must be an object`);
    if (t.type === 'custom') {
      leaveOut(`tools[${i}]`, 'Anthropic has no free-form (custom) tools');
      return;
    }
    if (t.type !== undefined && t.type !== 'function') {
      out.push(t);
      return;
    }
    const fn = isObject(t.function) ? t.function : undefined;
    if (fn === undefined || typeof fn.name !== 'string') {
      throw Errors.BAD_REQUEST(`tools[${i}] must be {"type": "function", "function": {"name", "description", "parameters"}}`);
    }
    if (fn.name === JSON_OUTPUT_TOOL) {
      // The name the gateway gives response_format's forced tool: a use of it comes back as the message's text.
      throw Errors.BAD_REQUEST(`tools[${i}]: the tool name ${JSON_OUTPUT_TOOL} is reserved by the gateway; rename the tool`);
    }
    const { type: _type, function: _fn, ...anthropic } = t;
    const tool: Block = { name: fn.name, input_schema: isObject(fn.parameters) ? fn.parameters : { type: 'object', properties: {} }, ...anthropic };
    if (typeof fn.description === 'string') tool.description = fn.description;
    if (typeof fn.strict === 'boolean') tool.strict = fn.strict;
    out.push(tool);
  });
  return out;
}

function readChoice(request: JsonObject, hasTools: boolean): Block | undefined {
  const choice = readToolChoice(request);
  let out: Block | undefined;
  if (choice?.kind === 'auto') out = { type: 'auto' };
  else if (choice?.kind === 'required') out = { type: 'any' };
  else if (choice?.kind === 'none') out = { type: 'none' };
  else if (choice?.kind === 'function') out = { type: 'tool', name: choice.name };
  // parallel_tool_calls at its default (true) only says something when a tool_choice carries it.
  if (out?.type !== 'none' && request.parallel_tool_calls === false && (hasTools || out !== undefined)) {
    out = { ...(out ?? { type: 'auto' }), disable_parallel_tool_use: true };
  } else if (out !== undefined && out.type !== 'none' && request.parallel_tool_calls === true) {
    out.disable_parallel_tool_use = false;
  }
  return out;
}

/**
 * response_format: "text" asks for nothing; json_schema and json_object become a tool the model must call, whose
 * input response.ts turns back into the message's text. A forced tool can't sit beside the client's own tools or
 * thinking (Anthropic refuses a forced choice with thinking), so there it is left out.
 */
function structuredOutput(request: JsonObject, out: JsonObject, leaveOut: LeaveOut): void {
  const format = request.response_format;
  if (!isSet(format)) return;
  if (!isObject(format) || format.type === 'text') return;
  if (format.type !== 'json_schema' && format.type !== 'json_object') {
    leaveOut('response_format', `Anthropic has no ${JSON.stringify(format.type)} output`);
    return;
  }
  if (out.tools !== undefined || out.tool_choice !== undefined || (isObject(out.thinking) && out.thinking.type !== 'disabled')) {
    leaveOut('response_format', 'on Anthropic it is a forced tool, which can\'t be combined with tools or thinking');
    return;
  }
  const spec = isObject(format.json_schema) ? format.json_schema : {};
  const schema = format.type === 'json_schema' && isObject(spec.schema) ? spec.schema : { type: 'object' };
  const about = [typeof spec.name === 'string' ? spec.name : undefined, typeof spec.description === 'string' ? spec.description : undefined].filter(Boolean);
  out.tools = [{ name: JSON_OUTPUT_TOOL, description: `Give the answer as this tool's input${about.length > 0 ? ` (${about.join(': ')})` : ''}.`, input_schema: schema }];
  out.tool_choice = { type: 'tool', name: JSON_OUTPUT_TOOL };
}
