/**
 * Host services (ABI 1.2) from the Go and Rust SDKs, through real gateways on loopback and real shared objects built
 * from the sources: the Go rate limiter's limit held across 2 workers and across 2 gateways on one redis-server (and
 * per process with the memory backend, as documented), the Rust redactor's cross-chunk buffer in per-request state,
 * plugin-defined metrics in /metrics, and plugin log lines in the gateway's log with the plugin and request id.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
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

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'host-sdks');
const OUT = path.join(BUILD, 'test-fixtures', 'host-sdks');

/** Builds the Go test plugin (go-hostdemo) from its sources with the SDK next to it; go caches what did not change. */
async function buildGoDemo(): Promise<string> {
  mkdirSync(OUT, { recursive: true });
  const out = path.join(OUT, 'go-hostdemo.so');
  await run('go', ['build', '-trimpath', '-buildmode=c-shared', '-o', out, '.'], {
    cwd: path.join(FIXTURES, 'go-hostdemo'),
    env: { ...process.env, GOFLAGS: '-mod=mod', GOPROXY: 'off' },
  });
  return out;
}

const noGoToolchain = needs(spawnOk('go', ['version']) ? false : 'Go is not installed (apt-get install golang-go)');

function spawnOk(cmd: string, args: string[]): boolean {
  try {
    return spawnSync(cmd, args).status === 0;
  } catch {
    return false;
  }
}

/** One sample's value from the exposition text; undefined when it is not there. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return undefined;
}

for (const mode of ['inline', 'threaded', 'isolated'] as const) t.test(`Go, ${mode}: a plugin-defined counter and histogram in /metrics, log lines with the plugin and request id, state and the shared store`, { skip: noGoToolchain }, async (t) => {
  const demo = await buildGoDemo();
  const gw = await startGateway(t, { providers: { mock: {} }, plugins: [{ path: demo, mode }] });
  const small = 5;
  const large = 2;
  const ids: string[] = [];
  const contents: string[] = [];
  for (let i = 0; i < small + large; i++) {
    const text = i < small ? 'hi' : 'x'.repeat(2000);
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', text), { 'x-request-id': `req-${i}` });
    t.equal(res.status, 200);
    ids.push(res.headers.get('x-request-id') ?? '');
    contents.push(res.json.choices[0].message.content);
  }
  t.same(contents.map((c) => /\[nth (\d+)\]$/.exec(c)?.[1]), ['1', '2', '3', '4', '5', '6', '7'],
    'PostHook read what PreHook kept in the request\'s state: the number KV().Incr gave it');

  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  t.equal(sample(metrics, 'heimdall_plugin_go_hostdemo_requests_total{model="echo"}'), small + large, 'the counter: one per request');
  t.match(metrics, /# TYPE heimdall_plugin_go_hostdemo_request_bytes histogram/);
  t.equal(sample(metrics, 'heimdall_plugin_go_hostdemo_request_bytes_count'), small + large, 'the histogram: one observation per request');
  t.equal(sample(metrics, 'heimdall_plugin_go_hostdemo_request_bytes_bucket{le="100"}'), small, 'the small requests under 100 bytes');
  t.equal(sample(metrics, 'heimdall_plugin_go_hostdemo_request_bytes_bucket{le="1000"}'), small, 'none of the large ones under 1000');
  t.equal(sample(metrics, 'heimdall_plugin_go_hostdemo_request_bytes_bucket{le="10000"}'), small + large, 'all under 10000');

  const lines = gw.logs.filter((l) => l.plugin === 'go-hostdemo' && /saw request/.test(String(l.msg)));
  t.same(lines.map((l) => l.request_id), ids, 'a log line per request, with the plugin\'s name and the request id');
  t.same(ids, ['req-0', 'req-1', 'req-2', 'req-3', 'req-4', 'req-5', 'req-6'], 'the client\'s ids');
  t.ok(gw.logs.some((l) => l.plugin === 'go-hostdemo' && l.msg === 'go-hostdemo ready' && l.request_id === undefined), 'Init logs without a request id');
});

t.test('Rust: the redactor masks PII split across stream chunks, holding text in per-request state; its log lines and counter', { skip: noRust }, async (t) => {
  const up = await startUpstream(t);
  const gw = await startGateway(t, {
    log: { level: 'debug' },
    providers: { openai: { base_url: up.baseUrl } },
    plugins: [{ path: RUST_REDACTOR }],
  });
  const url = `${gw.url}/v1/chat/completions`;
  for (let i = 0; i < 2; i++) {
    const streamed = await postJson(url, chat('openai/pii', 'anything', { stream: true }), { 'x-request-id': `stream-${i}` });
    const deltas = sseData(streamed.text).slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta?.content ?? '');
    t.ok(deltas.filter(Boolean).length > 5, 'the answer came in many chunks (word by word: the card spans four)');
    t.equal(deltas.join(''), 'Write to [REDACTED] or pay with [REDACTED] today', `stream ${i}: both patterns masked`);
    t.notOk(deltas.some((d: string) => /4111|john|example/.test(d)), 'no chunk leaks a piece of a pattern');
  }
  const logged = gw.logs.filter((l) => l.plugin === 'pii-redactor' && l.msg === 'masked PII in the stream');
  t.same([...new Set(logged.map((l) => l.request_id))], ['stream-0', 'stream-1'], 'debug lines through the gateway\'s logger, with the request id');
  t.equal(logged[0]?.level, 20, 'at debug');
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  t.equal(sample(metrics, 'heimdall_plugin_pii_redactor_redactions_total{where="stream"}'), logged.length, 'the counter counts each masked chunk');
});
