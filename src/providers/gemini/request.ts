/**
 * The canonical (OpenAI chat) request as a Gemini generateContent request. Every field is translated, passed on
 * (it only concerns the gateway), or handed to `leaveOut` (a 400 naming it, or with drop_unsupported, left out and
 * listed); the field table is in docs/providers.md.
 *
 * System and developer messages become systemInstruction; assistant turns are role "model" with functionCall parts
 * (each with the thoughtSignature Gemini gave it, carried in `extra_content.google.thought_signature`); tool results
 * are functionResponse parts, named after the call they answer; images, files and audio are inlineData (data: URLs)
 * or fileData (other URLs). Sampling, logprobs, structured output and thinking go into generationConfig; tools into
 * functionDeclarations with their JSON Schema as it is (parametersJsonSchema).
 */
import { Errors } from '../../errors.js';
import type { Json, JsonObject } from '../../plugins/plugin.js';
import { isObject, maxTokens, parseArguments, parseDataUrl, readToolChoice, stopSequences, type LeaveOut } from '../canonical.js';

export interface GenerateContentOptions {
  /** The model the upstream knows: Gemini 3 models take a thinking level, earlier ones a thinking budget. */
  model: string;
  leaveOut: LeaveOut;
}

interface Content {
  role: 'user' | 'model';
  parts: JsonObject[];
}

/** Each reasoning_effort as a Gemini 2.x thinking budget (the values Google's own OpenAI endpoint uses). */
const THINKING_BUDGETS: Record<string, number> = { none: 0, minimal: 1024, low: 1024, medium: 8192, high: 24576 };
/** Gemini 3 takes the effort by name; it can't stop thinking altogether. */
const THINKING_LEVELS = new Set(['minimal', 'low', 'medium', 'high']);

const CACHE_WHY = 'Gemini caches prompts implicitly and has no cache_control';

/** Fields that only concern the gateway: the model is in the URL, stream picks the method, the rest is ours. */
const GATEWAY_FIELDS = new Set(['model', 'stream', 'stream_options', 'fallbacks']);

/** Fields translated below; every other top-level field is checked by `refuseUnexpressible` or left out by name. */
const TRANSLATED_FIELDS = new Set([
  'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'top_k', 'n', 'stop', 'presence_penalty',
  'frequency_penalty', 'seed', 'logprobs', 'top_logprobs', 'response_format', 'reasoning_effort', 'thinking', 'tools',
  'tool_choice', 'parallel_tool_calls',
]);

export function toGenerateContentRequest(request: JsonObject, options: GenerateContentOptions): JsonObject {
  const { leaveOut } = options;
  const { system, contents } = readConversation(request, leaveOut);
  const out: JsonObject = { contents: contents.map((c) => ({ role: c.role, parts: c.parts })) };
  if (system.length > 0) out.systemInstruction = { parts: [{ text: system.join('\n\n') }] };

  const config = generationConfig(request, options);
  if (Object.keys(config).length > 0) out.generationConfig = config;

  const tools = readTools(request, leaveOut);
  if (tools.declarations.length > 0) out.tools = [{ functionDeclarations: tools.declarations }];
  const calling = functionCallingConfig(request, tools.strict);
  if (calling !== undefined) out.toolConfig = { functionCallingConfig: calling };
  if (request.parallel_tool_calls === false) leaveOut('parallel_tool_calls', 'Gemini can\'t be held to one function call per turn');

  refuseUnexpressible(request, leaveOut);
  for (const [name, value] of Object.entries(request)) {
    if (!isSet(value) || GATEWAY_FIELDS.has(name) || TRANSLATED_FIELDS.has(name) || Object.hasOwn(WHY, name)) continue;
    leaveOut(name, 'the Gemini API has no such parameter');
  }
  return out;
}

/** Present and not null: OpenAI clients send null for "not set". */
function isSet(v: Json | undefined): boolean {
  return v !== undefined && v !== null;
}

// --- messages --------------------------------------------------------------------------------------------------

function readConversation(request: JsonObject, leaveOut: LeaveOut): { system: string[]; contents: Content[] } {
  const messages = Array.isArray(request.messages) ? request.messages : [];
  const system: string[] = [];
  const contents: Content[] = [];
  const toolNames = new Map<string, string>();
  const push = (role: Content['role'], parts: JsonObject[]) => {
    // A message whose every part was left out leaves no turn: Gemini refuses empty ones.
    if (parts.length === 0) return;
    const last = contents.at(-1);
    if (last !== undefined && last.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  messages.forEach((m, i) => {
    const where = `messages[${i}]`;
    if (!isObject(m)) throw Errors.BAD_REQUEST(`${where} must be an object`);
    if (isSet(m.name)) leaveOut(`${where}.name`, 'Gemini has no participant names');
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(systemText(m, where, leaveOut));
        break;
      case 'user':
        push('user', typeof m.content === 'string' ? [{ text: m.content }] : parts(m.content, where, leaveOut));
        break;
      case 'assistant':
        push('model', modelParts(m, where, leaveOut, toolNames));
        break;
      case 'tool':
        push('user', functionResponse(m, where, leaveOut, toolNames));
        break;
      default:
        throw Errors.BAD_REQUEST(`${where}: unsupported role ${JSON.stringify(m.role)}`);
    }
  });
  return { system, contents };
}

function systemText(m: JsonObject, where: string, leaveOut: LeaveOut): string {
  if (!isSet(m.content)) return '';
  if (typeof m.content === 'string') return m.content;
  if (!Array.isArray(m.content)) throw Errors.BAD_REQUEST(`${where}.content must be a string or an array of parts`);
  return m.content
    .map((p, j) => {
      const at = `${where}.content[${j}]`;
      if (!isObject(p) || p.type !== 'text' || typeof p.text !== 'string') throw Errors.BAD_REQUEST(`${at}: only text is allowed in a system message`);
      if (isSet(p.cache_control)) leaveOut(`${at}.cache_control`, CACHE_WHY);
      textExtras(p, at, leaveOut);
      return p.text;
    })
    .join('\n');
}

/**
 * An assistant turn: its text, then its function calls. Gemini's thought signatures go back where Gemini put them:
 * a call's on its functionCall part, the message's on its last text part. Earlier thinking is not sent: Gemini
 * takes it back only through those signatures (reasoning_content is accepted and not sent, as Google's own OpenAI
 * endpoint does); Anthropic's signed thinking_blocks mean nothing to it.
 */
function modelParts(m: JsonObject, where: string, leaveOut: LeaveOut, toolNames: Map<string, string>): JsonObject[] {
  if (Array.isArray(m.thinking_blocks) && m.thinking_blocks.length > 0) {
    leaveOut(`${where}.thinking_blocks`, 'Anthropic\'s signed thinking means nothing to Gemini');
  }
  for (const name of ['audio', 'function_call'] as const) {
    if (isSet(m[name])) leaveOut(`${where}.${name}`, 'Gemini has no equivalent in a model turn');
  }
  for (const key of Object.keys(m)) {
    if (!ASSISTANT_KEYS.has(key) && isSet(m[key])) leaveOut(`${where}.${key}`, 'Gemini has no equivalent in a model turn');
  }
  let text: JsonObject[] = [];
  if (typeof m.content === 'string') text = [{ text: m.content }];
  else if (Array.isArray(m.content)) text = parts(m.content, where, leaveOut);
  else if (isSet(m.content)) throw Errors.BAD_REQUEST(`${where}.content must be a string or an array of parts`);
  if (typeof m.refusal === 'string' && m.refusal !== '') text.push({ text: m.refusal });
  // OpenAI clients send "" beside tool calls; Gemini refuses empty parts.
  text = text.filter((p) => p.text !== '');

  const signature = thoughtSignature(m.extra_content, `${where}.extra_content`, leaveOut);
  if (signature !== undefined) {
    const last = text.findLast((p) => typeof p.text === 'string');
    if (last !== undefined) last.thoughtSignature = signature;
    else text.push({ text: '', thoughtSignature: signature });
  }

  const calls = Array.isArray(m.tool_calls) ? m.tool_calls : [];
  const callParts = calls.map((c, j) => {
    const at = `${where}.tool_calls[${j}]`;
    if (!isObject(c) || !isObject(c.function) || typeof c.function.name !== 'string') {
      throw Errors.BAD_REQUEST(`${at} must be {"id", "type": "function", "function": {"name", "arguments"}}`);
    }
    if (isSet(c.cache_control)) leaveOut(`${at}.cache_control`, CACHE_WHY);
    if (typeof c.id === 'string') toolNames.set(c.id, c.function.name);
    const part: JsonObject = { functionCall: { name: c.function.name, args: parseArguments(c.function.arguments, at) } };
    const sig = thoughtSignature(c.extra_content, `${at}.extra_content`, leaveOut);
    if (sig !== undefined) part.thoughtSignature = sig;
    return part;
  });
  return [...text, ...callParts];
}

/** What an assistant message may hold; annotations describe an earlier answer and are not model input. */
const ASSISTANT_KEYS = new Set([
  'role', 'content', 'name', 'tool_calls', 'refusal', 'audio', 'function_call', 'reasoning_content', 'thinking_blocks', 'extra_content', 'annotations',
]);

/** `extra_content.google.thought_signature` (the extension Google's own OpenAI endpoint uses). */
function thoughtSignature(extra: Json | undefined, where: string, leaveOut: LeaveOut): string | undefined {
  if (!isObject(extra)) return undefined;
  for (const key of Object.keys(extra)) {
    if (key !== 'google' && isSet(extra[key])) leaveOut(`${where}.${key}`, 'only Google\'s extra content means something to Gemini');
  }
  const google = isObject(extra.google) ? extra.google : {};
  for (const key of Object.keys(google)) {
    if (key !== 'thought_signature' && isSet(google[key])) leaveOut(`${where}.google.${key}`, 'Gemini takes back only the thought signature');
  }
  return typeof google.thought_signature === 'string' ? google.thought_signature : undefined;
}

/**
 * A tool's answer as a functionResponse: a JSON object as it is, other text under "content", an error (Anthropic's
 * `is_error`) under "error" as Gemini's docs ask. Images and files in the answer follow it as parts of the same turn.
 */
function functionResponse(m: JsonObject, where: string, leaveOut: LeaveOut, toolNames: Map<string, string>): JsonObject[] {
  if (typeof m.tool_call_id !== 'string') throw Errors.BAD_REQUEST(`${where}: a tool message needs "tool_call_id"`);
  const name = toolNames.get(m.tool_call_id);
  if (name === undefined) throw Errors.BAD_REQUEST(`a tool message answers ${JSON.stringify(m.tool_call_id)}, which no earlier assistant message called`);
  if (isSet(m.cache_control)) leaveOut(`${where}.cache_control`, CACHE_WHY);

  let text = '';
  const media: JsonObject[] = [];
  if (typeof m.content === 'string') text = m.content;
  else if (Array.isArray(m.content)) {
    const texts: string[] = [];
    for (const p of parts(m.content, where, leaveOut)) {
      if (typeof p.text === 'string') texts.push(p.text);
      else media.push(p);
    }
    text = texts.join('\n');
  } else if (isSet(m.content)) throw Errors.BAD_REQUEST(`${where}.content must be a string or an array of parts`);

  const answer = parseObject(text);
  const response = m.is_error === true ? { error: answer ?? text } : (answer ?? { content: text });
  return [{ functionResponse: { name, response } }, ...media];
}

function parseObject(text: string): JsonObject | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isObject(parsed)) return parsed;
  } catch {
    // plain text
  }
  return undefined;
}

/** User, assistant and tool content parts as Gemini parts. */
function parts(content: Json | undefined, where: string, leaveOut: LeaveOut): JsonObject[] {
  if (!Array.isArray(content)) throw Errors.BAD_REQUEST(`${where}.content must be a string or an array of parts`);
  const out: JsonObject[] = [];
  content.forEach((p, j) => {
    const at = `${where}.content[${j}]`;
    if (!isObject(p)) throw Errors.BAD_REQUEST(`${at} must be an object`);
    if (isSet(p.cache_control)) leaveOut(`${at}.cache_control`, CACHE_WHY);
    switch (p.type) {
      case 'text':
        if (typeof p.text !== 'string') throw Errors.BAD_REQUEST(`${at}.text must be a string`);
        textExtras(p, at, leaveOut);
        out.push({ text: p.text });
        return;
      case 'refusal':
        if (typeof p.refusal === 'string') out.push({ text: p.refusal });
        return;
      case 'image_url':
        out.push(imagePart(p, at, leaveOut));
        return;
      case 'file': {
        const file = filePart(p, at, leaveOut);
        if (file !== undefined) out.push(file);
        return;
      }
      case 'input_audio': {
        const audio = isObject(p.input_audio) ? p.input_audio : {};
        if (typeof audio.data !== 'string' || typeof audio.format !== 'string') throw Errors.BAD_REQUEST(`${at}.input_audio needs "data" and "format"`);
        out.push({ inlineData: { mimeType: `audio/${audio.format}`, data: audio.data } });
        return;
      }
      default:
        leaveOut(at, `Gemini has no ${JSON.stringify(p.type)} content`);
    }
  });
  return out;
}

/** A text part's fields besides type, text and cache_control (Anthropic's citations...) have no Gemini form. */
function textExtras(p: JsonObject, at: string, leaveOut: LeaveOut): void {
  for (const key of Object.keys(p)) {
    if (key === 'type' || key === 'text' || key === 'cache_control') continue;
    if (isSet(p[key])) leaveOut(`${at}.${key}`, 'a Gemini text part holds only text');
  }
}

function imagePart(p: JsonObject, at: string, leaveOut: LeaveOut): JsonObject {
  const image = isObject(p.image_url) ? p.image_url : undefined;
  const url = image !== undefined ? image.url : p.image_url;
  if (typeof url !== 'string') throw Errors.BAD_REQUEST(`${at}.image_url.url must be a string`);
  if (image !== undefined && isSet(image.detail) && image.detail !== 'auto') leaveOut(`${at}.image_url.detail`, 'Gemini has no per-image detail setting');
  const data = parseDataUrl(url);
  if (data !== undefined) return { inlineData: { mimeType: data.mediaType, data: data.base64 } };
  return { fileData: { mimeType: guessMediaType(url), fileUri: url } };
}

/**
 * OpenAI's file part (a PDF, text...) as inlineData. Its filename is not sent: Gemini's inline data has no name.
 * An Anthropic document's extras (a URL source, citations, context) have no Gemini form.
 */
function filePart(p: JsonObject, at: string, leaveOut: LeaveOut): JsonObject | undefined {
  if (isSet(p.anthropic_document)) leaveOut(`${at}.anthropic_document`, 'Gemini takes a document\'s bytes only (no URL source, citations or context)');
  const file = isObject(p.file) ? p.file : {};
  if (typeof file.file_data !== 'string') {
    if (typeof file.file_id === 'string') leaveOut(`${at}.file.file_id`, 'OpenAI file ids mean nothing to Gemini; send file_data');
    else if (!isSet(p.anthropic_document)) throw Errors.BAD_REQUEST(`${at}.file needs "file_data" (a data: URL)`);
    return undefined;
  }
  const data = parseDataUrl(file.file_data);
  if (data === undefined) throw Errors.BAD_REQUEST(`${at}.file.file_data must be a base64 data: URL`);
  return { inlineData: { mimeType: data.mediaType, data: data.base64 } };
}

function guessMediaType(url: string): string {
  const ext = /\.(\w+)(?:[?#]|$)/.exec(url)?.[1]?.toLowerCase();
  switch (ext) {
    case 'png':
      return 'image/png';
    case 'gif':
      return 'image/gif';
    case 'webp':
      return 'image/webp';
    case 'pdf':
      return 'application/pdf';
    default:
      return 'image/jpeg';
  }
}

// --- generation config -----------------------------------------------------------------------------------------

function generationConfig(request: JsonObject, options: GenerateContentOptions): JsonObject {
  const config: JsonObject = {};
  const set = (key: string, value: Json | undefined) => {
    if (value !== undefined) config[key] = value;
  };
  const num = (name: string) => (typeof request[name] === 'number' ? (request[name] as number) : undefined);
  set('temperature', num('temperature'));
  set('topP', num('top_p'));
  set('topK', num('top_k'));
  set('maxOutputTokens', maxTokens(request));
  set('stopSequences', stopSequences(request));
  set('candidateCount', num('n'));
  set('presencePenalty', num('presence_penalty'));
  set('frequencyPenalty', num('frequency_penalty'));
  set('seed', num('seed'));

  const topLogprobs = num('top_logprobs');
  if (request.logprobs === true) {
    config.responseLogprobs = true;
    if (topLogprobs !== undefined) config.logprobs = topLogprobs;
  } else if (topLogprobs !== undefined && topLogprobs > 0) {
    const err = Errors.BAD_REQUEST('"top_logprobs" needs "logprobs": true');
    err.param = 'top_logprobs';
    throw err;
  }

  structuredOutput(request, config, options.leaveOut);
  const thinking = thinkingConfig(request, options);
  if (thinking !== undefined) config.thinkingConfig = thinking;
  return config;
}

/** json_object is JSON output; json_schema also sends its schema (Gemini decodes to it, so `strict` holds). */
function structuredOutput(request: JsonObject, config: JsonObject, leaveOut: LeaveOut): void {
  const format = request.response_format;
  if (!isSet(format)) return;
  if (!isObject(format) || format.type === 'text') return;
  if (format.type === 'json_object') {
    config.responseMimeType = 'application/json';
    return;
  }
  if (format.type !== 'json_schema') {
    leaveOut('response_format', `Gemini has no ${JSON.stringify(format.type)} output`);
    return;
  }
  config.responseMimeType = 'application/json';
  const spec = isObject(format.json_schema) ? format.json_schema : {};
  if (!isObject(spec.schema)) return;
  const schema = jsonSchema(spec.schema);
  // The description guides the model as OpenAI's does; the name is only OpenAI's label for the format.
  if (typeof spec.description === 'string' && schema.description === undefined) schema.description = spec.description;
  config.responseJsonSchema = schema;
}

/**
 * Anthropic's `thinking` (budget_tokens is Gemini's thinkingBudget, and the thoughts come back, as Anthropic's do),
 * or OpenAI's reasoning_effort: a thinking level on Gemini 3, a budget before it.
 */
function thinkingConfig(request: JsonObject, options: GenerateContentOptions): JsonObject | undefined {
  const { leaveOut } = options;
  const effort = request.reasoning_effort;
  const thinking = request.thinking;
  if (isSet(thinking)) {
    if (isSet(effort)) leaveOut('reasoning_effort', 'the request sets "thinking" as well');
    if (isObject(thinking) && thinking.type === 'enabled' && typeof thinking.budget_tokens === 'number') {
      return { thinkingBudget: thinking.budget_tokens, includeThoughts: true };
    }
    if (isObject(thinking) && thinking.type === 'adaptive') return { thinkingBudget: -1, includeThoughts: true };
    if (isObject(thinking) && thinking.type === 'disabled') return { thinkingBudget: 0 };
    leaveOut('thinking', 'Gemini takes {"type": "enabled", "budget_tokens": N}, "adaptive" or "disabled"');
    return undefined;
  }
  if (!isSet(effort)) return undefined;
  if (/^gemini-[3-9]/.test(options.model)) {
    if (typeof effort === 'string' && THINKING_LEVELS.has(effort)) return { thinkingLevel: effort };
    leaveOut('reasoning_effort', `${JSON.stringify(effort)} is no Gemini 3 thinking level (minimal, low, medium, high)`);
    return undefined;
  }
  const budget = typeof effort === 'string' ? THINKING_BUDGETS[effort] : undefined;
  if (budget === undefined) {
    leaveOut('reasoning_effort', `${JSON.stringify(effort)} has no Gemini thinking budget`);
    return undefined;
  }
  return { thinkingBudget: budget };
}

// --- tools -----------------------------------------------------------------------------------------------------

/** Function tools as declarations, and whether any asked for strict arguments. */
function readTools(request: JsonObject, leaveOut: LeaveOut): { declarations: JsonObject[]; strict: boolean } {
  const declarations: JsonObject[] = [];
  let strict = false;
  if (!isSet(request.tools)) return { declarations, strict };
  if (!Array.isArray(request.tools)) throw Errors.BAD_REQUEST('"tools" must be an array');
  request.tools.forEach((t, i) => {
    const at = `tools[${i}]`;
    if (!isObject(t)) throw Errors.BAD_REQUEST(`${at} must be an object`);
    if (t.type !== undefined && t.type !== 'function') {
      leaveOut(at, `Gemini has no ${JSON.stringify(t.type)} tools`);
      return;
    }
    const fn = isObject(t.function) ? t.function : undefined;
    if (fn === undefined || typeof fn.name !== 'string') {
      throw Errors.BAD_REQUEST(`${at} must be {"type": "function", "function": {"name", "description", "parameters"}}`);
    }
    for (const key of Object.keys(t)) {
      if (key === 'type' || key === 'function' || !isSet(t[key])) continue;
      leaveOut(`${at}.${key}`, key === 'cache_control' ? CACHE_WHY : 'a Gemini function declaration has no such field');
    }
    for (const key of Object.keys(fn)) {
      if (['name', 'description', 'parameters', 'strict'].includes(key) || !isSet(fn[key])) continue;
      leaveOut(`${at}.function.${key}`, 'a Gemini function declaration has no such field');
    }
    const declaration: JsonObject = { name: fn.name };
    if (typeof fn.description === 'string') declaration.description = fn.description;
    if (isObject(fn.parameters)) declaration.parametersJsonSchema = jsonSchema(fn.parameters);
    if (fn.strict === true) strict = true;
    declarations.push(declaration);
  });
  return { declarations, strict };
}

/**
 * tool_choice as functionCallingConfig. A strict function (arguments that must match its schema) makes AUTO
 * VALIDATED: Gemini then decodes any call to its schema. ANY is decoded to the schema already.
 */
function functionCallingConfig(request: JsonObject, strict: boolean): JsonObject | undefined {
  const choice = readToolChoice(request);
  if (choice === undefined) return strict ? { mode: 'VALIDATED' } : undefined;
  const mode = { auto: strict ? 'VALIDATED' : 'AUTO', none: 'NONE', required: 'ANY', function: 'ANY' }[choice.kind];
  const fc: JsonObject = { mode };
  if (choice.kind === 'function') fc.allowedFunctionNames = [choice.name];
  return fc;
}

/** A JSON Schema as Gemini's *JsonSchema fields take it: whole, but for the `$schema` dialect marker. */
function jsonSchema(schema: JsonObject): JsonObject {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

// --- fields Gemini can't express -------------------------------------------------------------------------------

const WHY: Record<string, string> = {
  logit_bias: 'Gemini has no logit bias',
  user: 'Gemini takes no end-user id',
  safety_identifier: 'Gemini takes no end-user id',
  prompt_cache_key: 'Gemini caches prompts implicitly and takes no cache key',
  metadata: 'Gemini stores no request metadata',
  store: 'Gemini does not store completions',
  service_tier: 'Gemini has one service tier',
  modalities: 'Gemini is asked for text only here',
  audio: 'Gemini is asked for text only here',
  prediction: 'Gemini has no predicted outputs',
  web_search_options: 'Gemini\'s Google Search grounding is not translated',
  verbosity: 'Gemini has no verbosity setting',
  functions: 'the legacy "functions" field is not translated; use "tools"',
  function_call: 'the legacy "function_call" field is not translated; use "tool_choice"',
};

/** Values that ask for nothing (an empty logit_bias, store: false, text-only modalities...) pass; the rest can't. */
function refuseUnexpressible(request: JsonObject, leaveOut: LeaveOut): void {
  const asksNothing: Record<string, (v: Json) => boolean> = {
    logit_bias: (v) => isObject(v) && Object.keys(v).length === 0,
    metadata: (v) => isObject(v) && Object.keys(v).length === 0,
    store: (v) => v === false,
    // "auto" and "default" are what Gemini gives every request (Anthropic's "standard_only" likewise).
    service_tier: (v) => v === 'auto' || v === 'default' || v === 'standard_only',
    modalities: (v) => Array.isArray(v) && v.every((m) => m === 'text'),
  };
  for (const [name, why] of Object.entries(WHY)) {
    const value = request[name];
    if (!isSet(value)) continue;
    if (asksNothing[name]?.(value as Json) === true) continue;
    leaveOut(name, why);
  }
}

/** The OpenAI embeddings request as batchEmbedContents. Token-id inputs have no Gemini equivalent. */
export function toBatchEmbedRequest(request: JsonObject, model: string, provider: string): JsonObject {
  const inputs = Array.isArray(request.input) ? request.input : [request.input];
  const dims = typeof request.dimensions === 'number' ? request.dimensions : undefined;
  return {
    requests: inputs.map((text) => {
      if (typeof text !== 'string') throw Errors.PROVIDER_UNSUPPORTED(provider, 'embeddings of token arrays (send text)');
      const r: JsonObject = { model: `models/${model}`, content: { parts: [{ text }] } };
      if (dims !== undefined) r.outputDimensionality = dims;
      return r;
    }),
  };
}
