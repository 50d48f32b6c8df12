/**
 * The dashboard's data structures on their own: the inspector's ring (bounded in requests, in events per request, in
 * body text; recording only while watched) and the 15-minute windows behind the charts.
 */
import t from 'tap';
import { HOOK_BUCKETS } from '../src/metrics/hook-stats.js';
import { INTERVALS, INTERVAL_MS, RecentWindow } from '../src/metrics/recent.js';
import { BODY_PREVIEW, MAX_TRACES, TraceRecorder, logRedactor } from '../src/pipeline/trace.js';

t.test('the ring keeps the last N requests, newest first, and no more', async (t) => {
  const ring = new TraceRecorder(3, undefined, true);
  for (let i = 0; i < 5; i++) ring.start(`r${i}`, '/v1/chat/completions')?.finish(200);
  t.same(ring.list().map((r) => r.id), ['r4', 'r3', 'r2']);
  t.same(ring.list(2).map((r) => r.id), ['r4', 'r3']);
  t.equal(ring.get('r1'), undefined, 'an older one is gone');
  t.equal(new TraceRecorder(1e9, undefined, true).size, MAX_TRACES, 'the size has a hard cap');
  t.equal(new TraceRecorder(0, undefined, true).size, 1);
});

t.test('while nobody watches, nothing is recorded; a look records the next requests', async (t) => {
  const ring = new TraceRecorder(10);
  t.equal(ring.start('before', '/x'), undefined);
  t.equal(ring.active, false);
  ring.watch();
  t.equal(ring.active, true);
  t.ok(ring.start('after', '/x'));
  t.same(ring.list().map((r) => r.id), ['after']);
});

t.test('a timeline: decisions, attempts, chunk hooks folded per plugin, events bounded', async (t) => {
  const ring = new TraceRecorder(2, undefined, true);
  const trace = ring.start('req', '/v1/chat/completions');
  if (trace === undefined) throw new Error('not recording');
  trace.nextAttempt('openai/a');
  trace.hook('PreHook', 'guard', 'error', performance.now(), 'x'.repeat(1000));
  trace.provider('openai/a', performance.now(), 'HEIMDALL_ERR_UPSTREAM_STATUS');
  trace.nextAttempt('openai/b');
  trace.hook('PreHook', 'block', 'short-circuit', performance.now());
  for (let i = 0; i < 1000; i++) trace.chunk('redactor', performance.now(), i % 10 === 0 ? 'modified' : 'continue');
  trace.finish(403);
  trace.finish(200); // the first status stands
  const detail = ring.get('req');
  t.match(detail, { status: 403, short_circuit: 'block', hook_errors: 1, attempts: 2, served_by: null, model: 'openai/b' });
  t.same(detail?.events.map((e) => e.kind), ['hook', 'provider', 'hook', 'chunks'], 'a stream of chunks is one event per plugin');
  t.match(detail?.events[3], { plugin: 'redactor', calls: 1000, modified: 100 });
  const first = detail?.events[0];
  t.ok(first?.kind === 'hook' && first.message !== undefined && first.message.length <= 303, 'a message is cut');
  t.match(detail?.events[1], { attempt: 1, outcome: 'error', error: 'HEIMDALL_ERR_UPSTREAM_STATUS' });

  const busy = ring.start('busy', '/x');
  for (let i = 0; i < 1000; i++) busy?.hook('PreHook', `p${i}`, 'continue', performance.now());
  const kept = ring.get('busy');
  t.equal(kept?.events.length, 200, 'at most 200 events');
  t.equal(kept?.truncated, true, 'and it says so');
});

t.test('bodies: redacted as the logs redact them, and cut', async (t) => {
  const ring = new TraceRecorder(2, logRedactor(), true);
  const trace = ring.start('req', '/v1/chat/completions');
  trace?.recordBodies({ model: 'm', api_key: 'sk-secret', messages: [{ role: 'user', content: 'y'.repeat(10_000) }] }, undefined, undefined);
  const bodies = ring.get('req')?.bodies;
  t.notMatch(bodies?.request, /sk-secret/);
  t.match(bodies?.request, /"api_key": "\[redacted\]"/);
  t.ok((bodies?.request?.length ?? 0) < BODY_PREVIEW + 100, 'cut to the preview length');
  t.match(bodies?.request, /more characters\)$/);
  t.notOk(new TraceRecorder(2, undefined, true).start('x', '/x')?.redact, 'without log.bodies there is nothing to record them with');
});

t.test('a window: counts per 10 s interval over 15 minutes, percentiles from the buckets', async (t) => {
  const window = new RecentWindow(HOOK_BUCKETS);
  for (let i = 0; i < 98; i++) window.record(0.000004); // 4 µs: the (2.5, 5] µs bucket
  window.record(0.02);
  window.record(0.02); // 20 ms: the (5, 25] ms bucket
  window.failed();
  window.shortCircuited();
  const s = window.snapshot();
  t.equal(s.calls.length, INTERVALS);
  t.equal(s.interval_ms, INTERVAL_MS);
  t.equal(s.calls.at(-1), 100, 'the current interval');
  t.equal(s.calls.slice(0, -1).reduce((a, b) => a + b, 0), 0, 'and nothing before it');
  t.equal(s.errors.at(-1), 1);
  t.equal(s.short_circuits.at(-1), 1);
  const p50 = s.p50_ms.at(-1) as number;
  const p99 = s.p99_ms.at(-1) as number;
  t.ok(p50 > 0.0025 && p50 <= 0.005, `p50 ${p50} ms in the 4 µs bucket`);
  t.ok(p99 > 5 && p99 <= 25, `p99 ${p99} ms in the 20 ms bucket`);
  t.equal(s.p50_ms[0], null, 'an interval without calls has no percentile');
  t.ok(Date.now() - s.start < (INTERVALS + 1) * INTERVAL_MS && Date.now() - s.start >= (INTERVALS - 1) * INTERVAL_MS, 'the window ends now');
});
