/**
 * Execution modes and failure policy, through a real gateway: a threaded plugin's blocking call leaves the event loop
 * free and runs as many calls at once as it declares; a call past its deadline fails as the policy says; a plugin
 * that keeps failing is quarantined (health, metrics, admin) and its hooks are skipped or refused; what a plugin
 * hands back is bounded.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { netcallPlugin, probePlugins } from './helpers/fixtures.js';
import { chat, postJson, startGateway } from './helpers/gateway.js';

const netcall = await netcallPlugin();
const probes = await probePlugins();

/** A loopback service that answers "pong" `delayMs` after each request, and counts the connections open at once. */
async function service(t: Test, delayMs: number) {
  let open = 0;
  let max = 0;
  let calls = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    open++;
    calls++;
    max = Math.max(max, open);
    socket.on('error', () => {});
    socket.once('data', () => setTimeout(() => socket.end('pong\n'), delayMs));
    socket.on('close', () => {
      open--;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, stats: () => ({ open, max, calls }) };
}

async function waitUntil(check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The same service in a process of its own: an inline hook blocks this process's event loop, so a service in it
 * could never answer. It prints its port, then "open" for each connection it accepts.
 */
async function serviceProcess(t: Test, delayMs: number) {
  const code = `const net = require('node:net');
    const server = net.createServer((s) => { console.log('open'); s.on('error', () => {});
      s.once('data', () => setTimeout(() => s.end('pong\\n'), ${delayMs})); });
    server.listen(0, '127.0.0.1', () => console.log('port ' + server.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill());
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await waitUntil(() => /port \d+/.test(out));
  return { port: Number(/port (\d+)/.exec(out)?.[1]), opened: () => out.split('\n').filter((l) => l === 'open').length };
}

/** Which finished first: a chat request whose PreHook blocks, or a /health request sent while it blocks. */
async function raceHealthAgainstBlockedHook(t: Test, mode: 'inline' | 'threaded'): Promise<string[]> {
  const svc = await serviceProcess(t, 400);
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { mock: {} },
    plugins: [{ path: netcall, mode, config: { port: svc.port } }],
  });
  const order: string[] = [];
  const slow = postJson(`${gw.url}/v1/chat/completions`, chat()).then((r) => {
    order.push(`chat ${r.status}`);
    return r;
  });
  // Wait until the hook is inside its network call (with an inline hook, this loop only runs again once it is over).
  await waitUntil(() => svc.opened() === 1);
  const health = fetch(`${gw.url}/health`).then((r) => order.push(`health ${r.status}`));
  await Promise.all([slow, health]);
  const answer = await slow;
  t.equal(answer.status, 200);
  return order;
}

t.test('threaded: a hook blocked on a network call leaves the event loop free; inline blocks it', async (t) => {
  t.same(await raceHealthAgainstBlockedHook(t, 'threaded'), ['health 200', 'chat 200'], 'threaded: /health answers meanwhile');
  t.same(await raceHealthAgainstBlockedHook(t, 'inline'), ['chat 200', 'health 200'], 'inline: /health waits for the hook');
});

t.test('threaded: calls run as many at once as the plugin declares, capped by the entry; the hook output arrives', async (t) => {
  const run = async (entry: Record<string, unknown>) => {
    const svc = await service(t, 20);
    const gw = await startGateway(t, {
      log: { level: 'warn' },
      providers: { mock: {} },
      plugins: [{ path: netcall, mode: 'threaded', config: { port: svc.port }, ...entry }],
    });
    const started = performance.now();
    const answers = await Promise.all(Array.from({ length: 32 }, () => postJson(`${gw.url}/v1/chat/completions`, chat())));
    const ms = performance.now() - started;
    t.ok(answers.every((a) => a.status === 200), 'all 32 answered');
    const status = gw.gateway.plugins.status()[0];
    return { max: svc.stats().max, calls: svc.stats().calls, ms, status };
  };
  const declared = await run({});
  t.equal(declared.calls, 32);
  t.equal(declared.status?.mode, 'threaded');
  t.ok((declared.status?.concurrency ?? 0) >= 8, `concurrency ${declared.status?.concurrency}: the declared 64, capped by the threads`);
  t.ok(declared.max >= 8, `${declared.max} calls were in the service at once`);
  const serial = await run({ concurrency: 1 });
  t.equal(serial.max, 1, 'concurrency: 1 in the entry means one call at a time');
  t.equal(serial.status?.concurrency, 1);
  t.ok(serial.ms >= 32 * 20, `one at a time takes at least 32 x 20 ms (${Math.round(serial.ms)} ms)`);
  t.comment(`32 requests through a 20 ms call: ${Math.round(declared.ms)} ms at concurrency ${declared.status?.concurrency}, ${Math.round(serial.ms)} ms at 1`);
});

t.test('a call past its deadline fails: the request goes on (continue) or is refused naming the plugin (fail)', async (t) => {
  const svc = await service(t, 600);
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { mock: {} },
    plugins: [{ path: netcall, mode: 'threaded', timeout_ms: 100, config: { port: svc.port } }],
  });
  const ok = await postJson(`${gw.url}/v1/chat/completions`, chat());
  t.equal(ok.status, 200, 'fail open: answered without the hook');
  t.ok(gw.logs.some((l) => l.plugin === 'netcall' && /ran past its deadline of 100 ms/.test(l.msg)), 'logged under its name');

  const closed = await startGateway(t, {
    log: { level: 'warn' },
    providers: { mock: {} },
    plugins: [{ path: netcall, mode: 'threaded', timeout_ms: 100, on_error: 'fail', config: { port: svc.port } }],
  });
  const refused = await postJson(`${closed.url}/v1/chat/completions`, chat());
  t.equal(refused.status, 503);
  t.equal(refused.json.error.code, 'HEIMDALL_ERR_PLUGIN_FAILED');
  t.match(refused.json.error.message, /plugin netcall failed in PreHook/);
  t.notMatch(refused.json.error.message, /deadline/, "the cause stays in the log, not in the client's answer");
});

t.test('a plugin that keeps failing is quarantined: skipped, shown in health, metrics and admin, lifted by an operator', async (t) => {
  const trace = path.join(mkdtempSync(path.join(tmpdir(), 'heimdall-breaker-')), 'trace.jsonl');
  process.env.HEIMDALL_TEST_MODES_TOKEN = 'modes-admin-token-0123456789abcdef';
  const gw = await startGateway(t, {
    log: { level: 'info' },
    providers: { mock: {} },
    admin: { enabled: true, token: 'env.HEIMDALL_TEST_MODES_TOKEN' },
    plugins: [{ path: probes.p1, config: { trace, pre_status: '1', pre_output: 'broken' }, breaker: { failures: 3, window_ms: 60_000, cooldown_ms: 60_000 } }],
  });
  const preCalls = () => readFileSync(trace, 'utf8').split('\n').filter((l) => l.includes('"hook":"pre"')).length;
  const url = `${gw.url}/v1/chat/completions`;
  for (let i = 0; i < 3; i++) t.equal((await postJson(url, chat())).status, 200, `failure ${i + 1}: fail open`);
  t.equal(preCalls(), 3);
  t.ok(gw.logs.some((l) => l.level === 50 && l.plugin === 'p1' && /quarantined: 3 failures within 60000 ms/.test(l.msg)));

  for (let i = 0; i < 5; i++) t.equal((await postJson(url, chat())).status, 200);
  t.equal(preCalls(), 3, 'while quarantined, the hook is not called');
  const health = await (await fetch(`${gw.url}/health`)).json();
  t.equal(health.plugins[0].status, 'quarantined');
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  t.match(metrics, /heimdall_plugin_quarantined\{plugin="p1"\} 1/);
  t.match(metrics, /heimdall_plugin_quarantines_total\{plugin="p1"\} 1/);

  const auth = { authorization: 'Bearer modes-admin-token-0123456789abcdef' };
  const status = await (await fetch(`${gw.adminUrl}/api/plugins/p1`, { headers: auth })).json();
  t.match(status.quarantine, { state: 'open', trips: 1, last_failure: { hook: 'PreHook', message: /status 1: broken/ } });
  const lifted = await fetch(`${gw.adminUrl}/api/plugins/p1/unquarantine`, { method: 'POST', headers: auth });
  t.equal(lifted.status, 200);
  t.equal((await lifted.json()).quarantine.state, 'closed');
  const again = await fetch(`${gw.adminUrl}/api/plugins/p1/unquarantine`, { method: 'POST', headers: auth });
  t.equal(again.status, 409, 'lifting twice is refused: it is not quarantined');
  t.equal((await postJson(url, chat())).status, 200);
  t.equal(preCalls(), 4, 'after the lift the hook is called again');
  t.match(await (await fetch(`${gw.url}/metrics`)).text(), /heimdall_plugin_quarantined\{plugin="p1"\} 0/);

  // Quarantined again, then reloaded: the new instance starts afresh, and the gauge says so.
  for (let i = 0; i < 3; i++) await postJson(url, chat());
  t.match(await (await fetch(`${gw.url}/metrics`)).text(), /heimdall_plugin_quarantined\{plugin="p1"\} 1/);
  await gw.gateway.plugins.reload('p1');
  t.equal((await (await fetch(`${gw.url}/health`)).json()).plugins[0].status, 'active');
  t.match(await (await fetch(`${gw.url}/metrics`)).text(), /heimdall_plugin_quarantined\{plugin="p1"\} 0/, 'a reload clears the gauge');
  t.match(await (await fetch(`${gw.url}/metrics`)).text(), /heimdall_plugin_quarantines_total\{plugin="p1"\} 2/);
});

t.test('on_error: fail while quarantined refuses requests with their own code', async (t) => {
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { mock: {} },
    plugins: [{ path: probes.p1, on_error: 'fail', config: { pre_status: '1' }, breaker: { failures: 2, window_ms: 60_000, cooldown_ms: 60_000 } }],
  });
  const url = `${gw.url}/v1/chat/completions`;
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((await postJson(url, chat())).json.error.code);
  t.same(codes, [
    'HEIMDALL_ERR_PLUGIN_FAILED',
    'HEIMDALL_ERR_PLUGIN_FAILED',
    'HEIMDALL_ERR_PLUGIN_QUARANTINED',
    'HEIMDALL_ERR_PLUGIN_QUARANTINED',
  ]);
  const stream = await postJson(url, chat('mock/echo', 'hi', { stream: true }));
  t.equal(stream.status, 503, 'a stream is refused before it starts');
});

t.test('what a plugin hands back is bounded: output over max_output_bytes fails, failure messages are cut', async (t) => {
  const big = `{"context":{"pad":"${'x'.repeat(2 * 1024 * 1024)}"}}`;
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { mock: {} },
    plugins: [
      { path: probes.p1, max_output_bytes: 1024 * 1024, config: { pre_output: big } },
      { path: probes.p2, config: { pre_status: '7', pre_output: 'y'.repeat(100_000) } },
    ],
  });
  const answer = await postJson(`${gw.url}/v1/chat/completions`, chat());
  t.equal(answer.status, 200, 'both failures are fail-open');
  const p1 = gw.logs.find((l) => l.plugin === 'p1');
  t.match(p1?.msg, /PreHook handed back 2097\d{3} bytes, over the limit of 1048576 \(max_output_bytes\)/);
  const p2 = gw.logs.find((l) => l.plugin === 'p2');
  t.match(p2?.msg, /returned status 7: y+\.\.\. \(100000 characters in all\)/);
  t.ok((p2?.msg.length ?? 0) < 1300, `the logged message is ${p2?.msg.length} characters long`);
});
