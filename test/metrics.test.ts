/**
 * GET /metrics through a real gateway with real native probe plugins and a real loopback upstream: per plugin and
 * hook series recorded without plugin code, errors and short-circuits, upstream latency, gateway overhead, tokens
 * from usage (JSON and streamed), and the Prometheus text format.
 */
import t from 'tap';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { probePlugins } from './helpers/fixtures.js';
import { startUpstream } from './helpers/upstream.js';

const probes = await probePlugins();

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (the subset of the format prom-client and the hook stats write). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key as string] = (value as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(url: string) {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  const samples = parse(text);
  /** The sum of every sample named `name` whose labels include `labels`. */
  const sum = (name: string, labels: Record<string, string> = {}) =>
    samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((n, s) => n + s.value, 0);
  const has = (name: string, labels: Record<string, string> = {}) =>
    samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return { status: res.status, contentType: res.headers.get('content-type'), text, samples, sum, has };
}

/** Scrapes until `check` holds: a stream's PostHooks run just after the client has read [DONE]. */
async function scrapeUntil(url: string, check: (m: Awaited<ReturnType<typeof scrape>>) => boolean) {
  const until = Date.now() + 5000;
  for (;;) {
    const m = await scrape(url);
    if (check(m) || Date.now() > until) return m;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const HOOKS = ['TransportInterceptor', 'PreHook', 'PostHook', 'StreamChunkHook'];
const probeList = (...names: ('p1' | 'p2' | 'p3' | 'bare')[]) => names.map((name) => ({ path: probes[name] }));

t.test('/metrics is Prometheus text, with every family present before any traffic', async (t) => {
  const gw = await startGateway(t, { providers: { mock: { type: 'mock' } }, plugins: probeList('p1') });
  const m = await scrape(gw.url);
  t.equal(m.status, 200);
  t.match(m.contentType, /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  for (const family of [
    'heimdall_requests_total', 'heimdall_upstream_latency_seconds', 'heimdall_overhead_latency_seconds',
    'heimdall_input_tokens_total', 'heimdall_output_tokens_total', 'heimdall_plugin_hook_calls_total',
    'heimdall_plugin_hook_errors_total', 'heimdall_plugin_hook_short_circuits_total', 'heimdall_plugin_hook_latency_seconds',
    'heimdall_process_cpu_seconds_total', 'heimdall_process_resident_memory_bytes', 'heimdall_nodejs_heap_size_used_bytes',
    'heimdall_nodejs_eventloop_lag_seconds', 'heimdall_nodejs_gc_duration_seconds',
  ]) {
    t.match(m.text, new RegExp(`^# TYPE ${family} (counter|gauge|histogram)$`, 'm'), `${family} is declared`);
  }
  for (const hook of HOOKS) t.equal(m.sum('heimdall_plugin_hook_calls_total', { plugin: 'p1', hook }), 0, `p1 ${hook}: a zero series from the start`);
});

t.test('every plugin hook call is counted and timed, under the plugin name and the hook', async (t) => {
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock', latency_ms: 1 } },
    plugins: probeList('p1', 'p2', 'p3', 'bare'),
  });
  const url = `${gw.url}/v1/chat/completions`;
  for (let i = 0; i < 3; i++) t.equal((await postJson(url, chat('mock/echo', `plain ${i}`))).status, 200);
  const streamed = await postJson(url, chat('mock/echo', 'three words here', { stream: true }));
  t.equal(streamed.status, 200);
  const chunks = sseData(streamed.text).length - 1; // all but [DONE]

  const m = await scrapeUntil(gw.url, (m) => m.sum('heimdall_plugin_hook_calls_total', { plugin: 'p1', hook: 'PostHook' }) === 4);
  for (const plugin of ['p1', 'p2', 'p3']) {
    const calls = (hook: string) => m.sum('heimdall_plugin_hook_calls_total', { plugin, hook });
    t.equal(calls('TransportInterceptor'), 4, `${plugin}: one TransportInterceptor call per request`);
    t.equal(calls('PreHook'), 4, `${plugin}: PreHook`);
    t.equal(calls('PostHook'), 4, `${plugin}: PostHook, the stream's included`);
    t.equal(calls('StreamChunkHook'), chunks, `${plugin}: one StreamChunkHook call per chunk`);
    for (const hook of HOOKS) {
      const labels = { plugin, hook };
      const count = m.sum('heimdall_plugin_hook_latency_seconds_count', labels);
      t.equal(count, calls(hook), `${plugin} ${hook}: one latency observation per call`);
      t.equal(m.sum('heimdall_plugin_hook_latency_seconds_bucket', { ...labels, le: '+Inf' }), count, `${plugin} ${hook}: +Inf bucket`);
      t.ok(m.sum('heimdall_plugin_hook_latency_seconds_sum', labels) > 0, `${plugin} ${hook}: time was spent`);
      const buckets = m.samples.filter((s) => s.name === 'heimdall_plugin_hook_latency_seconds_bucket' && s.labels.plugin === plugin && s.labels.hook === hook);
      t.ok(buckets.every((b, i) => i === 0 || b.value >= (buckets[i - 1] as Sample).value), `${plugin} ${hook}: buckets are cumulative`);
      t.equal(m.sum('heimdall_plugin_hook_errors_total', labels), 0);
      t.equal(m.sum('heimdall_plugin_hook_short_circuits_total', labels), 0);
    }
  }
  t.notOk(m.has('heimdall_plugin_hook_calls_total', { plugin: 'bare' }), 'a plugin without hooks has no hook series');
  t.notOk(m.has('heimdall_plugin_hook_short_circuits_total', { hook: 'PostHook' }), 'a PostHook never short-circuits: no series');
});

t.test('a failing hook counts as an error; a PreHook answer counts as a short-circuit', async (t) => {
  const cached = { id: 'c', object: 'chat.completion', created: 1, model: 'echo', choices: [{ index: 0, message: { role: 'assistant', content: 'cached' }, finish_reason: 'stop' }] };
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock' } },
    plugins: [
      { path: probes.p1, config: { pre_status: '1', pre_output: 'probe says no' } },
      { path: probes.p2, config: { pre_output: JSON.stringify({ response: cached }) } },
      { path: probes.p3 },
    ],
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
  t.equal(res.json.choices[0].message.content, 'cached');
  const m = await scrape(gw.url);
  t.equal(m.sum('heimdall_plugin_hook_errors_total', { plugin: 'p1', hook: 'PreHook' }), 1, 'p1 PreHook failed');
  t.equal(m.sum('heimdall_plugin_hook_calls_total', { plugin: 'p1', hook: 'PreHook' }), 1, 'a failed call is still a call');
  t.equal(m.sum('heimdall_plugin_hook_latency_seconds_count', { plugin: 'p1', hook: 'PreHook' }), 1, 'and is timed');
  t.equal(m.sum('heimdall_plugin_hook_short_circuits_total', { plugin: 'p2', hook: 'PreHook' }), 1, 'p2 answered from its cache');
  t.equal(m.sum('heimdall_plugin_hook_errors_total', { plugin: 'p2' }), 0);
  t.equal(m.sum('heimdall_plugin_hook_calls_total', { plugin: 'p3', hook: 'PreHook' }), 0, 'p3 was never reached');
  t.equal(m.sum('heimdall_plugin_hook_calls_total', { plugin: 'p2', hook: 'PostHook' }), 1, 'PostHooks ran for p2 and p1');
  t.equal(m.sum('heimdall_upstream_latency_seconds_count'), 0, 'the provider was never called');
  t.equal(m.sum('heimdall_requests_total', { route: '/v1/chat/completions', provider: 'mock', model: 'echo', status: '200' }), 1,
    'a short-circuited request still counts under the provider and model it asked for');
});

t.test('TransportInterceptor and StreamChunkHook short-circuits are counted', async (t) => {
  const transport = await startGateway(t, {
    providers: { mock: { type: 'mock' } },
    plugins: [{ path: probes.p1, config: { transport_output: JSON.stringify({ response: { status_code: 403, body: { error: { message: 'no' } } } }) } }],
  });
  t.equal((await postJson(`${transport.url}/v1/chat/completions`, chat())).status, 403);
  const mt = await scrape(transport.url);
  t.equal(mt.sum('heimdall_plugin_hook_short_circuits_total', { plugin: 'p1', hook: 'TransportInterceptor' }), 1);
  t.equal(mt.sum('heimdall_requests_total', { route: '/v1/chat/completions', status: '403' }), 1);

  const chunk = await startGateway(t, {
    providers: { mock: { type: 'mock' } },
    plugins: [{ path: probes.p1, config: { chunk_output: JSON.stringify({ error: { status_code: 400, message: 'policy' } }) } }],
  });
  const res = await postJson(`${chunk.url}/v1/chat/completions`, chat('mock/echo', 'stop me', { stream: true }));
  t.match(res.text, /policy/);
  const mc = await scrapeUntil(chunk.url, (m) => m.sum('heimdall_plugin_hook_calls_total', { plugin: 'p1', hook: 'PostHook' }) === 1);
  t.equal(mc.sum('heimdall_plugin_hook_short_circuits_total', { plugin: 'p1', hook: 'StreamChunkHook' }), 1);
  t.equal(mc.sum('heimdall_plugin_hook_calls_total', { plugin: 'p1', hook: 'StreamChunkHook' }), 1, 'no chunk after the error');
});

t.test('requests, upstream latency, gateway overhead and tokens, for JSON and streamed answers', async (t) => {
  // Every upstream wait is at least 50 ms, so the overhead (total minus upstream) can only look small if the
  // upstream time was really subtracted.
  const gw = await startGateway(t, { providers: { mock: { type: 'mock', models: ['echo'], latency_ms: 50 } }, plugins: probeList('p1') });
  const url = `${gw.url}/v1/chat/completions`;
  let input = 0;
  let output = 0;
  for (let i = 0; i < 2; i++) {
    const res = await postJson(url, chat('mock/echo', `count my tokens ${i}`));
    input += res.json.usage.prompt_tokens;
    output += res.json.usage.completion_tokens;
  }
  const streamed = await postJson(url, chat('mock/echo', 'and these streamed ones', { stream: true }));
  const events = sseData(streamed.text);
  const words = events.length - 3; // the mock waits before each word: not before the role chunk, the last one, [DONE]
  const last = JSON.parse(events.at(-2) as string);
  input += last.usage.prompt_tokens;
  output += last.usage.completion_tokens;
  t.equal((await postJson(url, chat('mock/other'))).status, 404);
  t.equal((await postJson(url, chat('nope/echo'))).status, 404);

  const m = await scrapeUntil(gw.url, (m) => m.sum('heimdall_requests_total', { route: '/v1/chat/completions' }) === 5);
  const chatRoute = { route: '/v1/chat/completions' };
  t.equal(m.sum('heimdall_requests_total', { ...chatRoute, provider: 'mock', model: 'echo', status: '200' }), 3);
  t.equal(m.sum('heimdall_requests_total', { ...chatRoute, provider: '', model: '', status: '404' }), 2,
    'unknown models and providers are counted without them');

  const upstream = { provider: 'mock', model: 'echo', outcome: 'success' };
  t.equal(m.sum('heimdall_upstream_latency_seconds_count', upstream), 3, 'one upstream observation per provider call');
  const upstreamSeconds = m.sum('heimdall_upstream_latency_seconds_sum', upstream);
  t.ok(upstreamSeconds >= 0.05 * (2 + words), 'the upstream waits were measured, each streamed chunk\'s included');

  t.equal(m.sum('heimdall_overhead_latency_seconds_count', chatRoute), 5, 'overhead: every chat request');
  const overhead = m.sum('heimdall_overhead_latency_seconds_sum', chatRoute);
  t.ok(overhead < upstreamSeconds / 4, `overhead excludes the upstream time (${(overhead * 1000).toFixed(1)} ms against ${(upstreamSeconds * 1000).toFixed(0)} ms upstream)`);

  t.equal(m.sum('heimdall_input_tokens_total', { provider: 'mock', model: 'echo' }), input, 'input tokens from usage');
  t.equal(m.sum('heimdall_output_tokens_total', { provider: 'mock', model: 'echo' }), output, 'output tokens from usage');
  t.ok(input > 0 && output > 0);
});

t.test('an OpenAI-compatible upstream: tokens from its usage, failures as outcome="error"', async (t) => {
  const up = await startUpstream(t);
  const gw = await startGateway(t, { providers: { openai: { type: 'openai', base_url: up.baseUrl } } });
  const url = `${gw.url}/v1/chat/completions`;
  t.equal((await postJson(url, chat('openai/gpt-4o-mini'))).status, 200);
  t.equal((await postJson(url, chat('openai/fail-500'))).status, 500, 'the upstream\'s status');
  const m = await scrape(gw.url);
  t.equal(m.sum('heimdall_input_tokens_total', { provider: 'openai', model: 'gpt-4o-mini' }), 3);
  t.equal(m.sum('heimdall_output_tokens_total', { provider: 'openai', model: 'gpt-4o-mini' }), 4);
  t.equal(m.sum('heimdall_upstream_latency_seconds_count', { provider: 'openai', model: 'fail-500', outcome: 'error' }), 1);
  t.equal(m.sum('heimdall_requests_total', { provider: 'openai', model: 'fail-500', status: '500' }), 1);
});

t.test('model names a client makes up cannot grow the series without bound', async (t) => {
  const gw = await startGateway(t, { providers: { mock: { type: 'mock' } } });
  const url = `${gw.url}/v1/chat/completions`;
  for (let i = 0; i < 210; i++) await postJson(url, chat(`mock/made-up-${i}`));
  const m = await scrape(gw.url);
  const models = new Set(m.samples.filter((s) => s.name === 'heimdall_requests_total').map((s) => s.labels.model));
  t.ok(models.size <= 201, `${models.size} model labels`);
  t.ok(m.sum('heimdall_requests_total', { model: 'other' }) >= 10, 'the rest are counted as "other"');
  t.equal(m.sum('heimdall_requests_total', { route: '/v1/chat/completions' }), 210, 'every request is still counted');
});

t.test('gateways in one process keep separate metrics', async (t) => {
  const a = await startGateway(t, { providers: { mock: { type: 'mock' } } });
  const b = await startGateway(t, { providers: { mock: { type: 'mock' } } });
  await postJson(`${a.url}/v1/chat/completions`, chat());
  t.equal((await scrape(a.url)).sum('heimdall_requests_total', { route: '/v1/chat/completions' }), 1);
  t.equal((await scrape(b.url)).sum('heimdall_requests_total', { route: '/v1/chat/completions' }), 0);
});
