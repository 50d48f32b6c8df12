/**
 * The plain metric series (series.ts) and what is built on them, without a gateway: counters and histograms in the
 * Prometheus text format (cumulative buckets, +Inf, sum, count), label escaping, many label tuples, hook stats, and
 * GatewayMetrics' whole output, its process metrics, and their stopping when the gateway closes. Every rendering is
 * checked against the text exposition format by a parser of its own, independent of prom-client.
 */
import t from 'tap';
import { HookMetrics } from '../src/metrics/hook-stats.js';
import { GatewayMetrics } from '../src/metrics/metrics.js';
import { CounterFamily, HistogramFamily, escapeLabel, renderFamilies } from '../src/metrics/series.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\]|\\\\[\\\\"n])*"';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(${LABEL}(?:,${LABEL})*)?\\})? (\\S+)(?: -?\\d+)?$`);
const HELP = new RegExp(`^# HELP (${NAME}) ((?:[^\\\\]|\\\\[\\\\n])*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/**
 * The samples of a text exposition (format 0.0.4), after checking what a Prometheus server checks: the syntax of
 * every line, escapes, one HELP and one TYPE per family before its samples, a family's samples together, no sample
 * twice, and for a histogram, increasing `le` bounds with cumulative counts, a +Inf bucket equal to _count, and a _sum.
 */
function exposition(text: string): Sample[] {
  if (!text.endsWith('\n')) throw new Error('the text must end with a line feed');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const done = new Set<string>();
  const seen = new Set<string>();
  const samples: Sample[] = [];
  let current: string | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const help = HELP.exec(line);
    const type = TYPE.exec(line);
    if (help !== null) {
      if (helps.has(help[1] as string)) throw new Error(`a second HELP: ${line}`);
      helps.add(help[1] as string);
    } else if (type !== null) {
      const name = type[1] as string;
      if (types.has(name) || done.has(name)) throw new Error(`a second TYPE, or a TYPE after samples: ${line}`);
      types.set(name, type[2] as string);
      if (current !== undefined) done.add(current);
      current = name;
    } else if (line.startsWith('#')) {
      if (/^# (HELP|TYPE) /.test(line)) throw new Error(`a malformed HELP or TYPE: ${line}`);
    } else {
      const m = SAMPLE.exec(line);
      if (m === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
      const name = m[1] as string;
      const family = types.get(name) !== undefined ? name : name.replace(/_(bucket|sum|count)$/, '');
      if (family !== current || (family !== name && types.get(family) !== 'histogram')) {
        throw new Error(`a sample outside its family, or before its TYPE: ${line}`);
      }
      const labels: Record<string, string> = {};
      for (const [, key, value] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        if ((key as string) in labels) throw new Error(`label ${key} twice: ${line}`);
        labels[key as string] = (value as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
      const raw = m[3] as string;
      const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
      if (raw === '' || (Number.isNaN(value) && raw !== 'NaN')) throw new Error(`not a number: ${line}`);
      const id = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`)}}`;
      if (seen.has(id)) throw new Error(`a sample twice: ${line}`);
      seen.add(id);
      samples.push({ name, labels, value });
    }
  }
  for (const [family, type] of types) if (type === 'histogram') checkHistogram(family, samples);
  return samples;
}

function checkHistogram(family: string, samples: Sample[]): void {
  const series = new Map<string, { le: number[]; counts: number[]; sum?: number; count?: number }>();
  const of = (labels: Record<string, string>) => {
    const { le: _, ...rest } = labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let s = series.get(key);
    if (s === undefined) series.set(key, (s = { le: [], counts: [] }));
    return s;
  };
  for (const sample of samples) {
    if (sample.name === `${family}_bucket`) {
      const le = sample.labels.le;
      if (le === undefined) throw new Error(`${family}: a bucket without le`);
      of(sample.labels).le.push(le === '+Inf' ? Infinity : Number(le));
      of(sample.labels).counts.push(sample.value);
    } else if (sample.name === `${family}_sum`) of(sample.labels).sum = sample.value;
    else if (sample.name === `${family}_count`) of(sample.labels).count = sample.value;
  }
  for (const [key, s] of series) {
    const where = `${family} ${key}`;
    if (s.le.some((le, i) => Number.isNaN(le) || (i > 0 && le <= (s.le[i - 1] as number)))) throw new Error(`${where}: le not increasing`);
    if (s.counts.some((c, i) => i > 0 && c < (s.counts[i - 1] as number))) throw new Error(`${where}: buckets not cumulative`);
    if (s.le.at(-1) !== Infinity || s.counts.at(-1) !== s.count) throw new Error(`${where}: +Inf bucket missing or not _count`);
    if (s.sum === undefined) throw new Error(`${where}: no _sum`);
  }
}

const sampleOf = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

t.test('the exposition checker rejects what a scraper would', async (t) => {
  const bad = {
    'an unescaped quote': '# TYPE x counter\nx{a="b"c"} 1\n',
    'a bad escape': '# TYPE x counter\nx{a="\\t"} 1\n',
    'a sample before its TYPE': 'x 1\n# TYPE x counter\n',
    'a sample twice': '# TYPE x counter\nx{a="1"} 1\nx{a="1"} 2\n',
    'a value that is no number': '# TYPE x counter\nx 1ms\n',
    'no final line feed': '# TYPE x counter\nx 1',
    'buckets not cumulative': '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    'no +Inf bucket': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    'no _sum': '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n',
  };
  for (const [what, text] of Object.entries(bad)) t.throws(() => exposition(text), what);
  t.same(exposition('# HELP x X.\n# TYPE x gauge\nx{a="\\"q\\"\\\\"} -Inf\n'), [{ name: 'x', labels: { a: '"q"\\' }, value: -Infinity }]);
});

t.test('a counter family: HELP, TYPE and one line per series, in the order the series appeared', async (t) => {
  const requests = new CounterFamily('x_requests_total', 'Requests.', ['route', 'status']);
  t.equal(requests.render(), '# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n', 'no series: the family is still declared');
  requests.labels('/a', '200').value++;
  requests.labels('/a', '200').value++;
  requests.labels('/b', '404').value += 3;
  requests.labels('/a', '500');
  t.equal(
    requests.render(),
    [
      '# HELP x_requests_total Requests.',
      '# TYPE x_requests_total counter',
      'x_requests_total{route="/a",status="200"} 2',
      'x_requests_total{route="/b",status="404"} 3',
      'x_requests_total{route="/a",status="500"} 0',
      '',
    ].join('\n'),
  );
  t.equal(requests.labels('/a', '200'), requests.labels('/a', '200'), 'the same tuple, the same series');
  t.throws(() => requests.labels('/a'), /takes 2 label values, not 1/);

  const plain = new CounterFamily('x_total', 'No labels.', []);
  plain.labels().value = 1.5;
  t.match(plain.render(), /^x_total 1\.5$/m, 'a family without labels writes no braces');
});

t.test('a histogram family: cumulative buckets, +Inf, sum and count; a value on a bound is in that bound\'s bucket', async (t) => {
  const latency = new HistogramFamily('x_latency_seconds', 'Latency.', ['route'], [0.001, 0.01, 0.1]);
  const a = latency.labels('/a');
  for (const v of [0.0005, 0.001, 0.005, 0.01, 0.05, 2]) a.observe(v);
  latency.labels('/b');
  t.equal(
    latency.render(),
    [
      '# HELP x_latency_seconds Latency.',
      '# TYPE x_latency_seconds histogram',
      'x_latency_seconds_bucket{route="/a",le="0.001"} 2',
      'x_latency_seconds_bucket{route="/a",le="0.01"} 4',
      'x_latency_seconds_bucket{route="/a",le="0.1"} 5',
      'x_latency_seconds_bucket{route="/a",le="+Inf"} 6',
      `x_latency_seconds_sum{route="/a"} ${0.0005 + 0.001 + 0.005 + 0.01 + 0.05 + 2}`,
      'x_latency_seconds_count{route="/a"} 6',
      'x_latency_seconds_bucket{route="/b",le="0.001"} 0',
      'x_latency_seconds_bucket{route="/b",le="0.01"} 0',
      'x_latency_seconds_bucket{route="/b",le="0.1"} 0',
      'x_latency_seconds_bucket{route="/b",le="+Inf"} 0',
      'x_latency_seconds_sum{route="/b"} 0',
      'x_latency_seconds_count{route="/b"} 0',
      '',
    ].join('\n'),
  );
  exposition(latency.render());

  const bare = new HistogramFamily('x_bare_seconds', 'No labels.', [], [1]);
  bare.labels().observe(3);
  t.match(bare.render(), /^x_bare_seconds_bucket\{le="\+Inf"\} 1$/m);
  t.match(bare.render(), /^x_bare_seconds_sum 3$/m);
  t.throws(() => new HistogramFamily('x', 'x', [], [1, 1]), /increasing/);
  t.throws(() => new HistogramFamily('x', 'x', [], [1, Infinity]), /finite/);
});

t.test('label values and help texts are escaped as the text format requires', async (t) => {
  t.equal(escapeLabel('a\\b\nc"d'), 'a\\\\b\\nc\\"d');
  const family = new CounterFamily('x_total', 'Help with a \\ and a\nline feed.', ['model']);
  const nasty = ['back\\slash', 'line\nfeed', 'quo"te', '}{,=', 'ünïcödé', 'nul\u0000inside', ''];
  nasty.forEach((model, i) => (family.labels(model).value = i + 1));
  const text = family.render();
  t.match(text, /^# HELP x_total Help with a \\\\ and a\\nline feed\.$/m);
  const samples = exposition(text);
  t.same(samples.map((s) => s.labels.model), nasty, 'every value reads back as it was');
  t.same(samples.map((s) => s.value), nasty.map((_, i) => i + 1));
});

t.test('many label tuples: each its own series, found again by its values', async (t) => {
  const requests = new CounterFamily('x_requests_total', 'Requests.', ['provider', 'model', 'status']);
  const latency = new HistogramFamily('x_latency_seconds', 'Latency.', ['provider', 'model'], [0.1, 1]);
  for (let round = 0; round < 3; round++) {
    for (let m = 0; m < 500; m++) {
      for (const status of ['200', '500']) requests.labels(`p${m % 7}`, `model-${m}`, status).value++;
      latency.labels(`p${m % 7}`, `model-${m}`).observe(m / 250);
    }
  }
  const samples = exposition(renderFamilies([requests, latency]));
  const counts = sampleOf(samples, 'x_requests_total');
  t.equal(counts.length, 1000);
  t.ok(counts.every((s) => s.value === 3), 'every tuple counted three times, in its own series');
  t.equal(sampleOf(samples, 'x_latency_seconds_count').length, 500);
  t.same(sampleOf(samples, 'x_latency_seconds_bucket', { provider: 'p1', model: 'model-400' }).map((s) => s.value), [0, 0, 3]);
  t.ok(Math.abs((sampleOf(samples, 'x_latency_seconds_sum', { model: 'model-400' })[0]?.value ?? 0) - 4.8) < 1e-9);
  // Only one value of a tuple here may hold a NUL, so the joined key stays unambiguous.
  requests.labels('p', 'a\u0000b', '200').value++;
  requests.labels('p', 'a', '200').value++;
  t.equal(sampleOf(exposition(requests.render()), 'x_requests_total', { provider: 'p' }).length, 2);
});

t.test('hook stats: four families; a PostHook has no short-circuit series', async (t) => {
  const hooks = new HookMetrics();
  const pre = hooks.statsFor('p"1', 'PreHook');
  const post = hooks.statsFor('p"1', 'PostHook');
  pre.record(0.000003);
  pre.record(0.2);
  pre.failed();
  pre.shortCircuited();
  post.record(0.00001);
  post.shortCircuited();
  hooks.statsFor('p"1', 'PreHook').record(0.001); // the plugin loaded again
  const samples = exposition(hooks.render());
  const pre1 = { plugin: 'p"1', hook: 'PreHook' };
  t.equal(sampleOf(samples, 'heimdall_plugin_hook_calls_total', pre1)[0]?.value, 3, 'a reload keeps counting in the same series');
  t.equal(sampleOf(samples, 'heimdall_plugin_hook_latency_seconds_count', pre1)[0]?.value, 3);
  t.equal(sampleOf(samples, 'heimdall_plugin_hook_latency_seconds_bucket', { ...pre1, le: '0.000005' })[0]?.value, 1);
  t.equal(sampleOf(samples, 'heimdall_plugin_hook_errors_total', pre1)[0]?.value, 1);
  t.equal(sampleOf(samples, 'heimdall_plugin_hook_short_circuits_total', pre1)[0]?.value, 1);
  t.same(sampleOf(samples, 'heimdall_plugin_hook_short_circuits_total', { hook: 'PostHook' }), []);
  t.equal(sampleOf(samples, 'heimdall_plugin_hook_calls_total', { hook: 'PostHook' })[0]?.value, 1);
});

/** Waits until `check` holds, or a few seconds have passed. */
async function until(check: () => Promise<boolean>): Promise<boolean> {
  for (const end = Date.now() + 5000; Date.now() < end; ) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

t.test('GatewayMetrics: prom-client and plain series in one valid exposition; process metrics stop on close', async (t) => {
  const a = new GatewayMetrics();
  const b = new GatewayMetrics();
  t.teardown(() => {
    a.close();
    b.close();
  });
  t.equal(a.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  a.watchProcess();
  a.watchProcess(); // twice: no second monitor, no "already registered"
  b.watchProcess();
  a.observeRequest('/v1/chat/completions', 200, 3, undefined);
  a.upstreamCall('mock', 'echo', 20, true);
  a.tokens('mock', 'echo', { input: 5, output: 0 });

  const text = await a.render();
  const samples = exposition(text);
  for (const family of [
    'heimdall_requests_total', 'heimdall_upstream_latency_seconds', 'heimdall_overhead_latency_seconds',
    'heimdall_input_tokens_total', 'heimdall_output_tokens_total', 'heimdall_plugin_hook_calls_total',
    'heimdall_process_cpu_seconds_total', 'heimdall_process_resident_memory_bytes', 'heimdall_nodejs_heap_size_used_bytes',
    'heimdall_nodejs_eventloop_lag_seconds', 'heimdall_nodejs_eventloop_lag_p99_seconds', 'heimdall_nodejs_gc_duration_seconds',
    'heimdall_process_start_time_seconds',
  ]) {
    t.match(text, new RegExp(`^# TYPE ${family} (counter|gauge|histogram)$`, 'm'), `${family} is declared`);
  }
  t.equal(sampleOf(samples, 'heimdall_requests_total', { route: '/v1/chat/completions', provider: '', model: '', status: '200' })[0]?.value, 1);
  t.equal(sampleOf(samples, 'heimdall_upstream_latency_seconds_bucket', { model: 'echo', outcome: 'success', le: '0.025' })[0]?.value, 1);
  t.equal(sampleOf(samples, 'heimdall_input_tokens_total', { provider: 'mock', model: 'echo' })[0]?.value, 5);
  t.same(sampleOf(samples, 'heimdall_output_tokens_total'), [], 'no tokens reported, no series');
  t.ok((sampleOf(samples, 'heimdall_process_cpu_seconds_total')[0]?.value ?? 0) > 0, 'CPU time');
  t.ok((sampleOf(samples, 'heimdall_nodejs_eventloop_lag_seconds')[0]?.value ?? -1) >= 0, 'event-loop lag');
  t.same(sampleOf(exposition(await b.render()), 'heimdall_requests_total'), [], 'the other gateway counted nothing');

  await new Promise((r) => setTimeout(r, 60));
  const lag = sampleOf(exposition(await b.render()), 'heimdall_nodejs_eventloop_lag_p50_seconds')[0]?.value ?? 0;
  t.ok(lag > 0, `the event-loop delay monitor runs (p50 ${lag} s)`);

  const gc = globalThis.gc;
  if (typeof gc !== 'function') {
    t.skip('GC observation needs --expose-gc');
    return;
  }
  const gcs = async (m: GatewayMetrics) =>
    sampleOf(exposition(await m.render()), 'heimdall_nodejs_gc_duration_seconds_count').reduce((n, s) => n + s.value, 0);
  gc();
  t.ok(await until(async () => (await gcs(a)) > 0 && (await gcs(b)) > 0), 'each gateway observes GC pauses');
  a.close();
  a.watchProcess(); // closed for good
  await new Promise((r) => setTimeout(r, 50)); // a GC entry already queued may still arrive
  const before = await gcs(a);
  const other = await gcs(b);
  gc();
  t.ok(await until(async () => (await gcs(b)) > other), 'the open gateway sees the next GC');
  t.equal(await gcs(a), before, 'the closed one no longer observes');
  t.ok(exposition(await a.render()).length > 0, 'a closed gateway still renders');
});

t.test('merging workers\' expositions: one heading per family, every sample labelled with its worker, families kept whole', async (t) => {
  const { mergeExpositions } = await import('../src/metrics/merge.js');
  const one = [
    '# HELP a_total A.', '# TYPE a_total counter', 'a_total{route="/x"} 1',
    '# HELP h_seconds H.', '# TYPE h_seconds histogram', 'h_seconds_bucket{le="1"} 2', 'h_seconds_bucket{le="+Inf"} 2', 'h_seconds_sum 0.5', 'h_seconds_count 2',
    'bare 7',
  ].join('\n');
  const two = [
    '# HELP a_total A.', '# TYPE a_total counter', 'a_total{route="/x"} 3',
    '# HELP h_seconds H.', '# TYPE h_seconds histogram', 'h_seconds_bucket{le="1"} 1', 'h_seconds_bucket{le="+Inf"} 1', 'h_seconds_sum 0.1', 'h_seconds_count 1',
  ].join('\n');
  const merged = mergeExpositions([{ worker: '1', text: one }, { worker: '2', text: two }]);
  t.equal(merged, [
    '# HELP a_total A.', '# TYPE a_total counter', 'a_total{worker="1",route="/x"} 1', 'a_total{worker="2",route="/x"} 3',
    '# HELP h_seconds H.', '# TYPE h_seconds histogram',
    'h_seconds_bucket{worker="1",le="1"} 2', 'h_seconds_bucket{worker="1",le="+Inf"} 2', 'h_seconds_sum{worker="1"} 0.5', 'h_seconds_count{worker="1"} 2',
    'h_seconds_bucket{worker="2",le="1"} 1', 'h_seconds_bucket{worker="2",le="+Inf"} 1', 'h_seconds_sum{worker="2"} 0.1', 'h_seconds_count{worker="2"} 1',
    'bare{worker="1"} 7',
  ].join('\n') + '\n');
});
