/**
 * `heimdall plugin test FILE`: runs one plugin's hooks offline, with no gateway and no upstream, in the gateway's
 * order (TransportInterceptor, PreHook, the provider's answer, StreamChunkHook per chunk, PostHook), on cases from
 * fixture files or the built-in samples (plugin-test-cases.ts). For each hook it reports the input, the output, the
 * decision and the time, and checks the expectations: any that fails, or a hook that fails unexpectedly, makes the
 * command exit 1, so a plugin's CI can run it.
 *
 * The plugin is loaded by the gateway's own loader, with every check it makes (a file the gateway would refuse is
 * refused here, with the same error).
 */
import { performance } from 'node:perf_hooks';
import { HeimdallError } from '../errors.js';
import { INLINE, loadPlugin, resolvePluginPath, type Execution } from '../plugins/loader.js';
import type { ChunkResult, ContextPatch, ExecutionMode, JsonObject, Plugin, PostHookResult, PreHookResult, TransportResult } from '../plugins/plugin.js';
import { sampleChunks, sampleResponse, type Expectation, type HookKey, type TestCase } from './plugin-test-cases.js';

export interface HookRun {
  hook: HookKey;
  /** For chunks: the chunk's index. */
  index?: number;
  input: unknown;
  /** The hook's answer as the gateway read it (null: continue with nothing handed back). */
  output: unknown;
  decision: string;
  ms: number;
  /** The failure's message, when the hook failed. */
  failure?: string;
}

export interface CaseReport {
  name: string;
  runs: HookRun[];
  expectations: { text: string; ok: boolean; why?: string }[];
  /** Hooks that failed without an expectation saying they would. */
  unexpectedFailures: string[];
  ok: boolean;
}

export interface PluginTestReport {
  file: string;
  plugin: { name: string; language: string; abi_version: string; hooks: string[]; mode: ExecutionMode } | null;
  init: HookRun | null;
  /** Why the plugin could not be loaded. */
  error: { code: string; message: string } | null;
  cases: CaseReport[];
  ok: boolean;
}

export interface PluginTestOptions {
  config?: JsonObject;
  cases: TestCase[];
  /** Checked for Init (the init=... expectations of any case count). */
  mode?: ExecutionMode;
  timeoutMs?: number;
}

export async function runPluginTest(input: string, options: PluginTestOptions): Promise<PluginTestReport> {
  const file = resolvePluginPath(input, process.cwd());
  const report: PluginTestReport = { file, plugin: null, init: null, error: null, cases: [], ok: false };
  const config = options.config ?? {};
  const execution: Execution = { ...INLINE, mode: options.mode ?? 'inline', timeout_ms: options.timeoutMs ?? INLINE.timeout_ms };
  const initExpected = options.cases.flatMap((c) => c.expect).filter((e) => e.hook === 'init');
  const started = performance.now();
  let plugin: Plugin;
  try {
    plugin = await loadPlugin(file, { config, execution });
  } catch (err) {
    const e = err instanceof HeimdallError ? err : new HeimdallError('HEIMDALL_ERR_INTERNAL', 500, 'server_error', String(err));
    report.error = { code: e.code, message: e.message };
    // Init's refusal is a decision a test may expect; anything else is a load failure.
    if (e.code === 'HEIMDALL_ERR_PLUGIN_INIT') {
      report.init = { hook: 'init', input: config, output: null, decision: 'fail', ms: performance.now() - started, failure: e.message };
      const results = initExpected.map((x) => check(x, [report.init!]));
      report.cases = [{ name: 'init', runs: [], expectations: results, unexpectedFailures: [], ok: results.length > 0 && results.every((r) => r.ok) }];
      report.ok = report.cases[0]!.ok;
    }
    return report;
  }
  const { info } = plugin;
  report.plugin = {
    name: info.name,
    language: info.language,
    abi_version: info.abiVersion,
    hooks: (['transport', 'pre', 'post', 'chunk'] as const).filter((h) => info.hooks[h]).map((h) => HOOK_NAMES[h]),
    mode: info.mode,
  };
  report.init = { hook: 'init', input: config, output: null, decision: 'ok', ms: performance.now() - started };
  try {
    for (const c of options.cases) report.cases.push(await runCase(plugin, c, report.init));
  } finally {
    await plugin.close();
  }
  report.ok = report.cases.every((c) => c.ok);
  return report;
}

const HOOK_NAMES = { transport: 'TransportInterceptor', pre: 'PreHook', post: 'PostHook', chunk: 'StreamChunkHook' } as const;

async function runCase(plugin: Plugin, c: TestCase, init: HookRun): Promise<CaseReport> {
  const runs: HookRun[] = [];
  const values: JsonObject = {};
  const model = typeof c.request.model === 'string' ? c.request.model : 'mock/echo';
  const [provider, ...rest] = model.split('/');
  const context = (inTransport: boolean) =>
    Buffer.from(JSON.stringify({
      request_id: 'plugin-test-1',
      route: '/v1/chat/completions',
      provider: inTransport ? null : provider ?? null,
      model: inTransport ? null : rest.join('/') || null,
      stream: inTransport ? false : c.stream,
      headers: c.headers,
      values,
    }));
  const patch = (p: ContextPatch | undefined) => {
    for (const [k, v] of Object.entries(p ?? {})) {
      if (v === null) delete values[k];
      else values[k] = v;
    }
  };
  const { hooks } = plugin.info;
  let request = c.request;
  let answered: { response?: JsonObject; error?: JsonObject } | undefined;

  if (hooks.transport) {
    const http = { method: 'POST', path: '/v1/chat/completions', headers: c.headers };
    const run = await call('transport', { http, body: request }, () =>
      plugin.transportInterceptor(context(true), Buffer.from(JSON.stringify(http)), Buffer.from(JSON.stringify(request))), transportDecision);
    runs.push(run);
    const out = run.output as { response?: { status_code: number; body: unknown }; body?: unknown; context?: ContextPatch } | null;
    if (out?.response !== undefined) answered = { response: { status_code: out.response.status_code, body: out.response.body as JsonObject } };
    else if (out !== null) {
      patch(out.context);
      if (isObject(out.body)) request = out.body as JsonObject;
    }
  }
  const skipRest = answered !== undefined; // a TransportInterceptor answered: nothing else runs, as in the gateway

  if (hooks.pre && !skipRest) {
    const run = await call('prehook', request, () => plugin.preHook(context(false), Buffer.from(JSON.stringify(request))), preDecision);
    runs.push(run);
    const out = run.output as { request?: JsonObject; response?: JsonObject; error?: JsonObject; context?: ContextPatch } | null;
    if (out) patch(out.context);
    if (out?.request !== undefined) request = out.request;
    if (out?.response !== undefined) answered = { response: out.response };
    if (out?.error !== undefined) answered = { error: out.error };
  } else if (hooks.pre) {
    runs.push(skipped('prehook'));
  }

  if (!skipRest) {
    let response = answered?.response;
    let error = answered?.error;
    if (answered === undefined) {
      error = c.error;
      response = c.error === undefined ? c.response ?? sampleResponse(request) : undefined;
      if (c.stream && response !== undefined) {
        const chunks = c.chunks ?? sampleChunks(response);
        const delivered: JsonObject[] = [];
        for (const [i, chunk] of chunks.entries()) {
          if (!hooks.chunk) {
            delivered.push(chunk);
            continue;
          }
          const run = await call('chunk', chunk, () => plugin.streamChunk(context(false), Buffer.from(JSON.stringify(chunk))), chunkDecision);
          run.index = i;
          runs.push(run);
          const out = run.output as { chunk?: JsonObject; drop?: boolean; error?: JsonObject } | null;
          if (out?.chunk !== undefined) delivered.push(out.chunk);
          else if (out?.drop !== true && out?.error === undefined && run.decision !== 'fail') delivered.push(chunk);
          else if (run.decision === 'fail') delivered.push(chunk); // a failed hook is skipped: the chunk goes on
          if (out?.error !== undefined) break; // the stream ends with the error event
        }
        response = assemble(delivered, response);
      }
    }
    if (hooks.post) {
      const input = error !== undefined ? { error } : { response };
      const run = await call('posthook', input, () =>
        plugin.postHook(context(false), response ? Buffer.from(JSON.stringify(response)) : null, error ? Buffer.from(JSON.stringify(error)) : null), postDecision);
      runs.push(run);
    }
  } else if (hooks.post) {
    runs.push(skipped('posthook'));
  }

  const expectations = c.expect.map((e) => check(e, [init, ...runs]));
  const expectedFailures = new Set(c.expect.filter((e) => e.decision?.name === 'fail').map((e) => e.hook));
  const unexpectedFailures = runs.filter((r) => r.decision === 'fail' && !expectedFailures.has(r.hook)).map((r) => `${label(r)}: ${r.failure}`);
  return { name: c.name, runs, expectations, unexpectedFailures, ok: expectations.every((e) => e.ok) && unexpectedFailures.length === 0 };
}

/** The stream as the gateway hands it to PostHook: the delivered chunks' text joined into one chat.completion. */
function assemble(chunks: JsonObject[], fallback: JsonObject): JsonObject {
  let content = '';
  let finish: unknown = null;
  let role = 'assistant';
  for (const chunk of chunks) {
    const choice = (chunk.choices as JsonObject[] | undefined)?.[0];
    const delta = choice?.delta as JsonObject | undefined;
    if (typeof delta?.content === 'string') content += delta.content;
    if (typeof delta?.role === 'string') role = delta.role;
    if (choice?.finish_reason !== undefined && choice.finish_reason !== null) finish = choice.finish_reason;
  }
  const first = chunks[0] ?? fallback;
  return {
    id: first.id ?? fallback.id ?? null,
    object: 'chat.completion',
    created: first.created ?? fallback.created ?? null,
    model: first.model ?? fallback.model ?? null,
    choices: [{ index: 0, message: { role, content }, finish_reason: finish as string | null }],
  };
}

async function call<T>(hook: HookKey, input: unknown, fn: () => T | Promise<T>, decide: (out: T) => string): Promise<HookRun> {
  const started = performance.now();
  try {
    const out = await fn();
    const ms = performance.now() - started;
    return { hook, input, output: action(out as { kind: string }), decision: decide(out), ms };
  } catch (err) {
    return { hook, input, output: null, decision: 'fail', ms: performance.now() - started, failure: (err as Error).message };
  }
}

/** A hook's answer as the ABI's action object ({"request": ...}, {"drop": true}, ...); null for a bare continue. */
function action(out: { kind: string }): Record<string, unknown> | null {
  const { kind, ...rest } = out as { kind: string } & Record<string, unknown>;
  if (kind === 'drop') return { drop: true };
  if (kind === 'continue') return Object.keys(rest).length === 0 ? null : rest;
  return rest;
}

function skipped(hook: HookKey): HookRun {
  return { hook, input: null, output: null, decision: 'skipped', ms: 0 };
}

function transportDecision(r: TransportResult): string {
  if (r.kind === 'response') return `respond:${r.response.status_code}`;
  return r.headers !== undefined || r.body !== undefined ? 'modify' : 'continue';
}

function preDecision(r: PreHookResult): string {
  switch (r.kind) {
    case 'continue': return 'continue';
    case 'request': return 'modify';
    case 'response': return 'short-circuit:200';
    case 'error': return `short-circuit:${r.error.status_code}`;
  }
}

function postDecision(r: PostHookResult): string {
  switch (r.kind) {
    case 'continue': return 'continue';
    case 'response': return 'modify';
    case 'error': return `error:${r.error.status_code}`;
  }
}

function chunkDecision(r: ChunkResult): string {
  switch (r.kind) {
    case 'continue': return 'continue';
    case 'chunk': return 'modify';
    case 'drop': return 'drop';
    case 'error': return `abort:${r.error.status_code}`;
  }
}

/** Whether the runs meet the expectation, and why not. */
function check(e: Expectation, runs: HookRun[]): { text: string; ok: boolean; why?: string } {
  let subject = runs.filter((r) => r.hook === e.hook);
  if (e.hook === 'chunk' && e.chunk !== undefined) {
    const at = e.chunk === 'last' ? subject.length - 1 : e.chunk;
    subject = subject.filter((r) => r.index === subject[at]?.index && at >= 0);
  }
  if (subject.length === 0) {
    const why = e.hook === 'chunk' ? 'no such chunk hook call (is the case streamed, and StreamChunkHook exported?)' : 'the hook was not called (not exported?)';
    return e.decision?.name === 'skipped' ? { text: e.text, ok: true } : { text: e.text, ok: false, why };
  }
  const bad = subject.find((r) => !meets(e, r));
  if (bad === undefined) return { text: e.text, ok: true };
  const was = e.contains !== undefined ? `its output was ${preview(bad.output, 200)}` : `was ${bad.decision}`;
  return { text: e.text, ok: false, why: `${label(bad)} ${was}` };
}

function meets(e: Expectation, r: HookRun): boolean {
  if (e.contains !== undefined) return r.output !== null && JSON.stringify(r.output).includes(e.contains);
  const [name, status] = r.decision.split(':');
  return name === e.decision!.name && (e.decision!.status === undefined || Number(status) === e.decision!.status);
}

function label(r: HookRun): string {
  const names: Record<HookKey, string> = { init: 'Init', transport: 'TransportInterceptor', prehook: 'PreHook', posthook: 'PostHook', chunk: 'StreamChunkHook' };
  return r.index !== undefined ? `${names[r.hook]}[${r.index}]` : names[r.hook];
}

/** JSON on one line; a long one keeps its start and its end (where an added member usually is). */
function preview(v: unknown, max: number): string {
  if (v === null || v === undefined) return '(nothing: continue)';
  const s = JSON.stringify(v);
  if (s.length <= max) return s;
  const head = Math.floor(max * 0.6);
  return `${s.slice(0, head)} ... ${s.slice(s.length - (max - head))} (${s.length} bytes)`;
}

/** The report as text: one block per case, each hook with its decision and time, its input and output. */
export function formatPluginTest(r: PluginTestReport, options: { full?: boolean } = {}): string {
  const max = options.full ? Infinity : 240;
  const lines: string[] = [`file     ${r.file}`];
  if (r.plugin) {
    lines.push(`plugin   ${r.plugin.name} (${r.plugin.language}, ABI ${r.plugin.abi_version}, ${r.plugin.mode}); hooks: ${r.plugin.hooks.join(', ') || 'none'}`);
  }
  if (r.init) lines.push(`Init     ${r.init.decision.padEnd(20)}${ms(r.init.ms)}  config ${preview(r.init.input, max)}`);
  if (r.error && !r.init) lines.push('', `${r.error.code}:`, `  ${r.error.message}`);
  if (r.error && r.init?.decision === 'fail') lines.push(`  ${r.error.message}`);
  for (const c of r.cases) {
    if (c.name === 'init' && c.runs.length === 0 && r.init?.decision === 'fail') {
      for (const e of c.expectations) lines.push(`  expect ${e.text}: ${e.ok ? 'ok' : `FAILED: ${e.why}`}`);
      continue;
    }
    lines.push('', `case ${c.name}`);
    for (const run of c.runs) {
      lines.push(`  ${label(run).padEnd(24)}${run.decision.padEnd(20)}${run.decision === 'skipped' ? '' : ms(run.ms)}`);
      if (run.decision === 'skipped') continue;
      lines.push(`    in   ${preview(run.input, max)}`);
      lines.push(run.failure !== undefined ? `    FAILED ${run.failure}` : `    out  ${preview(run.output, max)}`);
    }
    for (const e of c.expectations) lines.push(`  expect ${e.text}: ${e.ok ? 'ok' : `FAILED: ${e.why}`}`);
    for (const f of c.unexpectedFailures) lines.push(`  FAILED (no expectation said it would): ${f}`);
  }
  const total = r.cases.flatMap((c) => c.expectations);
  const failed = total.filter((e) => !e.ok).length + r.cases.reduce((n, c) => n + c.unexpectedFailures.length, 0);
  lines.push('', r.ok ? `ok: ${total.length} expectation${total.length === 1 ? '' : 's'} met` : r.plugin || r.init ? `FAILED: ${failed} of ${total.length} expectation${total.length === 1 ? '' : 's'} or hooks failed` : 'FAILED: the plugin did not load');
  return lines.join('\n');
}

function ms(n: number): string {
  return `${n < 10 ? n.toFixed(3) : n.toFixed(1)} ms`;
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
