/**
 * The shared store's redis backend against a real redis-server: values shared by every process that points at the
 * same Redis (through real gateway processes, a pool of 2 workers and a second gateway), a rate limit held across
 * processes within the documented slack (and per process with the memory backend), and Redis going away and coming
 * back mid-test: what the calls answer meanwhile, and that nothing crashes.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { parseConfig } from '../src/config/load.js';
import { RedisKv } from '../src/host/kv-redis.js';
import { HostStatus } from '../src/host/status.js';
import { hostPlugins } from './fixtures/host/build.js';
import { haveRedis, startRedis, type RedisServer } from './fixtures/host/redis.js';
import { runCli, waitFor } from './helpers/cli.js';
import { REPO } from './helpers/fixtures.js';
import { chat } from './helpers/gateway.js';
import { needs } from './helpers/toolchains.js';
import { freePort, request, sleep, startPool } from './helpers/pool.js';
import { startUpstream } from './helpers/upstream.js';

/** Every test here needs Debian's redis-server: skipped without it (a failure under HEIMDALL_TEST_REQUIRE_TOOLS=1). */
const skip = needs(haveRedis() ? false : 'redis-server is not installed (apt-get install redis-server; brew install redis)');

const LEASE = 10;

function kvConfig(url: string, extra: Record<string, unknown> = {}) {
  return parseConfig({ providers: { mock: {} }, host: { kv: { backend: 'redis', redis: { url, lease: LEASE, connect_timeout_ms: 1000, ...extra } } } }, 'test').host.kv;
}

async function store(t: { teardown(fn: () => unknown): void }, url: string, extra: Record<string, unknown> = {}): Promise<RedisKv> {
  const kv = await RedisKv.connect(kvConfig(url, extra), pino({ level: 'silent' }));
  t.teardown(() => kv.close());
  return kv;
}

const text = (b: Buffer | undefined) => b?.toString() ?? '(none)';

async function eventually(check: () => boolean, ms = 3000): Promise<boolean> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) return false;
    await sleep(10);
  }
  return true;
}

t.test('two stores on one Redis: a write on one is read on the other, without waiting on the network', { skip }, async (t) => {
  const redis = await startRedis(t);
  const a = await store(t, redis.url);
  const b = await store(t, redis.url);
  t.equal(a.set('p:k', Buffer.from('v1'), 60_000), HostStatus.OK);
  t.equal(text(a.get('p:k').value), 'v1', 'the writer reads its own write at once');
  t.ok(await eventually(() => b.get('p:k').status === HostStatus.OK), 'the other store has it soon after (pub/sub)');
  t.equal(text(b.get('p:k').value), 'v1');
  t.equal(redis.cli('GET', 'heimdall:kv:p:k'), 'v1', 'Redis holds it under the prefix');
  t.ok(Number(redis.cli('PTTL', 'heimdall:kv:p:k')) > 50_000, 'with its TTL');

  // A key written before a store started: the first get misses, and fetches it meanwhile.
  redis.cli('SET', 'heimdall:kv:p:old', 'from-before');
  const c = await store(t, redis.url);
  t.equal(c.get('p:old').status, HostStatus.NOT_FOUND, 'a key never seen here misses at first');
  t.ok(await eventually(() => c.get('p:old').status === HostStatus.OK), 'and is there once fetched');
  t.equal(text(c.get('p:old').value), 'from-before');

  // Delete travels too.
  t.equal(a.set('p:k', null, 0), HostStatus.OK);
  t.ok(await eventually(() => b.get('p:k').status === HostStatus.NOT_FOUND), 'a delete reaches the other view');

  // Compare-and-set: atomic here, checked again by Redis; the loser's view takes Redis's value.
  t.equal(a.cas('p:lock', null, Buffer.from('a'), 60_000), HostStatus.OK, 'A takes the free key');
  t.equal(b.cas('p:lock', null, Buffer.from('b'), 60_000), HostStatus.OK, 'B, not having heard yet, also succeeds locally');
  await sleep(200);
  const winner = redis.cli('GET', 'heimdall:kv:p:lock');
  t.ok(winner === 'a' || winner === 'b', `Redis kept the one that reached it first (${winner})`);
  t.ok(await eventually(() => text(a.get('p:lock').value) === winner && text(b.get('p:lock').value) === winner),
    'the loser\'s view was corrected to Redis\'s value: both views agree with Redis');
  const [loser, lost] = winner === 'a' ? [b, 'b'] : [a, 'a'];
  t.equal(loser.cas('p:lock', Buffer.from(lost), Buffer.from('c'), 60_000), HostStatus.CONFLICT, 'a cas on the lost value now conflicts');
});

t.test('a counter across two stores: leased units are handed out once, the limit holds within the documented slack', { skip }, async (t) => {
  const redis = await startRedis(t);
  const a = await store(t, redis.url);
  const b = await store(t, redis.url);
  const LIMIT = 100;
  let admitted = 0;
  const values: bigint[] = [];
  for (let i = 0; i < 300; i++) {
    const kv = i % 2 === 0 ? a : b;
    const r = kv.incr('p:rl', 1n, 60_000);
    t.not(r.status, HostStatus.E_INVALID);
    if (r.value <= LIMIT) admitted++;
    values.push(r.value);
    if (i % 7 === 0) await sleep(1); // let leases arrive, as real traffic does between requests
  }
  await sleep(200);
  const total = Number(redis.cli('GET', 'heimdall:kv:p:rl'));
  t.ok(total >= 300, `Redis counted every increment, leased ahead (${total})`);
  t.ok(admitted <= LIMIT + 2 * LEASE, `at most limit + N x lease admitted (${admitted} <= ${LIMIT + 2 * LEASE})`);
  t.ok(admitted >= LIMIT - 2 * 2 * LEASE, `and at least limit - N x 2 x lease (${admitted})`);
  const pttl = Number(redis.cli('PTTL', 'heimdall:kv:p:rl'));
  t.ok(pttl > 50_000 && pttl <= 60_000, `the window's TTL was set by the first lease (${pttl} ms left)`);
});

t.test('Redis goes away and comes back: calls answer from the view meanwhile, writes wait, nothing crashes', { skip }, async (t) => {
  const redis = await startRedis(t);
  const logs: { msg: string; code?: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const a = await RedisKv.connect(kvConfig(redis.url, { max_pending: 50 }), log);
  t.teardown(() => a.close());
  const b = await store(t, redis.url);
  a.set('p:before', Buffer.from('x'), 0);
  t.ok(await eventually(() => b.get('p:before').status === HostStatus.OK));
  for (let i = 0; i < 5; i++) a.incr('p:n', 1n, 60_000);
  await sleep(100);

  await redis.stop();
  t.ok(await eventually(() => !a.connected), 'the store noticed');
  t.equal(text(a.get('p:before').value), 'x', 'get: the view still answers');
  t.equal(a.set('p:during', Buffer.from('y'), 0), HostStatus.OK, 'set: accepted, kept for later');
  t.equal(text(a.get('p:during').value), 'y', 'and read back here at once');
  let unavailable = 0;
  let last = 0n;
  for (let i = 0; i < 40; i++) {
    const r = a.incr('p:n', 1n, 60_000);
    if (r.status === HostStatus.E_UNAVAILABLE) unavailable++;
    else t.equal(r.status, HostStatus.OK);
    t.ok(r.value > last, 'incr: the estimate still counts up');
    last = r.value;
  }
  t.ok(unavailable > 0 && unavailable <= 40 - 1, `incr: OK within the leased and unleased allowance, then E_UNAVAILABLE (${unavailable} of 40)`);
  let refused = 0;
  for (let i = 0; i < 100; i++) if (a.set(`p:many${i}`, Buffer.from('z'), 0) === HostStatus.E_UNAVAILABLE) refused++;
  t.ok(refused > 0, `set: past max_pending, a new key is refused (${refused})`);
  t.ok(logs.some((l) => l.code === 'HEIMDALL_ERR_HOST_REDIS_DOWN'), 'the outage is logged with its code');

  await redis.start();
  t.ok(await eventually(() => a.connected, 10_000), 'the store reconnected on its own');
  t.ok(logs.some((l) => /Redis is back/.test(l.msg)), 'and said so');
  t.ok(await eventually(() => redis.cli('GET', 'heimdall:kv:p:during') === 'y', 5000), 'the write made meanwhile reached Redis');
  t.ok(await eventually(() => Number(redis.cli('GET', 'heimdall:kv:p:n') || 0) >= 40, 5000), 'the increments counted meanwhile too');
  t.ok(await eventually(() => b.connected && b.get('p:during').status === HostStatus.OK, 5000), 'and the other store reads it');
});

// ---- Through real gateway processes --------------------------------------------------------------------------------

function writeConfig(raw: Record<string, unknown>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-kv-'));
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(raw));
  return file;
}

/** A single gateway process (`heimdall start`), its URL once it listens. */
async function gateway(t: { teardown(fn: () => unknown): void }, raw: Record<string, unknown>): Promise<{ url: string; out: () => string }> {
  const cli = runCli(['start', '--config', writeConfig(raw)]);
  t.teardown(() => cli.child.kill('SIGKILL'));
  const url = await cli.listening();
  return { url, out: cli.out };
}

const CACHE = path.join(REPO, 'build', 'Release', `cache${process.platform === 'darwin' ? '.dylib' : '.so'}`);

async function post(url: string, content: string): Promise<number> {
  return (await request(`${url}/v1/chat/completions`, { body: chat('openai/gpt', content) })).status;
}

t.test('the cache example answers a repeated request from the other worker and from another gateway on the same Redis', { skip }, async (t) => {
  const redis: RedisServer = await startRedis(t);
  const up = await startUpstream(t);
  const config = (port: number, workers?: number) => ({
    server: { port, ...(workers === undefined ? {} : { workers }) },
    log: { level: 'info', requests: false },
    host: { kv: { backend: 'redis', redis: { url: redis.url } } },
    providers: { openai: { base_url: up.baseUrl } },
    plugins: [{ path: CACHE, config: { ttl_seconds: 60 } }],
  });
  const pool = await startPool(t, config(await freePort(), 2));
  const other = await gateway(t, config(0));

  t.equal(await post(pool.url, 'cache me'), 200);
  t.equal(up.seen.length, 1, 'the first request reached the provider');
  await sleep(100); // the write reaches Redis and every view
  for (let i = 0; i < 6; i++) t.equal(await post(pool.url, 'cache me'), 200);
  t.equal(up.seen.length, 1, 'six more, over both workers (a connection each), all answered from the store');
  // The pool's merged /metrics: the cache's short-circuits (hits), per worker.
  const metrics = (await request(`${pool.url}/metrics`)).body;
  const hits = [...metrics.matchAll(/^heimdall_plugin_hook_short_circuits_total\{worker="([^"]+)",plugin="cache",hook="PreHook"\} (\d+)/gm)]
    .filter((m) => Number(m[2]) > 0).map((m) => m[1]);
  t.ok(hits.length >= 2, `hits were answered by more than one worker (workers ${hits.join(', ')}), including the one that did not store it`);
  t.equal(await post(other.url, 'cache me'), 200);
  t.equal(up.seen.length, 1, 'and the other gateway answers it too');

  // Redis stops: requests still work (misses go to the provider), nothing crashes; it comes back and sharing resumes.
  await redis.stop();
  await sleep(300);
  t.equal(await post(other.url, 'while redis is away'), 200, 'a request while Redis is away is served');
  t.equal(await post(pool.url, 'cache me'), 200, 'the pool serves too');
  await redis.start(); // empty: no persistence
  // Every process reconnects on its own backoff: the gateway, and each worker of the pool.
  await waitFor(() => /Redis is back/.test(other.out()), 'the gateway to reconnect', 10_000);
  await waitFor(() => pool.logs.filter((l) => /Redis is back/.test(l.msg)).length >= 2, 'both workers to reconnect', 10_000);
  const before = up.seen.length;
  t.equal(await post(other.url, 'after the outage'), 200);
  await sleep(200);
  for (let i = 0; i < 4; i++) t.equal(await post(pool.url, 'after the outage'), 200);
  t.equal(up.seen.length, before + 1, 'after the outage, a response cached by one gateway answers on the other again');
  t.equal(pool.child.exitCode, null, 'the pool is still running');
});

t.test('a limit of 100 with kv_incr: across 2 gateway processes and across 2 workers on one Redis within the slack; with memory, per process', { skip }, async (t) => {
  const { hostsvc } = await hostPlugins();
  const redis = await startRedis(t);
  const config = (backend: 'redis' | 'memory') => ({
    server: { port: 0 },
    log: { level: 'info', requests: false },
    host: { kv: { backend, redis: { url: redis.url, lease: LEASE } } },
    providers: { mock: {} },
    plugins: [{ path: hostsvc, config: { limit: 100, window_ms: 60_000 } }],
  });
  const count = async (urls: string[], n: number) => {
    let ok = 0;
    let limited = 0;
    for (let i = 0; i < n; i++) {
      const status = (await request(`${urls[i % urls.length]}/v1/chat/completions`, { body: chat('mock/echo', 'hi') })).status;
      if (status === 200) ok++;
      else if (status === 429) limited++;
    }
    return { ok, limited };
  };

  const shared = [await gateway(t, config('redis')), await gateway(t, config('redis'))];
  const withRedis = await count(shared.map((g) => g.url), 300);
  t.equal(withRedis.ok + withRedis.limited, 300, 'every request answered 200 or 429');
  t.ok(withRedis.ok <= 100 + 2 * LEASE, `redis: at most 100 + 2 x lease let through (${withRedis.ok})`);
  t.ok(withRedis.ok >= 100 - 2 * 2 * LEASE, `redis: and close to the limit (${withRedis.ok})`);

  // The same limit across the 2 workers of one pool (a fresh counter: another plugin key prefix).
  redis.cli('FLUSHALL');
  const pool = await startPool(t, { ...config('redis'), server: { port: await freePort(), workers: 2 } });
  const pooled = await count([pool.url], 300);
  t.ok(pooled.ok <= 100 + 2 * LEASE && pooled.ok >= 100 - 2 * 2 * LEASE, `redis, 2 workers of one pool: ${pooled.ok} let through`);

  const apart = [await gateway(t, config('memory')), await gateway(t, config('memory'))];
  const withMemory = await count(apart.map((g) => g.url), 300);
  t.equal(withMemory.ok, 200, 'memory: each process lets its own 100 through, as documented');
});
