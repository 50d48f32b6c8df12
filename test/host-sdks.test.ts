/**
 * Host services (ABI 1.2) from the Go and Rust SDKs, through real gateways on loopback and real shared objects built
 * from the sources: the Go rate limiter's limit held across 2 workers and across 2 gateways on one redis-server (and
 * per process with the memory backend, as documented), the Rust redactor's cross-chunk buffer in per-request state,
 * plugin-defined metrics in /metrics, and plugin log lines in the gateway's log with the plugin and request id.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { haveRedis, startRedis, type RedisServer } from './fixtures/host/redis.js';
import { runCli } from './helpers/cli.js';
import { BUILD, REPO } from './helpers/fixtures.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { freePort, request, sleep, startPool, workerPids } from './helpers/pool.js';
import { needs } from './helpers/toolchains.js';
import { startUpstream } from './helpers/upstream.js';

const run = promisify(execFile);
const GO_LIMITER = path.join(BUILD, 'plugins', 'rate-limiter.so');
const RUST_REDACTOR = path.join(BUILD, 'plugins', 'pii-redactor.so');
const noGo = needs(existsSync(GO_LIMITER) ? false : 'the Go plugins are not built (apt-get install golang-go, then npm run build:plugins)');
const noRust = needs(existsSync(RUST_REDACTOR) ? false : 'the Rust plugins are not built (cargo and Debian\'s serde crates; then npm run build:plugins)');
const noRedis = needs(haveRedis() ? false : 'redis-server is not installed (apt-get install redis-server)');
const LEASE = 10;
const LIMIT = 100;

/** A gateway as users run it (`heimdall start`, one process), killed at teardown. */
async function gateway(t: Test, raw: Record<string, unknown>): Promise<{ url: string; out: () => string }> {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'heimdall-host-sdks-')), 'config.json');
  writeFileSync(file, JSON.stringify(raw));
  const cli = runCli(['start', '--config', file]);
  t.teardown(() => cli.child.kill('SIGKILL'));
  return { url: await cli.listening(), out: cli.out };
}

/**
 * Waits, if need be, for a calendar minute with at least `need` seconds left: the limiter counts per calendar
 * minute, and a phase that straddles two minutes would get two windows.
 */
async function freshMinute(need = 20): Promise<void> {
  const left = 60 - (Date.now() / 1000) % 60;
  if (left < need) await sleep(left * 1000 + 200);
}

/** Sends n requests for one client, spread over the URLs in turn (a connection each); counts 200s and 429s. */
async function count(urls: string[], n: number, user: string): Promise<{ ok: number; limited: number }> {
  let ok = 0;
  let limited = 0;
  for (let i = 0; i < n; i++) {
    const res = await request(`${urls[i % urls.length]}/v1/chat/completions`, { body: chat('mock/echo', 'hi'), headers: { 'x-user': user } });
    if (res.status === 200) ok++;
    else if (res.status === 429) limited++;
  }
  return { ok, limited };
}

function limiterConfig(port: number, backend: 'memory' | 'redis', redis?: RedisServer, workers?: number) {
  return {
    server: { port, ...(workers === undefined ? {} : { workers }) },
    log: { level: 'info', requests: false },
    host: { kv: backend === 'redis' ? { backend, redis: { url: (redis as RedisServer).url, lease: LEASE } } : { backend } },
    providers: { mock: {} },
    // A burst as large as the limit: the per-process token bucket never binds, the shared counter does.
    plugins: [{ path: GO_LIMITER, config: { requests_per_minute: LIMIT, burst: LIMIT * 10, key: 'header:x-user' } }],
  };
}

t.test('Go rate limiter, 100 a minute: held across 2 workers and 2 gateways on one Redis; per process with memory', { skip: noGo || noRedis }, async (t) => {
  const redis = await startRedis(t);
  // The documented bound: a window lets through at most limit + N x lease (N processes).
  const most = LIMIT + 2 * LEASE;

  const pool = await startPool(t, limiterConfig(await freePort(), 'redis', redis, 2));
  t.equal((await workerPids(pool.url)).size, 2, 'the pool has 2 workers, both serving');
  await freshMinute();
  const workers = await count([pool.url], 300, 'across-workers');
  t.equal(workers.ok + workers.limited, 300, 'every request answered 200 or 429');
  t.ok(workers.ok <= most, `2 workers, redis: at most ${most} of 300 let through (${workers.ok})`);
  t.ok(workers.ok >= LIMIT - 2 * 1.5 * LEASE, `and close to the limit (${workers.ok})`);
  t.comment(`2 workers on redis: ${workers.ok} of 300 let through`);

  const gateways = [await gateway(t, limiterConfig(0, 'redis', redis)), await gateway(t, limiterConfig(0, 'redis', redis))];
  await freshMinute();
  const instances = await count(gateways.map((g) => g.url), 300, 'across-instances');
  t.equal(instances.ok + instances.limited, 300, 'every request answered 200 or 429');
  t.ok(instances.ok <= most, `2 gateways, one redis: at most ${most} of 300 let through (${instances.ok})`);
  t.ok(instances.ok >= LIMIT - 2 * 1.5 * LEASE, `and close to the limit (${instances.ok})`);
  t.comment(`2 gateways on one redis: ${instances.ok} of 300 let through`);
  const keys = redis.cli('KEYS', 'heimdall:kv:rate-limiter:rl:*').split('\n').filter(Boolean);
  t.equal(keys.length, 2, 'one counter per client and minute in Redis (two clients)');
  t.ok(Number(redis.cli('PTTL', keys[0] as string)) > 0, 'with the window as its TTL');

  const memory = await startPool(t, limiterConfig(await freePort(), 'memory', undefined, 2));
  await freshMinute();
  const apart = await count([memory.url], 400, 'memory');
  t.equal(apart.ok, 2 * LIMIT, 'memory backend: each worker process counts its own 100, as documented');
});
