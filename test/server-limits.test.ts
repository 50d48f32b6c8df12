/**
 * The main port's limits, over real sockets on loopback: slow senders cut off with a 408 error body, idle keep-alive
 * connections closed, the connection cap, and a shutdown that drains within its deadline.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { runCli, waitFor } from './helpers/cli.js';
import { chat, postJson, sseData, startGateway, type RunningGateway } from './helpers/gateway.js';

const mock = { mock: {} };

/** A raw client connection that records what it receives and when it closes. */
interface Client {
  socket: net.Socket;
  received: () => string;
  /** Resolves when the connection is closed, to the time (Date.now()) it was. */
  closed: Promise<number>;
  isClosed: () => boolean;
}

function connect(gw: RunningGateway): Promise<Client> {
  const { hostname, port } = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let data = '';
    let closedAt: number | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', () => {}); // a reset is a close, for these tests
    const closed = new Promise<number>((r) => socket.once('close', () => r((closedAt = Date.now()))));
    socket.once('connect', () => resolve({ socket, received: () => data, closed, isClosed: () => closedAt !== undefined }));
    socket.once('error', reject);
  });
}

/** One keep-alive GET /health, resolving when its whole answer has arrived. */
async function getHealth(c: Client): Promise<string> {
  const before = c.received().length;
  c.socket.write('GET /health HTTP/1.1\r\nHost: heimdall\r\n\r\n');
  await waitFor(() => c.isClosed() || /\r\n\r\n\{.*\}$/s.test(c.received().slice(before)), 'the answer to GET /health', 5000);
  return c.received().slice(before);
}

/** Write `text` one byte every `everyMs`, until it is all sent or the connection closes. */
function trickle(c: Client, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (c.isClosed() || c.socket.destroyed || i >= text.length) return clearInterval(timer);
    c.socket.write(text[i++] as string);
  }, everyMs);
  c.closed.then(() => clearInterval(timer), () => {});
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);

const HEAD = 'POST /v1/chat/completions HTTP/1.1\r\nHost: heimdall\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n';

function timeoutAnswer(t: Test, text: string, key: RegExp): void {
  t.match(text, /^HTTP\/1\.1 408 Request Timeout\r\n/, '408 status line');
  t.match(text, /\r\nconnection: close\r\n/i, 'says the connection closes');
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
  t.equal(body.error.code, 'HEIMDALL_ERR_REQUEST_TIMEOUT');
  t.equal(body.error.type, 'invalid_request_error');
  t.equal(body.error.param, null);
  t.match(body.error.message, key, 'names the setting');
}

t.test('a slow client is cut off with 408 and the error body', async (t) => {
  t.test('a body sent one byte every 200 ms, past request_timeout_ms', async (t) => {
    const gw = await startGateway(t, { server: { request_timeout_ms: 1000 }, providers: { mock: { latency_ms: 1500 } } });
    // The deadline is for receiving the request: an answer that takes longer (here the provider's) is not cut off.
    const slowAnswer = postJson(`${gw.url}/v1/chat/completions`, chat());
    const c = await connect(gw);
    const start = Date.now();
    c.socket.write(HEAD);
    trickle(c, '{"model":"mock/echo",' + ' '.repeat(980), 200);
    const closedAt = await within(c.closed, 3000, 'the slow client is cut off');
    t.ok(closedAt - start >= 900, `not before the timeout (${closedAt - start} ms)`);
    timeoutAnswer(t, c.received(), /within 1000 ms \(server\.request_timeout_ms\)/);
    t.ok(gw.logs.some((l) => /request_timeout_ms/.test(l.msg)), 'logged');
    t.equal((await slowAnswer).status, 200, 'a slow answer to a request that arrived in time is not cut off');
  });

  t.test('headers sent one byte every 50 ms, past headers_timeout_ms', async (t) => {
    const gw = await startGateway(t, { server: { headers_timeout_ms: 500, request_timeout_ms: 5000 }, providers: mock });
    const c = await connect(gw);
    const start = Date.now();
    trickle(c, `GET /health HTTP/1.1\r\nHost: heimdall\r\nX-Slow: ${'x'.repeat(200)}\r\n\r\n`, 50);
    const closedAt = await within(c.closed, 3000, 'the slow client is cut off');
    t.ok(closedAt - start >= 450, `not before the timeout (${closedAt - start} ms)`);
    timeoutAnswer(t, c.received(), /headers did not all arrive within 500 ms \(server\.headers_timeout_ms\)/);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    t.match(metrics, /^heimdall_requests_total\{route="",provider="",model="",status="408"\} 1$/m, 'the 408 is counted');
  });

  t.test('a request that is not HTTP gets 400 and the error body', async (t) => {
    const gw = await startGateway(t, { providers: mock });
    const c = await connect(gw);
    c.socket.write('HELLO / HTTP/1.1\r\n\r\n');
    await within(c.closed, 1000, 'the connection is closed');
    t.match(c.received(), /^HTTP\/1\.1 400 Bad Request\r\n/);
    t.equal(JSON.parse(c.received().split('\r\n\r\n')[1] as string).error.code, 'HEIMDALL_ERR_BAD_REQUEST');
  });
});

t.test('idle keep-alive connections are closed after keep_alive_timeout_ms', async (t) => {
  const gw = await startGateway(t, { server: { keep_alive_timeout_ms: 300 }, providers: mock, log: { level: 'warn' } });
  const clients = await Promise.all(Array.from({ length: 50 }, () => connect(gw)));
  const answers = await Promise.all(clients.map(async (c) => ({ text: await getHealth(c), at: Date.now() })));
  t.ok(answers.every((a) => a.text.startsWith('HTTP/1.1 200 ')), 'one request answered on each');
  const answered = answers.map((a) => a.at);
  t.ok(clients.every((c) => !c.isClosed()), 'open right after the answer (keep-alive)');
  // Node closes an idle connection 1 s after the keep-alive timeout it advertises (Keep-Alive: timeout=N).
  const closed = await within(Promise.all(clients.map((c) => c.closed)), 3000, 'every idle connection closes');
  const idle = closed.map((at, i) => at - (answered[i] as number));
  t.ok(Math.min(...idle) >= 250, `none closed before the timeout (shortest ${Math.min(...idle)} ms)`);
  t.ok(Math.max(...idle) < 2500, `all closed promptly (longest ${Math.max(...idle)} ms)`);
});

t.test('max_connections: one more connection is refused, the others work, and room is made as they close', async (t) => {
  const gw = await startGateway(t, { server: { max_connections: 20 }, providers: mock });
  const clients = await Promise.all(Array.from({ length: 20 }, () => connect(gw)));
  const served = async (cs: Client[]) => (await Promise.all(cs.map(getHealth))).every((a) => a.startsWith('HTTP/1.1 200 '));
  t.ok(await served(clients), '20 connections served');

  const extra = await connect(gw); // the kernel completes the handshake; the gateway then closes it
  extra.socket.write('GET /health HTTP/1.1\r\nHost: heimdall\r\n\r\n');
  await within(extra.closed, 2000, 'the 21st connection is closed');
  t.equal(extra.received(), '', 'closed without an answer');
  t.ok(gw.logs.some((l) => l.max_connections === 20 && /refusing new connections/.test(l.msg)), 'logged');

  t.ok(await served(clients), 'the first 20 still work');

  for (const c of clients.slice(0, 5)) c.socket.destroy();
  const server = gw.gateway.app.server;
  const count = () => new Promise<number>((r) => server.getConnections((_err, n) => r(n)));
  const until = Date.now() + 2000; // until the server has seen them close
  while ((await count()) > 15 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  const again = await Promise.all(Array.from({ length: 5 }, () => connect(gw)));
  t.ok(await served(again), 'new connections are accepted once some have closed');
  for (const c of [...clients, ...again]) c.socket.destroy();
});

t.test('shutdown', async (t) => {
  t.test('a stream in flight finishes; idle keep-alive connections do not delay close()', async (t) => {
    const gw = await startGateway(t, { server: { shutdown_timeout_ms: 2000 }, providers: { mock: { latency_ms: 60 } } });
    const idle = await connect(gw);
    await getHealth(idle);

    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat('mock/echo', 'a stream that takes a while', { stream: true })),
    });
    t.equal(res.status, 200);
    const body = res.text().then((text) => ({ text, at: Date.now() }));
    const start = Date.now();
    const closed = gw.gateway.close().then(() => Date.now());
    const idleClosedAt = await within(idle.closed, 500, 'the idle connection is closed at once');
    t.ok(idleClosedAt - start < 500, `the idle connection closed at once (${idleClosedAt - start} ms)`);

    const { text, at } = await body;
    t.equal(sseData(text).at(-1), '[DONE]', 'the stream completes');
    t.ok(at - start >= 300, `the stream outlived the start of close() (${at - start} ms)`);
    const closedAt = await within(closed, 1500, 'close() resolves once the stream is done');
    t.ok(closedAt - at < 500, `close() resolves as soon as the stream is done (${closedAt - at} ms after)`);
    t.notOk(gw.logs.some((l) => l.open_requests !== undefined), 'no request was cut off');
  });

  t.test('a slow client is cut off at shutdown_timeout_ms', async (t) => {
    const gw = await startGateway(t, { server: { shutdown_timeout_ms: 300 }, providers: mock });
    const slow = await connect(gw);
    slow.socket.write(HEAD);
    trickle(slow, '{"model":"mock/echo",' + ' '.repeat(980), 100);
    await new Promise((r) => setTimeout(r, 150)); // the request is in flight
    const start = Date.now();
    await within(gw.gateway.close(), 1000, 'close() resolves');
    t.ok(Date.now() - start >= 250, `the request had its time (${Date.now() - start} ms)`);
    await within(slow.closed, 200, 'the slow connection is closed');
    const line = gw.logs.find((l) => l.open_requests !== undefined);
    t.equal(line?.open_requests, 1, 'the shutdown line counts the open request');
    t.match(line?.msg, /1 request still open/);
  });

  t.test('the command: SIGTERM drains, a second SIGTERM closes at once', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-limits-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ server: { port: 0, shutdown_timeout_ms: 60_000 }, providers: mock }));
    const cli = runCli(['start', '--config', file]);
    t.teardown(() => cli.child.kill('SIGKILL'));
    const url = await cli.listening();
    const { hostname, port } = new URL(url);
    const slow = await connect({ url: `http://${hostname}:${port}` } as RunningGateway);
    slow.socket.write(HEAD);
    trickle(slow, '{"model":"mock/echo",' + ' '.repeat(980), 100);
    await new Promise((r) => setTimeout(r, 150));

    cli.child.kill('SIGTERM');
    await waitFor(() => /shutting down: finishing requests/.test(cli.out()), 'the first signal to be seen', 5000);
    await new Promise((r) => setTimeout(r, 300));
    t.notOk(slow.isClosed(), 'the first SIGTERM waits for the request in flight');
    const second = Date.now();
    cli.child.kill('SIGTERM');
    t.equal(await within(cli.exited, 3000, 'the command exits after the second SIGTERM'), 0, 'exits cleanly');
    t.ok(Date.now() - second < 3000, `promptly (${Date.now() - second} ms)`);
    t.ok(slow.isClosed(), 'the slow connection is closed');
    t.match(cli.out(), /shutting down now/);
    t.match(cli.out(), /"open_requests":1/);
    t.match(cli.out(), /"msg":"stopped"/);
  });
});

t.test('probes: /livez while the event loop answers, /readyz until shutdown begins', async (t) => {
  const gw = await startGateway(t, { providers: { mock: { type: 'mock', models: ['echo'] } } });
  const live = await fetch(`${gw.url}/livez`);
  t.equal(live.status, 200);
  t.equal(await live.text(), 'ok');
  const ready = await fetch(`${gw.url}/readyz`);
  t.equal(ready.status, 200);
  t.equal(await ready.text(), 'ready');

  const Fastify = (await import('fastify')).default;
  const { healthRoutes } = await import('../src/server/routes/health.js');
  let draining = false;
  const app = Fastify();
  healthRoutes(app, gw.gateway.plugins, () => draining);
  t.teardown(() => app.close());
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 200);
  draining = true;
  const refused = await app.inject({ url: '/readyz' });
  t.equal(refused.statusCode, 503, 'a draining gateway is not ready');
  t.equal(refused.body, 'draining');
  t.equal((await app.inject({ url: '/livez' })).statusCode, 200, 'but still alive');
});

t.test('the admin listener keeps the same client limits: a trickled request and an idle connection are cut off', async (t) => {
  process.env.HEIMDALL_TEST_LIMITS_ADMIN_TOKEN = 'admin-token-for-limits-0123456789abcdef';
  t.teardown(() => delete process.env.HEIMDALL_TEST_LIMITS_ADMIN_TOKEN);
  const gw = await startGateway(t, {
    server: { headers_timeout_ms: 500, request_timeout_ms: 5000, keep_alive_timeout_ms: 300 },
    providers: mock,
    admin: { enabled: true, token: 'env.HEIMDALL_TEST_LIMITS_ADMIN_TOKEN' },
  });
  const admin = { url: gw.adminUrl as string } as RunningGateway;
  const slow = await connect(admin);
  const start = Date.now();
  trickle(slow, `GET /api/plugins HTTP/1.1\r\nHost: heimdall\r\nX-Slow: ${'x'.repeat(200)}\r\n\r\n`, 50);
  const closedAt = await within(slow.closed, 3000, 'the slow admin client is cut off');
  t.ok(closedAt - start >= 450, `not before the timeout (${closedAt - start} ms)`);

  const idle = await connect(admin);
  idle.socket.write('GET /api/plugins HTTP/1.1\r\nHost: heimdall\r\nAuthorization: Bearer admin-token-for-limits-0123456789abcdef\r\n\r\n');
  const idleClosedAt = await within(idle.closed, 3000, 'an idle admin keep-alive connection is closed');
  t.match(idle.received(), /^HTTP\/1\.1 200/, 'after its answer');
  t.ok(idleClosedAt - start < 3000);
});
