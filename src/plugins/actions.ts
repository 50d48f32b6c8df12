/**
 * Decoding what a hook handed back: the JSON "action" objects of the ABI (see native/include/heimdall_plugin.h).
 * Anything that is not exactly one of the documented shapes is a plugin failure, reported with what was wrong.
 * What a plugin says goes out as an HTTP header (a TransportInterceptor's headers, an error's retry_after) is
 * checked here too: a value Node would refuse to write must fail the plugin, not the reply.
 */
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../json-depth.js';
import type {
  AbiError,
  ChunkResult,
  ContextPatch,
  Json,
  JsonObject,
  PostHookResult,
  PreHookResult,
  TransportResult,
} from './plugin.js';

export class ActionError extends Error {}

function parse(output: string): JsonObject {
  // JSON.parse copes with any depth, but the serialisers and plugins the value goes on to recurse.
  if (jsonDepthExceeds(output, MAX_JSON_DEPTH)) throw new ActionError(`output nests JSON deeper than ${MAX_JSON_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(output);
  } catch (err) {
    throw new ActionError(`output is not valid JSON (${(err as Error).message}): ${preview(output)}`);
  }
  if (!isObject(value)) throw new ActionError(`output must be a JSON object, got ${preview(output)}`);
  return value;
}

export function decodePreHook(output: string): PreHookResult {
  const action = parse(output);
  allowOnly(action, ['request', 'response', 'error', 'context']);
  const context = contextOf(action);
  const kinds = present(action, ['request', 'response', 'error']);
  if (kinds.length > 1) throw new ActionError(`output has both ${kinds.join(' and ')}; return one of them`);
  if (action.request !== undefined) return { kind: 'request', request: object(action.request, 'request'), ...withContext(context) };
  if (action.response !== undefined) return { kind: 'response', response: object(action.response, 'response'), ...withContext(context) };
  if (action.error !== undefined) return { kind: 'error', error: abiError(action.error), ...withContext(context) };
  return { kind: 'continue', ...withContext(context) };
}

export function decodePostHook(output: string): PostHookResult {
  const action = parse(output);
  allowOnly(action, ['response', 'error', 'context']);
  const context = contextOf(action);
  if (action.response !== undefined && action.error !== undefined) {
    throw new ActionError('output has both response and error; return one of them');
  }
  if (action.response !== undefined) return { kind: 'response', response: object(action.response, 'response'), ...withContext(context) };
  if (action.error !== undefined) return { kind: 'error', error: abiError(action.error), ...withContext(context) };
  return { kind: 'continue', ...withContext(context) };
}

export function decodeChunk(output: string): ChunkResult {
  const action = parse(output);
  allowOnly(action, ['chunk', 'drop', 'error']);
  if (present(action, ['chunk', 'drop', 'error']).length > 1) throw new ActionError('output must hold one of chunk, drop, error');
  if (action.chunk !== undefined) return { kind: 'chunk', chunk: object(action.chunk, 'chunk') };
  if (action.drop !== undefined) {
    if (action.drop !== true) throw new ActionError('"drop" must be true');
    return { kind: 'drop' };
  }
  if (action.error !== undefined) return { kind: 'error', error: abiError(action.error) };
  return { kind: 'continue' };
}

export function decodeTransport(output: string): TransportResult {
  const action = parse(output);
  allowOnly(action, ['headers', 'body', 'response', 'context']);
  const context = contextOf(action);
  if (action.response !== undefined) {
    if (action.headers !== undefined || action.body !== undefined) {
      throw new ActionError('output has "response" with "headers" or "body"; a response answers the request, so return one or the other');
    }
    const r = object(action.response, 'response');
    allowOnly(r, ['status_code', 'headers', 'body'], 'response');
    const status = r.status_code ?? 200;
    if (!isStatus(status)) throw new ActionError('"response.status_code" must be an HTTP status (100-599)');
    const headers = r.headers === undefined ? {} : stringRecord(r.headers, 'response.headers', false);
    for (const name of Object.keys(headers)) {
      if (FRAMING_HEADERS.has(name.toLowerCase())) {
        throw new ActionError(`"response.headers" has ${name}, which the gateway sets itself (it frames the body): leave it out`);
      }
    }
    return {
      kind: 'response',
      response: { status_code: status, headers: headers as Record<string, string>, body: r.body ?? null },
      ...withContext(context),
    };
  }
  const result: TransportResult = { kind: 'continue', ...withContext(context) };
  if (action.headers !== undefined) result.headers = stringRecord(action.headers, 'headers', true);
  if (action.body !== undefined) result.body = action.body;
  return result;
}

function withContext(context: ContextPatch | undefined): { context?: ContextPatch } {
  return context === undefined ? {} : { context };
}

function contextOf(action: JsonObject): ContextPatch | undefined {
  return action.context === undefined ? undefined : object(action.context, 'context');
}

function abiError(value: Json | undefined): AbiError {
  const e = object(value, 'error');
  if (typeof e.message !== 'string' || e.message === '') throw new ActionError('"error.message" must be a non-empty string');
  const status = e.status_code ?? 500;
  if (!isStatus(status) || status < 400) throw new ActionError('"error.status_code" must be an HTTP error status (400-599)');
  if (e.type !== undefined && typeof e.type !== 'string') throw new ActionError('"error.type" must be a string');
  if (e.code !== undefined && typeof e.code !== 'string') throw new ActionError('"error.code" must be a string');
  if (e.allow_fallbacks !== undefined && typeof e.allow_fallbacks !== 'boolean') {
    throw new ActionError('"error.allow_fallbacks" must be a boolean');
  }
  const retryAfter = e.retry_after;
  if (retryAfter !== undefined && typeof retryAfter !== 'number' && !(typeof retryAfter === 'string' && isHeaderValue(retryAfter))) {
    throw new ActionError('"error.retry_after" must be a number or a string that is a valid HTTP header value');
  }
  return { ...e, status_code: status, message: e.message } as AbiError;
}

/** Header name -> value (a string, or null where that removes it), each a name and value HTTP can carry. */
function stringRecord(value: Json | undefined, name: string, allowNull: boolean): Record<string, string | null> {
  const o = object(value, name);
  for (const [k, v] of Object.entries(o)) {
    if (!HEADER_NAME.test(k)) throw new ActionError(`"${name}" has ${preview(k)}, which is not a valid HTTP header name`);
    if (typeof v !== 'string' && !(allowNull && v === null)) {
      throw new ActionError(`"${name}.${k}" must be a string${allowNull ? ' or null' : ''}`);
    }
    if (typeof v === 'string' && !isHeaderValue(v)) {
      throw new ActionError(`"${name}.${k}" is not a valid HTTP header value (control characters such as CR or LF, or characters above U+00FF)`);
    }
  }
  return o as Record<string, string | null>;
}

/**
 * Headers that describe the connection or the body's framing, not the answer: the gateway writes the body, so a
 * plugin's value would contradict it (a `transfer-encoding: chunked` on a body sent whole leaves the client waiting
 * for chunks that never come).
 */
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'proxy-connection']);

/** RFC 9110's token: what Node accepts as a header name. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110's field-value characters (HTAB, SP, visible ASCII, obs-text): what Node accepts as a header value. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Whether Node would write `value` as a header value, rather than throw (and fail the reply with it). */
export function isHeaderValue(value: string): boolean {
  return HEADER_VALUE.test(value);
}

function object(value: Json | undefined, name: string): JsonObject {
  if (!isObject(value)) throw new ActionError(`"${name}" must be a JSON object`);
  return value;
}

function allowOnly(action: JsonObject, keys: string[], where = 'output'): void {
  for (const key of Object.keys(action)) {
    if (!keys.includes(key)) throw new ActionError(`unknown field "${key}" in ${where} (expected ${keys.join(', ')})`);
  }
}

function present(action: JsonObject, keys: string[]): string[] {
  return keys.filter((k) => action[k] !== undefined);
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStatus(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599;
}

function preview(s: string): string {
  return JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}...` : s);
}
