/**
 * Cancellation: the plain-object signal that replaces AbortController on the request path. It must behave like an
 * AbortSignal wherever the gateway hands it on: to undici (an upstream request in flight is aborted) and to
 * timers/promises (a backoff sleep ends at once).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { Pool } from 'undici';
import { Cancellation, sleep } from '../src/cancel.js';

t.test('listeners run once, on abort, in order; removed ones and late ones never', async (t) => {
  const c = new Cancellation();
  const calls: string[] = [];
  const a = () => calls.push('a');
  const b = () => calls.push('b');
  const removed = () => calls.push('removed');
  c.addEventListener('abort', a);
  c.addEventListener('abort', removed);
  c.addEventListener('abort', b);
  c.removeEventListener('abort', removed);
  t.equal(c.aborted, false);
  t.equal(c.reason, undefined);
  c.abort();
  t.same(calls, ['a', 'b']);
  t.equal(c.aborted, true);
  t.equal((c.reason as Error).name, 'AbortError', 'an AbortError by default');
  c.abort(new Error('again'));
  t.same(calls, ['a', 'b'], 'a second abort runs nothing');
  t.equal((c.reason as Error).message, 'This operation was aborted', 'and keeps the first reason');
  c.addEventListener('abort', () => calls.push('late'));
  t.same(calls, ['a', 'b'], 'a listener added after the abort never runs');
});

t.test('a failing listener neither stops the others nor vanishes', async (t) => {
  const c = new Cancellation();
  const seen: string[] = [];
  c.addEventListener('abort', () => {
    throw new Error('listener bug');
  });
  c.addEventListener('abort', () => seen.push('second'));
  const uncaught = new Promise<Error>((resolve) => {
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.once('uncaughtException', (err) => {
      for (const l of listeners) process.on('uncaughtException', l);
      resolve(err);
    });
  });
  c.abort('why');
  t.same(seen, ['second']);
  t.equal(c.reason, 'why');
  t.equal((await uncaught).message, 'listener bug', 'the error surfaces as an uncaught exception');
});

t.test('sleep() ends early when its Cancellation aborts, and at once when it already has', async (t) => {
  const c = new Cancellation();
  const started = performance.now();
  const sleeping = sleep(10_000, c);
  setTimeout(() => c.abort(), 20);
  await t.rejects(sleeping, { name: 'AbortError' });
  t.ok(performance.now() - started < 5_000, 'it did not wait the full delay');
  await t.rejects(sleep(10_000, c), { name: 'AbortError' }, 'already aborted');
  await t.resolves(sleep(1, new Cancellation()), 'without an abort it simply waits');
});

t.test('undici aborts a request in flight when its Cancellation aborts, and completes one that is not', async (t) => {
  let hung = 0;
  const server = createServer((req, res) => {
    if (req.url === '/hang') {
      hung++;
      return; // never answers
    }
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.teardown(async () => {
    await pool.destroy();
    server.closeAllConnections();
    server.close();
  });

  const fine = new Cancellation();
  const res = await pool.request({ method: 'GET', path: '/ok', signal: fine as unknown as AbortSignal });
  t.equal(await res.body.text(), 'ok');
  fine.abort(); // after the fact: nothing left to abort, nothing thrown

  const c = new Cancellation();
  const pending = pool.request({ method: 'GET', path: '/hang', signal: c as unknown as AbortSignal });
  while (hung === 0) await new Promise((r) => setTimeout(r, 5));
  c.abort();
  await t.rejects(pending, { name: 'AbortError' }, 'the request in flight is aborted');
});
