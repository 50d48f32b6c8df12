/**
 * Plugins in C, Go and Rust in one gateway, and what the host knows of each language's runtime: Go and Rust
 * failures (panics) stay inside the plugin, Go holds up under sustained load, and neither is ever unloaded.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runCli } from './helpers/cli.js';
import { BUILD, probePlugins } from './helpers/fixtures.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { NativeLibrary } from '../src/plugins/abi.js';
import { needs } from './helpers/toolchains.js';
import { PII_TEXT, startUpstream } from './helpers/upstream.js';

const probes = await probePlugins();
const built = (name: string) => path.join(BUILD, 'plugins', `${name}.so`);
const GO = built('rate-limiter');
const GO_TEST = built('go-testplugin');
const RUST = built('pii-redactor');
const RUST_PANICKY = built('rust-panicky');
const noGo = needs(
  existsSync(GO) && existsSync(GO_TEST) ? false : 'the Go plugins are not built (apt-get install golang-go, then npm run build:plugins)',
);
const noRust = needs(
  existsSync(RUST) && existsSync(RUST_PANICKY)
    ? false
    : 'the Rust plugins are not built (cargo, and crates from crates.io or apt-get install librust-serde-dev ' +
        'librust-serde-derive-dev librust-serde-json-dev; then npm run build:plugins)',
);

function traceFile(): { file: string; read: () => any[] } {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'heimdall-lang-')), 'trace.jsonl');
  return { file, read: () => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : []) };
}

t.test('C, Go and Rust plugins in one gateway: one request through all of them, in order', { skip: noGo || noRust }, async (t) => {
  const tr = traceFile();
  const gw = await startGateway(t, {
    providers: { mock: {} },
    plugins: [
      { path: probes.p1, config: { trace: tr.file } },
      { path: GO, config: { requests_per_minute: 6000, burst: 100, key: 'header:x-user' } },
      { path: RUST },
      { path: GO_TEST, config: { tag: 'from-go' } },
      { path: probes.p2, config: { trace: tr.file } },
    ],
  });
  t.same(gw.gateway.plugins.active.map((p) => [p.info.name, p.info.language]), [
    ['p1', 'c'], ['rate-limiter', 'go'], ['pii-redactor', 'rust'], ['go-testplugin', 'go'], ['p2', 'c'],
  ], 'each plugin\'s language is detected');

  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'mail me at jane@example.org'), {
    'x-user': 'u1',
    'x-test': 'context',
  });
  t.equal(res.status, 200);
  t.equal(res.json.choices[0].message.content, 'Mock reply from echo. You said: mail me at [REDACTED]');
  const lines = tr.read();
  t.same(lines.filter((l) => l.hook === 'pre' || l.hook === 'post').map((l) => `${l.plugin}:${l.hook}`),
    ['p1:pre', 'p2:pre', 'p2:post', 'p1:post']);
  const p1 = lines.find((l) => l.plugin === 'p1' && l.hook === 'pre');
  const p2 = lines.find((l) => l.plugin === 'p2' && l.hook === 'pre');
  t.equal(p1.input.messages[0].content, 'mail me at jane@example.org', 'C (first) sees the original');
  t.equal(p2.input.messages[0].content, 'mail me at [REDACTED]', 'C (last) sees what Rust redacted');
  t.equal(p2.ctx.values.tag, 'from-go', 'and the context value Go set');
  const health = await (await fetch(`${gw.url}/health`)).json();
  t.same(health.plugins.map((p: { language: string }) => p.language), ['c', 'go', 'rust', 'go', 'c']);
});

t.test('a Rust panic becomes an error status; the gateway stays up', { skip: noRust }, async (t) => {
  const gw = await startGateway(t, { providers: { mock: {} }, plugins: [{ path: RUST_PANICKY }] });
  for (let i = 0; i < 3; i++) {
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', `try ${i}`));
    t.equal(res.status, 200, `request ${i} is served`);
    t.match(res.json.choices[0].message.content, `try ${i}`);
  }
  const failures = gw.logs.filter((l) => l.plugin === 'rust-panicky' && l.hook === 'PreHook');
  t.equal(failures.length, 3);
  t.match(failures[0]?.msg, /PreHook returned status 1: PreHook panicked at/);
});

t.test('a Go panic becomes an error status; the gateway stays up', { skip: noGo }, async (t) => {
  const gw = await startGateway(t, { providers: { mock: {} }, plugins: [{ path: GO_TEST }] });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'go on'), { 'x-test': 'panic' });
  t.equal(res.status, 200);
  t.match(res.json.choices[0].message.content, 'go on');
  const logged = gw.logs.filter((l) => l.plugin === 'go-testplugin').map((l) => l.hook);
  t.same(logged.filter(Boolean), ['TransportInterceptor', 'PreHook', 'PostHook'], 'every hook\'s panic is logged under the plugin');
  t.match(gw.logs.find((l) => l.hook === 'PreHook')?.msg, /PreHook panicked/);
  t.equal((await postJson(`${gw.url}/v1/chat/completions`, chat())).status, 200, 'and the next request is fine');
});

t.test('Go and Rust plugins are never unloaded; C plugins are', { skip: noGo || noRust }, async (t) => {
  // glibc keeps a Go or Rust library mapped even when dlclose is called on it (they are marked "no delete"), so
  // /proc/self/maps can't tell whether the gateway tried: every dlclose the gateway makes is recorded instead.
  const unloaded: string[] = [];
  const dlclose = NativeLibrary.prototype.unload;
  NativeLibrary.prototype.unload = function (this: NativeLibrary) {
    unloaded.push(this.file);
    dlclose.call(this);
  };
  t.teardown(() => {
    NativeLibrary.prototype.unload = dlclose;
  });
  const maps = () => readFileSync('/proc/self/maps', 'utf8');
  const gw = await startGateway(t, { providers: { mock: {} }, plugins: [{ path: GO_TEST }, { path: RUST }, { path: probes.p3 }] });
  // Each plugin is loaded from a private copy; the status says which.
  const [go, rust, c] = gw.gateway.plugins.status().map((s) => s.loaded_from ?? '');
  t.ok(c && maps().includes(c), 'the C plugin is mapped while loaded');
  for (const { name } of gw.gateway.plugins.status()) await gw.gateway.plugins.reload(name);
  await gw.close();
  t.notOk(unloaded.includes(go as string), 'the Go library was never dlclosed (its runtime cannot be unloaded)');
  t.notOk(unloaded.includes(rust as string), 'the Rust library was never dlclosed (its TLS destructors make dlclose unsafe)');
  t.equal(unloaded.filter((f) => f.includes('/p3-')).length, 2, 'both C instances were dlclosed: the replaced one and the last');
  t.equal(unloaded.length, 2, 'and nothing else');
  t.ok(go && maps().includes(go), 'the Go runtime stays mapped');
  t.notOk(maps().includes(c as string), 'the C plugin is unmapped');
});

t.test('two Go runtimes under sustained load: 10,000 requests, both collecting garbage, memory bounded', { skip: noGo }, async (t) => {
  // The gateway runs as its own process with Go's GC trace on, so the test sees each runtime's collections.
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-go-load-'));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    server: { port: 0 },
    providers: { mock: {} },
    plugins: [
      { path: GO, config: { requests_per_minute: 1e9, burst: 1e6, key: 'header:x-user' } },
      { path: GO_TEST, config: { tag: 'load' } },
    ],
  }));
  const cli = runCli(['start', '--config', path.join(dir, 'config.json')], { ...process.env, GODEBUG: 'gctrace=1' });
  t.teardown(() => cli.child.kill('SIGKILL'));
  const base = await cli.listening();
  const url = `${base}/v1/chat/completions`;
  // Requests that make both Go runtimes allocate: a fresh rate-limit bucket per user, a rewritten request and
  // response, context values.
  const send = (i: number) =>
    postJson(url, chat('mock/echo', `request ${i} ${'x'.repeat(i % 2000)}`), { 'x-user': `user-${i % 5000}`, 'x-test': i % 3 === 0 ? 'modify' : 'context' });
  const run = async (from: number, count: number) => {
    let ok = 0;
    const workers = Array.from({ length: 16 }, async (_, w) => {
      for (let i = from + w; i < from + count; i += 16) if ((await send(i)).status === 200) ok++;
    });
    await Promise.all(workers);
    return ok;
  };
  const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${cli.child.pid}/status`, 'utf8'))?.[1]) * 1024;
  t.equal(await run(0, 2000), 2000, 'warm-up');
  t.equal(await run(2000, 5000), 5000);
  const half = rss();
  t.equal(await run(7000, 5000), 5000, 'every one of 10,000 requests is served');
  const grown = rss() - half;
  // Bounded means no trend: once allocators and pools have settled, the second half adds little.
  t.ok(grown < 48 * 1024 * 1024, `gateway RSS changed ${(grown / 1024 / 1024).toFixed(1)} MiB over the last 5,000 requests`);

  // Each runtime numbers its own collections from 1: two "gc 1 @" lines mean two runtimes, both collecting.
  const cycles = cli.err().split('\n').filter((l) => /^gc \d+ @/.test(l));
  t.equal(cycles.filter((l) => l.startsWith('gc 1 @')).length, 2, 'two Go runtimes, each running its GC');
  t.ok(cycles.length >= 10, `${cycles.length} GC cycles ran during the load`);
  const modified = await postJson(url, chat('mock/echo', 'still here'), { 'x-user': 'u', 'x-test': 'modify' });
  t.equal(modified.json.choices[0].message.content, 'MOCK REPLY FROM ECHO. YOU SAID: STILL HERE', 'both runtimes still answer');
  cli.child.kill('SIGTERM');
  t.equal(await cli.exited, 0, 'and shut down cleanly');
});

t.test('example: the Go rate limiter answers 429 with retry-after, per API key', { skip: noGo }, async (t) => {
  const gw = await startGateway(t, {
    providers: { mock: {} },
    plugins: [{ path: GO, config: { requests_per_minute: 60, burst: 3, key: 'api_key' } }],
  });
  const url = `${gw.url}/v1/chat/completions`;
  const as = (key: string) => ({ authorization: `Bearer ${key}` });
  for (let i = 0; i < 3; i++) t.equal((await postJson(url, chat(), as('sk-alice'))).status, 200, `alice burst ${i}`);
  const limited = await postJson(url, chat(), as('sk-alice'));
  t.equal(limited.status, 429);
  t.equal(limited.json.error.type, 'rate_limit_error');
  t.equal(limited.json.error.code, 'rate_limited');
  t.equal(limited.headers.get('retry-after'), '1');
  t.equal((await postJson(url, chat(), as('sk-bob'))).status, 200, 'another key has its own bucket');
  t.notMatch(JSON.stringify(gw.logs), /sk-alice/, 'the key itself is never logged');
});

t.test('example: the Rust PII redactor masks requests, responses and streams', { skip: noRust }, async (t) => {
  const up = await startUpstream(t);
  const gw = await startGateway(t, { providers: { openai: { base_url: up.baseUrl } }, plugins: [{ path: RUST }] });
  const url = `${gw.url}/v1/chat/completions`;

  const req = await postJson(url, chat('openai/gpt', 'I am bob@corp.example, card 4111-1111-1111-1111, order 1234567812345678'));
  t.equal(req.status, 200);
  t.equal(JSON.parse(up.seen[0]?.body ?? '{}').messages[0].content,
    'I am [REDACTED], card [REDACTED], order 1234567812345678', 'the request is masked before it leaves (a Luhn-invalid number is not)');

  const res = await postJson(url, chat('openai/pii', 'anything'));
  t.equal(res.json.choices[0].message.content, 'Write to [REDACTED] or pay with [REDACTED] today');

  const streamed = await postJson(url, chat('openai/pii', 'anything', { stream: true }));
  const chunks = sseData(streamed.text).slice(0, -1).map((d) => JSON.parse(d));
  const deltas = chunks.map((c) => c.choices[0]?.delta?.content ?? '');
  t.ok(PII_TEXT.split(' ').length > 5, 'the upstream streams word by word, so the card number spans four chunks');
  t.equal(deltas.join(''), 'Write to [REDACTED] or pay with [REDACTED] today');
  t.notOk(deltas.some((d) => /4111|john/.test(d)), 'no chunk leaks a piece of the pattern');
});
