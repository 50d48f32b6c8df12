/**
 * What `heimdall plugin test` runs a plugin on: cases (a request, the provider's answer, whole or as stream chunks)
 * from fixture files or built-in samples, and expectations on each hook's decision or output.
 *
 * A fixture file is JSON:
 *
 *   {
 *     "config": {"block_word": "hello"},           the plugin's Init config (default {})
 *     "cases": [{
 *       "name": "blocked",
 *       "headers": {"x-user": "u1"},                 the client's headers (the context and TransportInterceptor see them)
 *       "request": {"model": "mock/echo", ...},      the chat request (default: the sample; "message" sets its text)
 *       "message": "hello there",                    shorthand: the sample request with this user message
 *       "stream": true,                              the provider answers as chunks (default: request.stream)
 *       "response": {...} | "error": {...},          the provider's answer (default: an echo of the message)
 *       "chunks": [{...}, ...],                      the stream's chunks (default: the answer, word by word)
 *       "expect": ["prehook=short-circuit:403", "posthook~checked"]
 *     }]
 *   }
 *
 * An expectation is HOOK=DECISION[:STATUS] or HOOK~TEXT (the hook's output contains TEXT). HOOK is init, transport,
 * prehook, posthook, chunk (every chunk), chunk[N] or chunk[last]. Decisions: continue, modify, short-circuit
 * (prehook), respond (transport), error (posthook), drop and abort (chunk), fail (the hook itself failed),
 * skipped (not called). The STATUS, when given, must match too.
 */
import { readFileSync } from 'node:fs';
import { Errors } from '../errors.js';
import type { JsonObject } from '../plugins/plugin.js';

export interface TestCase {
  name: string;
  headers: Record<string, string>;
  request: JsonObject;
  stream: boolean;
  response: JsonObject | undefined;
  error: JsonObject | undefined;
  chunks: JsonObject[] | undefined;
  expect: Expectation[];
}

export type HookKey = 'init' | 'transport' | 'prehook' | 'posthook' | 'chunk';

export interface Expectation {
  /** As written, for the report. */
  text: string;
  hook: HookKey;
  /** For chunk expectations: every chunk (undefined), an index, or the last one. */
  chunk?: number | 'last';
  /** A decision (continue, modify, ...), with a status when one was given. */
  decision?: { name: string; status?: number };
  /** Text the hook's output must contain. */
  contains?: string;
}

export const SAMPLE_MESSAGE = 'Hello from heimdall plugin test';

const DECISIONS: Record<HookKey, string[]> = {
  init: ['ok', 'fail'],
  transport: ['continue', 'modify', 'respond', 'fail', 'skipped'],
  prehook: ['continue', 'modify', 'short-circuit', 'fail', 'skipped'],
  posthook: ['continue', 'modify', 'error', 'fail', 'skipped'],
  chunk: ['continue', 'modify', 'drop', 'abort', 'fail', 'skipped'],
};

const HOOK_ALIASES: Record<string, HookKey> = {
  init: 'init',
  transport: 'transport',
  transportinterceptor: 'transport',
  pre: 'prehook',
  prehook: 'prehook',
  post: 'posthook',
  posthook: 'posthook',
  chunk: 'chunk',
  streamchunkhook: 'chunk',
};

const FIX = 'Write it as HOOK=DECISION[:STATUS] or HOOK~TEXT, for example prehook=short-circuit:429, chunk[last]=modify, posthook~checked';

/** Parses one expectation; `source` names where it came from in errors. */
export function parseExpectation(text: string, source: string): Expectation {
  const m = /^\s*([A-Za-z]+)(?:\[(\d+|last)\])?\s*(=|~)\s*(.+?)\s*$/s.exec(text);
  const bad = (cause: string) => Errors.PLUGIN_TEST_INPUT(source, `expectation ${JSON.stringify(text)}: ${cause}`, FIX);
  if (!m) throw bad('not understood');
  const [, rawHook = '', index, op, value = ''] = m;
  const hook = HOOK_ALIASES[rawHook.toLowerCase()];
  if (hook === undefined) throw bad(`unknown hook ${JSON.stringify(rawHook)} (init, transport, prehook, posthook, chunk)`);
  if (index !== undefined && hook !== 'chunk') throw bad('only chunk takes an index');
  const e: Expectation = { text: text.trim(), hook };
  if (index !== undefined) e.chunk = index === 'last' ? 'last' : Number(index);
  if (op === '~') {
    e.contains = value;
    return e;
  }
  const [name = '', status, ...rest] = value.toLowerCase().split(':');
  const alias = name === 'shortcircuit' ? 'short-circuit' : name;
  if (!DECISIONS[hook].includes(alias) || rest.length > 0) {
    throw bad(`${hook} decisions are ${DECISIONS[hook].join(', ')}`);
  }
  if (status !== undefined && !/^\d{3}$/.test(status)) throw bad(`the status ${JSON.stringify(status)} is not an HTTP status`);
  e.decision = status === undefined ? { name: alias } : { name: alias, status: Number(status) };
  return e;
}

export function sampleRequest(message = SAMPLE_MESSAGE, stream = false): JsonObject {
  const req: JsonObject = { model: 'mock/echo', messages: [{ role: 'user', content: message }] };
  if (stream) req.stream = true;
  return req;
}

/** The answer the mock provider would give: an echo of the last user message. */
export function sampleResponse(request: JsonObject): JsonObject {
  const model = typeof request.model === 'string' ? request.model.replace(/^[^/]*\//, '') : 'echo';
  return {
    id: 'chatcmpl-test-1',
    object: 'chat.completion',
    created: 1700000000,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: `Mock reply. You said: ${lastUserText(request)}` }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
  };
}

/**
 * A stream as OpenAI-compatible providers send it: a first chunk with the role, one chunk per word, and a last chunk
 * with an empty delta and the finish_reason.
 */
export function sampleChunks(response: JsonObject): JsonObject[] {
  const choice = (response.choices as JsonObject[] | undefined)?.[0];
  const content = (choice?.message as JsonObject | undefined)?.content;
  const words = (typeof content === 'string' ? content : '').match(/\S+\s*/g) ?? [];
  const base = { id: response.id ?? 'chatcmpl-test-1', object: 'chat.completion.chunk', created: response.created ?? 1700000000, model: response.model ?? 'echo' };
  const chunk = (delta: JsonObject, finish: string | null): JsonObject => ({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] });
  return [chunk({ role: 'assistant', content: '' }, null), ...words.map((w) => chunk({ content: w }, null)), chunk({}, 'stop')];
}

/** The built-in case: the sample request (with `message`), answered whole or streamed. */
export function sampleCase(options: { message?: string; stream?: boolean; expect?: Expectation[] }): TestCase {
  const stream = options.stream ?? false;
  return {
    name: stream ? 'sample (streamed)' : 'sample',
    headers: { 'content-type': 'application/json' },
    request: sampleRequest(options.message, stream),
    stream,
    response: undefined,
    error: undefined,
    chunks: undefined,
    expect: options.expect ?? [],
  };
}

export interface Fixture {
  config: JsonObject | undefined;
  cases: TestCase[];
}

/** Reads a fixture file (see the top of this file). */
export function readFixture(file: string): Fixture {
  const fail = (cause: string, fix = 'See "heimdall plugin test --help" for the fixture format') => Errors.PLUGIN_TEST_INPUT(file, cause, fix);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw fail(`cannot read it as JSON (${(err as Error).message})`, 'Check the path, and that the file is JSON');
  }
  if (!isObject(raw)) throw fail('it is not a JSON object');
  const list = Array.isArray(raw.cases) ? raw.cases : [raw];
  if (raw.config !== undefined && !isObject(raw.config)) throw fail('"config" is not an object');
  const cases = list.map((c, i): TestCase => {
    const where = `cases[${i}]`;
    if (!isObject(c)) throw fail(`${where} is not an object`);
    const objectOrUndefined = (key: string): JsonObject | undefined => {
      if (c[key] === undefined) return undefined;
      if (!isObject(c[key])) throw fail(`${where}.${key} is not an object`);
      return c[key] as JsonObject;
    };
    if (c.message !== undefined && typeof c.message !== 'string') throw fail(`${where}.message is not a string`);
    const request = objectOrUndefined('request') ?? sampleRequest(c.message as string | undefined);
    const stream = c.stream === undefined ? request.stream === true : c.stream === true;
    if (stream && request.stream !== true) request.stream = true;
    let chunks: JsonObject[] | undefined;
    if (c.chunks !== undefined) {
      if (!Array.isArray(c.chunks) || !c.chunks.every(isObject)) throw fail(`${where}.chunks is not an array of objects`);
      chunks = c.chunks as JsonObject[];
    }
    const expectations = c.expect === undefined ? [] : Array.isArray(c.expect) ? c.expect : [c.expect];
    if (!expectations.every((e) => typeof e === 'string')) throw fail(`${where}.expect is not a list of strings`);
    const headers = objectOrUndefined('headers') ?? {};
    return {
      name: typeof c.name === 'string' ? c.name : `case ${i + 1}`,
      headers: { 'content-type': 'application/json', ...Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)])) },
      request,
      stream: stream || chunks !== undefined,
      response: objectOrUndefined('response'),
      error: objectOrUndefined('error'),
      chunks,
      expect: (expectations as string[]).map((e) => parseExpectation(e, `${file} ${where}`)),
    };
  });
  return { config: raw.config as JsonObject | undefined, cases };
}

function lastUserText(request: JsonObject): string {
  const messages = Array.isArray(request.messages) ? request.messages : [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (isObject(m) && m.role === 'user') return typeof m.content === 'string' ? m.content : JSON.stringify(m.content);
  }
  return '';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
