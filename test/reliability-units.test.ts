/**
 * The reliability building blocks on their own, deterministically: key choice and rotation, backoff and
 * retry-after, and the concurrency limiter's queue.
 */
import t from 'tap';
import { backoffDelay, isRetryableStatus, retryAfterMs } from '../src/providers/http/backoff.js';
import { KeyPool, type ProviderKey } from '../src/providers/http/keys.js';
import { Cancellation } from '../src/cancel.js';
import { ConcurrencyLimiter } from '../src/providers/http/limiter.js';

const key = (value: string, weight = 1, models?: string[]): ProviderKey => ({ value, weight, models });

t.test('keys: weighted choice, model lists, rotation, resting', async (t) => {
  let r = 0;
  let now = 1000;
  const a = key('a', 3);
  const b = key('b', 1);
  const pool = new KeyPool('p', [a, b], () => r, () => now);
  r = 0.74;
  t.equal(pool.pick([a, b]), a, 'the first 3/4 of the range is the weight-3 key');
  r = 0.76;
  t.equal(pool.pick([a, b]), b);

  const rotation = pool.rotation('any');
  t.equal(rotation.current, b);
  t.ok(rotation.next());
  t.equal(rotation.current, a, 'the key not tried yet');
  t.notOk(rotation.next(), 'no key left this round');
  rotation.restart();
  t.equal(rotation.current, b, 'a new round draws from every key again');

  pool.rest(b, 500, 429);
  t.equal(pool.pick([a, b]), a, 'a resting key is skipped');
  pool.rest(a, 500, 429);
  t.equal(pool.pick([a, b]), b, 'unless every key rests');
  now += 600;
  r = 0.1;
  t.equal(pool.pick([a, b]), a, 'rested keys come back');

  const scoped = new KeyPool('p', [key('small', 1, ['s']), key('big', 1, ['b'])], () => 0);
  t.equal(scoped.rotation('b').current.value, 'big');
  t.throws(() => scoped.rotation('x'), { code: 'HEIMDALL_ERR_PROVIDER_NO_KEY' });
});

t.test('backoff: exponential, capped, jittered within the upper half', async (t) => {
  const policy = { maxRetries: 5, initialBackoffMs: 100, maxBackoffMs: 1000, maxRetryAfterMs: 5000 };
  t.equal(backoffDelay(0, policy, () => 0), 50);
  t.equal(backoffDelay(0, policy, () => 1), 100);
  t.equal(backoffDelay(2, policy, () => 1), 400);
  t.equal(backoffDelay(10, policy, () => 1), 1000, 'capped at max_backoff_ms');
  t.same([408, 429, 500, 503, 529].map(isRetryableStatus), [true, true, true, true, true]);
  t.same([400, 401, 403, 404, 422].map(isRetryableStatus), [false, false, false, false, false]);
});

t.test('retry-after: seconds, milliseconds, HTTP dates', async (t) => {
  t.equal(retryAfterMs({ 'retry-after': '7' }), 7000);
  t.equal(retryAfterMs({ 'retry-after': '0.5' }), 500);
  t.equal(retryAfterMs({ 'retry-after-ms': '250', 'retry-after': '7' }), 250, 'the precise header wins');
  const now = Date.parse('2025-01-01T00:00:00Z');
  t.equal(retryAfterMs({ 'retry-after': 'Wed, 01 Jan 2025 00:00:03 GMT' }, now), 3000);
  t.equal(retryAfterMs({ 'retry-after': 'soon' }), undefined);
  t.equal(retryAfterMs({}), undefined);
});

t.test('limiter: a slot each up to the limit, then a bounded FIFO queue, then refusal', async (t) => {
  const limiter = new ConcurrencyLimiter('p', 1, 2);
  const signal = new AbortController().signal;
  const first = await limiter.acquire(signal);
  const order: string[] = [];
  const second = limiter.acquire(signal).then((release) => (order.push('second'), release));
  const leaving = new AbortController();
  const third = limiter.acquire(leaving.signal).catch((err: { code: string }) => (order.push(`third: ${err.code}`), undefined));
  await t.rejects(limiter.acquire(signal), { code: 'HEIMDALL_ERR_PROVIDER_QUEUE_FULL', statusCode: 429 });
  t.same(limiter.stats, { inFlight: 1, queued: 2 });
  leaving.abort();
  await third;
  t.same(limiter.stats, { inFlight: 1, queued: 1 }, 'a waiter that gave up leaves the queue');
  first();
  first();
  const releaseSecond = await second;
  t.same(order, ['third: HEIMDALL_ERR_CLIENT_CLOSED', 'second']);
  t.same(limiter.stats, { inFlight: 1, queued: 0 }, 'the slot passed on; releasing twice did not free two');
  releaseSecond();
  t.same(limiter.stats, { inFlight: 0, queued: 0 });
});

t.test('limiter: tryAcquire takes a free slot without a promise, and never one that is taken or for a client gone', async (t) => {
  const limiter = new ConcurrencyLimiter('p', 2, 1);
  const request = new Cancellation();
  const a = limiter.tryAcquire(request);
  const b = limiter.tryAcquire(request);
  t.type(a, 'function');
  t.type(b, 'function');
  t.equal(limiter.tryAcquire(request), undefined, 'no slot left');
  t.same(limiter.stats, { inFlight: 2, queued: 0 });
  const gone = new Cancellation();
  const waiting = limiter.acquire(gone);
  t.same(limiter.stats, { inFlight: 2, queued: 1 });
  gone.abort();
  await t.rejects(waiting, { code: 'HEIMDALL_ERR_CLIENT_CLOSED' }, 'a Cancellation takes a waiter out of the queue');
  t.same(limiter.stats, { inFlight: 2, queued: 0 });
  (a as () => void)();
  t.equal(limiter.tryAcquire(gone), undefined, 'an aborted request gets no slot even when one is free');
  const c = limiter.tryAcquire(request);
  t.type(c, 'function', 'the freed slot is taken');
  (b as () => void)();
  (c as () => void)();
  (c as () => void)();
  t.same(limiter.stats, { inFlight: 0, queued: 0 }, 'released twice, counted once');
});
