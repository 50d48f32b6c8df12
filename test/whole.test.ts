/**
 * requestWhole: a non-streamed upstream exchange read whole through undici's dispatch. Against a real server on
 * loopback: the answer however it is chunked, any status with its headers, and cancellation at every stage (before
 * sending, while queued for a connection, while the answer is arriving) and the deadline rejecting at once and
 * leaving the pool usable.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { Pool } from 'undici';
import { Cancellation } from '../src/cancel.js';
import { UpstreamClient } from '../src/providers/http/client.js';
import { DeadlineExceeded, requestWhole } from '../src/providers/http/whole.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(t: { teardown(fn: () => unknown): void }, handler: Handler, connections = 4) {
  const seen: string[] = [];
  const sockets = { opened: 0 };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${body}`);
      handler(req, res);
    });
  });
  server.on('connection', () => sockets.opened++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pool = new Pool(origin, { connections });
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await pool.destroy();
  });
  return { pool, seen, sockets, origin };
}

/** Resolves true once `res`'s connection is closed, false if it is still open after `ms`. */
function closedWithin(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    res.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

const tick = (ms = 2) => new Promise((r) => setTimeout(r, ms));

const POST = { method: 'POST' as const, path: '/v1/x', headers: { 'content-type': 'application/json' }, body: '{"a":1}' };

t.test('an answer sent in several pieces arrives whole, with its status and headers', async (t) => {
  const { pool, seen } = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
    res.write('{"parts":[');
    setTimeout(() => res.write('1,2,'), 5);
    setTimeout(() => res.end('3]}'), 10);
  });
  const res = await requestWhole(pool, POST, new Cancellation(), 5000);
  t.equal(res.statusCode, 200);
  t.equal(res.headers['x-upstream'], 'yes');
  t.same(JSON.parse(res.body.toString()), { parts: [1, 2, 3] });
  t.same(seen, ['POST /v1/x {"a":1}'], 'the request went as given');
});

t.test('an error status resolves too, with its body and headers (the caller classifies it)', async (t) => {
  const { pool } = await serve(t, (_req, res) => {
    res.writeHead(429, { 'retry-after': '7', 'content-type': 'application/json' }).end('{"error":{"message":"slow down"}}');
  });
  const res = await requestWhole(pool, POST, new Cancellation(), 5000);
  t.equal(res.statusCode, 429);
  t.equal(res.headers['retry-after'], '7');
  t.equal(JSON.parse(res.body.toString()).error.message, 'slow down');
});

t.test('an empty answer is an empty buffer', async (t) => {
  const { pool } = await serve(t, (_req, res) => res.writeHead(204).end());
  const res = await requestWhole(pool, POST, new Cancellation(), 5000);
  t.equal(res.statusCode, 204);
  t.equal(res.body.length, 0);
});

t.test('a signal aborted before the call sends nothing and rejects with its reason', async (t) => {
  const { pool, seen } = await serve(t, (_req, res) => res.end('{}'));
  const signal = new Cancellation();
  signal.abort(new Error('gone already'));
  await t.rejects(requestWhole(pool, POST, signal, 5000), { message: 'gone already' });
  const after = await requestWhole(pool, POST, new Cancellation(), 5000);
  t.equal(after.statusCode, 200);
  t.equal(seen.length, 1, 'only the second request reached the server');
});

t.test('an abort while the answer is arriving rejects at once; the pool still serves', async (t) => {
  let hold: ServerResponse | undefined;
  const { pool } = await serve(t, (req, res) => {
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"never":');
      hold = res;
      return;
    }
    res.end('{"ok":true}');
  });
  const signal = new Cancellation();
  const pending = requestWhole(pool, { ...POST, path: '/slow' }, signal, 5000);
  while (hold === undefined) await new Promise((r) => setTimeout(r, 2));
  signal.abort(new Error('client left'));
  await t.rejects(pending, { message: 'client left' });
  t.ok(await closedWithin(hold as ServerResponse, 2000), 'the half-sent exchange was cut, not left open');
  const after = await requestWhole(pool, POST, new Cancellation(), 5000);
  t.same(JSON.parse(after.body.toString()), { ok: true });
});

t.test('an abort while queued rejects at once; undici drops the request unsent, keeps the connection, then lets go', async (t) => {
  const answers: ServerResponse[] = [];
  const { pool, seen, sockets } = await serve(t, (_req, res) => void answers.push(res), 1);
  const first = requestWhole(pool, { ...POST, path: '/first' }, new Cancellation(), 5000);
  while (answers.length === 0) await tick();
  const signal = new Cancellation();
  let released = 0;
  const queued = requestWhole(pool, { ...POST, path: '/queued' }, signal, 5000, () => released++);
  signal.abort(new Error('waited too long'));
  await t.rejects(queued, { message: 'waited too long' }, 'rejected while the only connection was busy');
  t.equal(released, 0, 'undici still holds the queued request: not released yet');
  answers[0]?.end('{"first":true}');
  t.same(JSON.parse((await first).body.toString()), { first: true });
  while (released === 0) await tick();
  t.equal(released, 1, 'released once undici dropped it');
  const after = requestWhole(pool, { ...POST, path: '/after' }, new Cancellation(), 5000);
  while (answers.length < 2) await tick();
  answers[1]?.end('{"after":true}');
  t.same(JSON.parse((await after).body.toString()), { after: true }, 'the pool still serves');
  t.same(
    seen.map((s) => s.split(' ')[1]),
    ['/first', '/after'],
    'the aborted request never reached the server',
  );
  t.equal(sockets.opened, 1, 'and dropping it did not cost the connection');
});

t.test('a deadline passing while queued: the same', async (t) => {
  const answers: ServerResponse[] = [];
  const { pool, seen, sockets } = await serve(t, (_req, res) => void answers.push(res), 1);
  const first = requestWhole(pool, { ...POST, path: '/first' }, new Cancellation(), 5000);
  while (answers.length === 0) await tick();
  let released = 0;
  const err = await requestWhole(pool, { ...POST, path: '/queued' }, new Cancellation(), 30, () => released++).catch((e: unknown) => e);
  t.type(err, DeadlineExceeded);
  t.equal(released, 0);
  answers[0]?.end('{}');
  await first;
  while (released === 0) await tick();
  await tick(20);
  t.equal(released, 1, 'released exactly once');
  t.same(seen.map((s) => s.split(' ')[1]), ['/first']);
  t.equal(sockets.opened, 1);
});

t.test('the client holds its concurrency slot while undici still holds a request its caller gave up on', async (t) => {
  const answers: ServerResponse[] = [];
  const { origin, sockets } = await serve(t, (_req, res) => void answers.push(res));
  const client = new UpstreamClient({
    provider: 'slow',
    origin,
    keys: [],
    headers: {},
    timeoutMs: 5000,
    streamIdleTimeoutMs: 5000,
    connections: 1,
    retries: { maxRetries: 0, initialBackoffMs: 1, maxBackoffMs: 1, maxRetryAfterMs: 0 },
    maxInFlight: 10,
    maxQueue: 10,
  });
  t.teardown(() => client.close());
  const build = () => ({ path: '/v1/x', body: '{}' });
  const first = client.json({ model: 'm', signal: new Cancellation() }, build);
  while (answers.length === 0) await tick();
  const signal = new Cancellation();
  const gaveUp = client.json({ model: 'm', signal }, build);
  await tick(10);
  signal.abort();
  await t.rejects(gaveUp, { code: 'HEIMDALL_ERR_CLIENT_CLOSED' }, 'the caller hears at once');
  t.equal(client.concurrency.inFlight, 2, 'but its slot is held while undici queues the request');
  answers[0]?.end('{"ok":true}');
  t.same(JSON.parse((await first).toString()), { ok: true });
  while (client.concurrency.inFlight > 0) await tick();
  t.equal(client.concurrency.inFlight, 0, 'both slots are back once undici dropped it');
  t.equal(answers.length, 1, 'the given-up request was never sent');
  t.equal(sockets.opened, 1);
});

t.test('an informational 1xx answer before the final one is skipped', async (t) => {
  const { pool } = await serve(t, (_req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload' });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"final":true}');
  });
  const res = await requestWhole(pool, POST, new Cancellation(), 5000);
  t.equal(res.statusCode, 200);
  t.same(JSON.parse(res.body.toString()), { final: true });
});

t.test('a closed pool rejects, and lets go', async (t) => {
  const { pool } = await serve(t, (_req, res) => res.end('{}'));
  await pool.close();
  let released = 0;
  const err = await requestWhole(pool, POST, new Cancellation(), 5000, () => released++).catch((e: unknown) => e);
  t.match((err as { code?: string }).code, /^UND_ERR_(CLOSED|DESTROYED)$/, "undici's own error");
  t.equal(released, 1);
});

t.test('a refused connection rejects with undici\'s error', async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  const pool = new Pool(`http://127.0.0.1:${port}`);
  t.teardown(() => pool.close());
  await t.rejects(requestWhole(pool, POST, new Cancellation(), 5000), { code: 'ECONNREFUSED' });
});

t.test('an answer that trickles past the deadline rejects with DeadlineExceeded and the exchange is cut', async (t) => {
  let hold: ServerResponse | undefined;
  const { pool } = await serve(t, (req, res) => {
    if (req.url !== '/slow') {
      res.end('{"ok":true}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"a":');
    hold = res;
  });
  const started = performance.now();
  const err = await requestWhole(pool, { ...POST, path: '/slow' }, new Cancellation(), 100).catch((e: unknown) => e);
  t.type(err, DeadlineExceeded);
  t.equal((err as DeadlineExceeded).ms, 100);
  t.ok(performance.now() - started >= 95, 'not before the deadline');
  t.ok(hold !== undefined, 'the server had started answering');
  t.ok(await closedWithin(hold as ServerResponse, 2000), 'the exchange was cut');
  const after = await requestWhole(pool, POST, new Cancellation(), 5000);
  t.same(JSON.parse(after.body.toString()), { ok: true }, 'the pool still serves');
});

t.test('no timer or listener is left behind: answered, aborted or past its deadline', async (t) => {
  const { pool } = await serve(t, (req, res) => {
    if (req.url !== '/never') res.end('{}');
  });
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  await requestWhole(pool, POST, new Cancellation(), 60_000); // the pool's connection and its timers exist now
  const before = timers();
  const signal = new Cancellation();
  const pending = requestWhole(pool, POST, signal, 60_000);
  t.equal(timers(), before + 1, 'the deadline is a timer while the exchange runs');
  await pending;
  t.equal(timers(), before, 'and is gone once it is done');
  const listeners = (signal as unknown as { listeners?: unknown[] }).listeners;
  t.equal(listeners?.length ?? 0, 0, 'the abort listener was removed');

  const aborted = new Cancellation();
  const cut = requestWhole(pool, { ...POST, path: '/never' }, aborted, 60_000);
  aborted.abort(new Error('left'));
  await cut.catch(() => {});
  t.equal(timers(), before, 'none after an abort either');
  const late = new Cancellation();
  await requestWhole(pool, { ...POST, path: '/never' }, late, 20).catch(() => {});
  t.equal(timers(), before, 'nor after a deadline');
  t.equal((late as unknown as { listeners?: unknown[] }).listeners?.length ?? 0, 0, 'whose listener is gone too');
});
