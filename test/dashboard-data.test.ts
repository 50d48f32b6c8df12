/**
 * The dashboard's data structures on their own: the inspector's ring (bounded in requests, in events per request, in
 * body text; recording only while watched), the 15-minute windows behind the charts, and the providers' keys
 * (resting after the upstream refused them, never shown themselves), read from a real gateway, and a real worker
 * pool, before a real loopback upstream.
 */
import t, { type Test as Tap } from 'tap';
import { mergeKeys } from '../src/cluster/dashboard.js';
import type { DashboardKey } from '../src/dashboard/source.js';
import { HOOK_BUCKETS } from '../src/metrics/hook-stats.js';
import { INTERVALS, INTERVAL_MS, RecentWindow } from '../src/metrics/recent.js';
import { BODY_PREVIEW, MAX_TRACES, TraceRecorder, logRedactor } from '../src/pipeline/trace.js';
import { KeyPool, type ProviderKey } from '../src/providers/http/keys.js';
import { chat, postJson, startGateway } from './helpers/gateway.js';
import { startKeyedUpstream } from './helpers/keyed-upstream.js';
import { freePort, request, startPool } from './helpers/pool.js';

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

// --- provider keys ------------------------------------------------------------------------------------------------

const TOKEN = 'dashboard-data-token-0123456789abcdef';
/** Three keys of one provider (the upstream limits the first and refuses the third) and one of another. */
const KEYS = {
  HEIMDALL_TEST_KEYS_LIMITED: 'sk-limited-4f1d9a7c2b8e6031aa',
  HEIMDALL_TEST_KEYS_GOOD: 'sk-good-9c3e7b1a5d2f8064bb',
  HEIMDALL_TEST_KEYS_REVOKED: 'sk-revoked-2a8d6f4c1e9b7053cc',
};
Object.assign(process.env, KEYS, { HEIMDALL_TEST_KEYS_TOKEN: TOKEN });
delete process.env.HEIMDALL_TEST_KEYS_UNSET;

/** No key's value, nor a recognisable part of it (its first or last 8 characters), in `text`. */
function assertNoKey(t: Tap, text: string, where: string) {
  for (const key of Object.values(KEYS)) {
    t.notOk(text.includes(key) || text.includes(key.slice(0, 8)) || text.includes(key.slice(-8)) || text.includes(key.slice(3, -3)), `${where} holds no key nor part of one`);
  }
}

t.test('a key pool tells which keys rest, until when and why, without the keys', async (t) => {
  let now = 1_000_000;
  const one: ProviderKey = { value: 'sk-one-secret', weight: 1, models: undefined };
  const two: ProviderKey = { value: 'sk-two-secret', weight: 3, models: ['m'] };
  const pool = new KeyPool('p', [one, two], () => 0, () => now);
  t.same(pool.states(), [
    { position: 1, weight: 1, models: null, resting: null },
    { position: 2, weight: 3, models: ['m'], resting: null },
  ]);
  pool.rest(two, 7000, 429);
  now += 2000;
  t.same(pool.states().map((s) => s.resting), [null, { until: new Date(1_000_000 + 7000).toISOString(), for_ms: 5000, status: 429 }]);
  t.equal(pool.rotation('m').current, one, 'a resting key is not drawn');
  t.notMatch(JSON.stringify(pool.states()), /secret/, 'no key in the states');
  now += 5000;
  t.same(pool.states().map((s) => s.resting), [null, null], 'rested: awake again');
});

t.test('in a worker pool, a key rests when any worker rests it, with how many do', async (t) => {
  const k = (position: number, resting: DashboardKey['resting']): DashboardKey => ({ provider: 'p', position, weight: 1, models: null, resting });
  const rest = (for_ms: number, status: number) => ({ until: new Date(1e12 + for_ms).toISOString(), for_ms, status, workers: 1 });
  const merged = mergeKeys([
    [k(1, rest(3000, 429)), k(2, null)],
    [k(1, rest(9000, 401)), k(2, null)],
    [k(1, null), k(2, null)],
  ]);
  t.same(merged, [k(1, { ...rest(9000, 401), workers: 2 }), k(2, null)], 'the longest rest is shown, counted in 2 workers');
  t.same(mergeKeys([[k(1, null)], [k(1, rest(500, 429))]]), [k(1, rest(500, 429))], 'one worker resting it is enough');
  t.same(mergeKeys([]), []);
});

t.test('the dashboard shows keys resting after a 429 (for its retry-after) or a 401, and never the keys', async (t) => {
  const up = await startKeyedUpstream(t, {
    [KEYS.HEIMDALL_TEST_KEYS_LIMITED]: { status: 429, headers: { 'retry-after': '20' } },
    [KEYS.HEIMDALL_TEST_KEYS_REVOKED]: { status: 401 },
  });
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: {
      openai: {
        base_url: up.baseUrl,
        keys: [{ key: 'env.HEIMDALL_TEST_KEYS_LIMITED' }, { key: 'env.HEIMDALL_TEST_KEYS_GOOD', weight: 2 }, { key: 'env.HEIMDALL_TEST_KEYS_REVOKED' }],
      },
      // Its first key's variable is unset: left out, and the second keeps its number.
      spare: { type: 'openai', base_url: up.baseUrl, keys: [{ key: 'env.HEIMDALL_TEST_KEYS_UNSET' }, { key: 'env.HEIMDALL_TEST_KEYS_GOOD', weight: 3, models: ['gpt-test'] }] },
      local: { type: 'mock' },
    },
    admin: { enabled: true, token: 'env.HEIMDALL_TEST_KEYS_TOKEN' },
  });
  const providers = async () => {
    const res = await fetch(`${gw.adminUrl}/dashboard/api/providers`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const text = await res.text();
    return { status: res.status, text, json: JSON.parse(text) as { keys: DashboardKey[] } };
  };

  const before = await providers();
  t.same(before.json.keys, [
    { provider: 'openai', position: 1, weight: 1, models: null, resting: null },
    { provider: 'openai', position: 2, weight: 2, models: null, resting: null },
    { provider: 'openai', position: 3, weight: 1, models: null, resting: null },
    { provider: 'spare', position: 2, weight: 3, models: ['gpt-test'], resting: null },
  ], 'every configured key, by its place in the list, before any traffic');

  // Keys are drawn at random: send until the upstream has seen both refused keys (a refused key is not drawn again
  // while it rests, so each is refused once). Every request is answered, by the good key.
  for (let i = 0; i < 40; i++) {
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-test', `hello ${i}`));
    t.equal(res.status, 200, 'answered by the good key');
    if (up.keysSeen.includes(KEYS.HEIMDALL_TEST_KEYS_LIMITED) && up.keysSeen.includes(KEYS.HEIMDALL_TEST_KEYS_REVOKED)) break;
  }
  t.ok(up.keysSeen.includes(KEYS.HEIMDALL_TEST_KEYS_LIMITED) && up.keysSeen.includes(KEYS.HEIMDALL_TEST_KEYS_REVOKED), 'both refused keys were tried');
  t.equal(up.keysSeen.filter((k) => k === KEYS.HEIMDALL_TEST_KEYS_LIMITED).length, 1, 'the limited key was tried once: it rests');

  const after = await providers();
  t.equal(after.status, 200);
  const [limited, good, revoked, spare] = after.json.keys;
  t.match(limited, { provider: 'openai', position: 1, resting: { status: 429, workers: 1 } }, 'key 1 rests after its 429');
  const forMs = limited?.resting?.for_ms ?? 0;
  t.ok(forMs > 10_000 && forMs <= 20_000, `for about its retry-after of 20 s (${forMs} ms)`);
  const until = Date.parse(limited?.resting?.until ?? '');
  t.ok(Math.abs(until - (Date.now() + forMs)) < 2000, 'until: now plus what is left');
  t.match(good, { position: 2, resting: null }, 'key 2 does not rest');
  t.match(revoked, { position: 3, resting: { status: 401 } }, 'key 3 rests after its 401');
  t.ok((revoked?.resting?.for_ms ?? 0) > 50_000, 'a refused credential rests for a minute');
  t.match(spare, { provider: 'spare', position: 2, resting: null });
  assertNoKey(t, after.text, 'the providers data');
  assertNoKey(t, JSON.stringify(gw.logs), 'the log');
  const missing = await fetch(`${gw.adminUrl}/dashboard/api/requests/no-such-request`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal(missing.status, 404, 'a request the inspector does not hold: 404');
  t.match(await missing.json(), { error: { code: 'HEIMDALL_ERR_ADMIN_REQUEST_UNKNOWN', message: /no-such-request.*not in the inspector's ring/ } });
});

t.test("a worker pool's dashboard shows a key resting in the workers that rest it", async (t) => {
  const up = await startKeyedUpstream(t, {
    [KEYS.HEIMDALL_TEST_KEYS_LIMITED]: { status: 429, headers: { 'retry-after': '30' } },
    [KEYS.HEIMDALL_TEST_KEYS_REVOKED]: { status: 401 },
  });
  const [port, adminPort] = [await freePort(), await freePort()];
  const p = await startPool(t, {
    server: { port, workers: 2 },
    log: { level: 'info', requests: false },
    providers: {
      openai: { base_url: up.baseUrl, keys: [{ key: 'env.HEIMDALL_TEST_KEYS_LIMITED' }, { key: 'env.HEIMDALL_TEST_KEYS_GOOD' }, { key: 'env.HEIMDALL_TEST_KEYS_REVOKED' }] },
    },
    admin: { enabled: true, token: 'env.HEIMDALL_TEST_KEYS_TOKEN', port: adminPort },
  });
  // Each request on a connection of its own, to whichever worker: each worker has its own keys' rests. Until both
  // workers were refused the limited key, if they draw it within 60 requests (keys are drawn at random).
  const tries = (key: string) => up.keysSeen.filter((k) => k === key).length;
  for (let i = 0; i < 60 && !(tries(KEYS.HEIMDALL_TEST_KEYS_LIMITED) === 2 && tries(KEYS.HEIMDALL_TEST_KEYS_REVOKED) > 0); i++) {
    t.equal((await request(`${p.url}/v1/chat/completions`, { body: chat('openai/gpt-test', `n${i}`) })).status, 200);
  }
  const limitedTries = tries(KEYS.HEIMDALL_TEST_KEYS_LIMITED);
  t.ok(tries(KEYS.HEIMDALL_TEST_KEYS_REVOKED) >= 1, 'the revoked key was tried');
  t.ok(limitedTries >= 1 && limitedTries <= 2, `the limited key was tried once per worker at most (${limitedTries})`);

  const res = await request(`http://127.0.0.1:${adminPort}/dashboard/api/providers`, { headers: { authorization: `Bearer ${TOKEN}` }, timeoutMs: 30_000 });
  t.equal(res.status, 200);
  const keys = (JSON.parse(res.body) as { keys: DashboardKey[] }).keys;
  t.same(keys.map((k) => k.position), [1, 2, 3], 'each key once, not once per worker');
  t.match(keys[0], { resting: { status: 429, workers: limitedTries } }, 'key 1 rests, in as many workers as were refused it');
  t.ok((keys[0]?.resting?.for_ms ?? 0) > 15_000, 'for about its retry-after');
  t.equal(keys[1]?.resting, null, 'key 2 does not rest');
  t.match(keys[2], { resting: { status: 401 } });
  assertNoKey(t, res.body, "the pool's providers data");
  assertNoKey(t, JSON.stringify(p.logs) + p.stderr(), "the pool's log");
});
