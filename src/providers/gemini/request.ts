/**
 * The canonical (OpenAI chat) request as a Gemini generateContent request: system messages become
 * systemInstruction; assistant turns are role "model" with functionCall parts; tool results are functionResponse
 * parts (named after the call they answer); images are inlineData (data: URLs) or fileData (other URLs); sampling
 * parameters go into generationConfig; tools into functionDeclarations, with the JSON Schema keywords Gemini refuses
 * removed.
 */
import { Errors } from '../../errors.js';
import type { Json, JsonObject } from '../../plugins/plugin.js';
import { isObject, maxTokens, numberField, readMessages, readToolChoice, readTools, stopSequences, type Part } from '../canonical.js';

interface Content {
  role: 'user' | 'model';
  parts: JsonObject[];
}

export function toGenerateContentRequest(request: JsonObject): JsonObject {
  const system: string[] = [];
  const contents: Content[] = [];
  const toolNames = new Map<string, string>();
  const push = (role: Content['role'], parts: JsonObject[]) => {
    const last = contents.at(-1);
    if (last !== undefined && last.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  for (const m of readMessages(request)) {
    switch (m.role) {
      case 'system':
        system.push(m.text);
        break;
      case 'user':
        push('user', m.parts.map(part));
        break;
      case 'assistant':
        for (const c of m.toolCalls) toolNames.set(c.id, c.name);
        push('model', [
          ...m.parts.map(part).filter((p) => p.text !== ''),
          ...m.toolCalls.map((c) => ({ functionCall: { name: c.name, args: c.args } })),
        ]);
        break;
      case 'tool': {
        const name = toolNames.get(m.toolCallId);
        if (name === undefined) throw Errors.BAD_REQUEST(`a tool message answers ${JSON.stringify(m.toolCallId)}, which no earlier assistant message called`);
        push('user', [{ functionResponse: { name, response: toolResponse(m.text) } }]);
        break;
      }
    }
  }

  const out: JsonObject = { contents: contents.map((c) => ({ role: c.role, parts: c.parts })) };
  if (system.length > 0) out.systemInstruction = { parts: [{ text: system.join('\n\n') }] };

  const config: JsonObject = {};
  const set = (key: string, value: Json | undefined) => {
    if (value !== undefined) config[key] = value;
  };
  set('temperature', numberField(request, 'temperature'));
  set('topP', numberField(request, 'top_p'));
  set('topK', numberField(request, 'top_k'));
  set('maxOutputTokens', maxTokens(request));
  set('stopSequences', stopSequences(request));
  set('candidateCount', numberField(request, 'n'));
  set('presencePenalty', numberField(request, 'presence_penalty'));
  set('frequencyPenalty', numberField(request, 'frequency_penalty'));
  set('seed', numberField(request, 'seed'));
  const format = isObject(request.response_format) ? request.response_format.type : undefined;
  if (format === 'json_object' || format === 'json_schema') config.responseMimeType = 'application/json';
  if (Object.keys(config).length > 0) out.generationConfig = config;

  const tools = readTools(request);
  if (tools.length > 0) {
    out.tools = [{
      functionDeclarations: tools.map((t) => {
        const fn: JsonObject = { name: t.name, parameters: geminiSchema(t.parameters) };
        if (t.description !== undefined) fn.description = t.description;
        return fn;
      }),
    }];
  }
  const choice = readToolChoice(request);
  if (choice !== undefined) {
    const mode = { auto: 'AUTO', none: 'NONE', required: 'ANY', function: 'ANY' }[choice.kind];
    const fc: JsonObject = { mode };
    if (choice.kind === 'function') fc.allowedFunctionNames = [choice.name];
    out.toolConfig = { functionCallingConfig: fc };
  }
  return out;
}

function part(p: Part): JsonObject {
  if (p.kind === 'text') return { text: p.text };
  if (p.base64 !== undefined && p.mediaType !== undefined) return { inlineData: { mimeType: p.mediaType, data: p.base64 } };
  return { fileData: { mimeType: guessImageType(p.url), fileUri: p.url } };
}

/** A tool's answer: its JSON object when it is one, else the text under "content" (Gemini wants an object). */
function toolResponse(text: string): JsonObject {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isObject(parsed)) return parsed;
  } catch {
    // plain text
  }
  return { content: text };
}

/** Gemini's schema is an OpenAPI subset: it refuses these JSON Schema keywords. */
const UNSUPPORTED_SCHEMA_KEYS = new Set(['$schema', '$id', 'additionalProperties', 'strict', '$defs', 'definitions']);

function geminiSchema(schema: Json): JsonObject {
  const clean = (v: Json): Json => {
    if (Array.isArray(v)) return v.map(clean);
    if (!isObject(v)) return v;
    return Object.fromEntries(Object.entries(v).filter(([k]) => !UNSUPPORTED_SCHEMA_KEYS.has(k)).map(([k, x]) => [k, clean(x)]));
  };
  return clean(schema) as JsonObject;
}

function guessImageType(url: string): string {
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

/** The OpenAI embeddings request as batchEmbedContents. Token-id inputs have no Gemini equivalent. */
export function toBatchEmbedRequest(request: JsonObject, model: string, provider: string): JsonObject {
  const inputs = Array.isArray(request.input) ? request.input : [request.input];
  const dims = numberField(request, 'dimensions');
  return {
    requests: inputs.map((text) => {
      if (typeof text !== 'string') throw Errors.PROVIDER_UNSUPPORTED(provider, 'embeddings of token arrays (send text)');
      const r: JsonObject = { model: `models/${model}`, content: { parts: [{ text }] } };
      if (dims !== undefined) r.outputDimensionality = dims;
      return r;
    }),
  };
}
