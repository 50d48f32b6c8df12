/**
 * Keys, retries, timeouts, the concurrency limit and streaming robustness, through a real gateway against a
 * loopback OpenAI-compatible server with injected faults. Every claim is checked against what the upstream saw.
 */
import t from 'tap';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { startFakeProvider, type FakeProvider } from './helpers/fake-providers.js';

const KEYS = { HEIMDALL_KEY_A: 'sk-a', HEIMDALL_KEY_B: 'sk-b', HEIMDALL_KEY_C: 'sk-c' };
Object.assign(process.env, KEYS);
t.teardown(() => {
  for (const name of Object.keys(KEYS)) delete process.env[name];
});

async function gatewayFor(t: Parameters<typeof startGateway>[0], up: FakeProvider, provider: Record<string, unknown> = {}) {
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { openai: { base_url: up.baseUrl, ...provider } } });
  return { gw, url: `${gw.url}/v1/chat/completions` };
}

const gaps = (up: FakeProvider) => up.seen.slice(1).map((s, i) => s.at - (up.seen[i] as { at: number }).at);

t.test('retries: network errors, 429 and 5xx are retried with backoff, up to max_retries', async (t) => {
  await t.test('two 500s, then an answer', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { retries: { max_retries: 2, initial_backoff_ms: 100, max_backoff_ms: 1000 } });
    up.queue({ status: 500 }, { status: 503 });
    const res = await postJson(url, chat('openai/gpt', 'persist'));
    t.equal(res.status, 200);
    t.equal(res.json.choices[0].message.content, 'upstream says: persist');
    t.equal(up.seen.length, 3, 'the upstream saw three attempts');
    const [g1, g2] = gaps(up) as [number, number];
    t.ok(g1 >= 45, `first backoff is at least half of 100 ms (${g1})`);
    t.ok(g2 >= 95, `second backoff is at least half of 200 ms (${g2})`);
  });

  await t.test('retries run out: the last error goes to the client', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { retries: { max_retries: 1, initial_backoff_ms: 10 } });
    up.modelFaults.set('down', { status: 500, message: 'still down' });
    const res = await postJson(url, chat('openai/down'));
    t.equal(res.status, 500);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_STATUS');
    t.match(res.json.error.message, /answered 500: still down/);
    t.equal(up.seen.length, 2);
  });

  await t.test('a connection reset before any answer is retried', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { retries: { max_retries: 1, initial_backoff_ms: 10 } });
    up.queue({ reset: 'before' });
    const res = await postJson(url, chat('openai/gpt', 'again'));
    t.equal(res.status, 200);
    t.equal(up.seen.length, 2);
  });

  await t.test('the request itself refused (400), or a malformed answer, is not retried', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { retries: { max_retries: 3, initial_backoff_ms: 10 } });
    up.queue({ status: 400, message: 'context too long' });
    const bad = await postJson(url, chat('openai/gpt'));
    t.equal(bad.status, 400);
    t.equal(bad.json.error.code, 'HEIMDALL_ERR_UPSTREAM_REJECTED');
    t.match(bad.json.error.message, /refused the request \(400\): context too long/);
    t.equal(up.seen.length, 1);

    up.queue({ malformed: true });
    const garbage = await postJson(url, chat('openai/gpt'));
    t.equal(garbage.status, 502);
    t.equal(garbage.json.error.code, 'HEIMDALL_ERR_UPSTREAM_BAD_RESPONSE');
    t.equal(up.seen.length, 2);
  });

  await t.test('without retries configured, one attempt (the default)', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up);
    up.queue({ status: 500 });
    t.equal((await postJson(url, chat('openai/gpt'))).status, 500);
    t.equal(up.seen.length, 1);
  });
});

t.test('retry-after is honoured, and passed on when it is too long to wait', async (t) => {
  const up = await startFakeProvider(t, 'openai');
  const { url } = await gatewayFor(t, up, { retries: { max_retries: 2, initial_backoff_ms: 10, max_retry_after_ms: 2000 } });

  up.queue({ status: 429, retryAfter: '1' });
  const res = await postJson(url, chat('openai/gpt'));
  t.equal(res.status, 200);
  t.equal(up.seen.length, 2);
  t.ok((gaps(up)[0] as number) >= 950, `waited the second the upstream asked for (${gaps(up)[0]} ms)`);

  up.queue({ status: 429, retryAfter: '7' });
  const started = Date.now();
  const limited = await postJson(url, chat('openai/gpt'));
  t.ok(Date.now() - started < 1000, 'a 7 s retry-after is not waited out');
  t.equal(limited.status, 429);
  t.equal(limited.json.error.code, 'HEIMDALL_ERR_UPSTREAM_RATE_LIMIT');
  t.equal(limited.headers.get('retry-after'), '7', 'the client is told how long to wait');
  t.equal(up.seen.length, 3);
});

t.test('timeouts', async (t) => {
  await t.test('timeout_ms bounds a non-streamed answer; a timed-out attempt is retried', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { timeout_ms: 200, retries: { max_retries: 1, initial_backoff_ms: 10 } });
    up.queue({ slowMs: 1000 });
    const res = await postJson(url, chat('openai/gpt', 'second try'));
    t.equal(res.status, 200);
    t.equal(up.seen.length, 2);
    t.ok(up.seen[0]?.aborted, 'the slow attempt was abandoned');

    up.queue({ slowMs: 1000 }, { slowMs: 1000 });
    const started = Date.now();
    const slow = await postJson(url, chat('openai/gpt'));
    t.equal(slow.status, 504);
    t.equal(slow.json.error.code, 'HEIMDALL_ERR_UPSTREAM_TIMEOUT');
    t.ok(Date.now() - started < 900, 'both attempts were cut at 200 ms');
  });

  await t.test('stream_idle_timeout_ms ends a stream that goes quiet with an error event', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { timeout_ms: 5000, stream_idle_timeout_ms: 300 });
    up.queue({ stall: 'mid-stream' });
    const started = Date.now();
    const res = await postJson(url, chat('openai/gpt', 'a b c', { stream: true }));
    t.equal(res.status, 200);
    const events = sseData(res.text);
    t.equal(JSON.parse(events[0] as string).choices[0].delta.role, 'assistant', 'the first chunk was delivered');
    t.equal(JSON.parse(events.at(-1) as string).error.code, 'HEIMDALL_ERR_UPSTREAM_STREAM_IDLE');
    t.ok(Date.now() - started < 3000, 'cut after the idle timeout, not the request timeout');
  });
});

t.test('keys', async (t) => {
  const keys = (up: FakeProvider) => up.seen.map((s) => s.key);

  await t.test('chosen by weighted random', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { keys: [{ key: 'env.HEIMDALL_KEY_A', weight: 3 }, { key: 'env.HEIMDALL_KEY_B', weight: 1 }] });
    const statuses = new Set<number>();
    for (let i = 0; i < 200; i++) statuses.add((await postJson(url, chat('openai/gpt'))).status);
    t.same([...statuses], [200], 'every request answered');
    const a = keys(up).filter((k) => k === 'sk-a').length;
    const b = keys(up).filter((k) => k === 'sk-b').length;
    t.equal(a + b, 200);
    t.ok(a > 120 && a < 180, `about three quarters went with the weight-3 key (${a} of 200)`);
  });

  await t.test('a key with a models list is used only for those models', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, {
      keys: [{ key: 'env.HEIMDALL_KEY_A', models: ['small'] }, { key: 'env.HEIMDALL_KEY_B', models: ['big', 'small'] }, { key: 'env.HEIMDALL_KEY_C', models: ['big'] }],
    });
    for (let i = 0; i < 20; i++) await postJson(url, chat('openai/small'));
    for (let i = 0; i < 20; i++) await postJson(url, chat('openai/big'));
    const small = up.seen.filter((s) => s.model === 'small').map((s) => s.key);
    const big = up.seen.filter((s) => s.model === 'big').map((s) => s.key);
    t.ok(small.every((k) => k === 'sk-a' || k === 'sk-b'));
    t.ok(big.every((k) => k === 'sk-b' || k === 'sk-c'));
    const none = await postJson(url, chat('openai/other'));
    t.equal(none.status, 404);
    t.equal(none.json.error.code, 'HEIMDALL_ERR_PROVIDER_NO_KEY');
    t.equal(up.seen.length, 40, 'no upstream call without a key');
  });

  for (const status of [401, 403, 429]) {
    await t.test(`a key refused with ${status} is rotated at once, and rests`, async (t) => {
      const up = await startFakeProvider(t, 'openai');
      const { url } = await gatewayFor(t, up, { keys: [{ key: 'env.HEIMDALL_KEY_A' }, { key: 'env.HEIMDALL_KEY_B' }] });
      up.keyFaults.set('sk-a', { status, retryAfter: status === 429 ? '30' : undefined });
      for (let i = 0; i < 10; i++) t.equal((await postJson(url, chat('openai/gpt'))).status, 200);
      const seen = keys(up);
      t.equal(seen.filter((k) => k === 'sk-b').length, 10, 'every answer came through the good key');
      t.ok(seen.filter((k) => k === 'sk-a').length <= 1, `the refused key was tried at most once, then rested (${seen.join(',')})`);
      seen.forEach((k, i) => {
        if (k === 'sk-a') t.equal(seen[i + 1], 'sk-b', 'the next attempt used the other key');
      });
    });
  }

  await t.test('every key rate limited: the client gets the 429 and its retry-after', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { keys: [{ key: 'env.HEIMDALL_KEY_A' }, { key: 'env.HEIMDALL_KEY_B' }] });
    up.keyFaults.set('sk-a', { status: 429, retryAfter: '3' });
    up.keyFaults.set('sk-b', { status: 429, retryAfter: '3' });
    const res = await postJson(url, chat('openai/gpt'));
    t.equal(res.status, 429);
    t.equal(res.headers.get('retry-after'), '3');
    t.same(new Set(keys(up)), new Set(['sk-a', 'sk-b']), 'both keys were tried');
    t.equal(up.seen.length, 2);
  });

  await t.test('a key whose variable is unset is left out; the others serve', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { gw, url } = await gatewayFor(t, up, { keys: [{ key: 'env.HEIMDALL_KEY_UNSET' }, { key: 'env.HEIMDALL_KEY_B' }] });
    for (let i = 0; i < 5; i++) t.equal((await postJson(url, chat('openai/gpt'))).status, 200);
    t.same(new Set(keys(up)), new Set(['sk-b']));
    t.ok(gw.logs.some((l) => /key 0 is left out: .*HEIMDALL_KEY_UNSET/.test(l.msg)), 'with a warning');
  });
});

t.test('concurrency: a full queue answers 429 at once; the upstream never sees more than the limit', async (t) => {
  const up = await startFakeProvider(t, 'openai');
  const { url } = await gatewayFor(t, up, { concurrency: { max_in_flight: 1, max_queue: 1 } });
  up.modelFaults.set('slow', { slowMs: 300 });
  const started = Date.now();
  const answers = await Promise.all([0, 1, 2].map((i) =>
    new Promise((r) => setTimeout(r, i * 30)).then(() => postJson(url, chat('openai/slow', `n${i}`))).then((res) => ({ ...res, ms: Date.now() - started })),
  ));
  t.same(answers.map((a) => a.status), [200, 200, 429]);
  const refused = answers[2] as (typeof answers)[number];
  t.equal(refused.json.error.code, 'HEIMDALL_ERR_PROVIDER_QUEUE_FULL');
  t.equal(refused.json.error.type, 'rate_limit_error');
  t.match(refused.json.error.message, /1 requests in flight, 1 queued/);
  t.equal(refused.headers.get('retry-after'), '1');
  t.ok(refused.ms < 500, `refused without waiting for a slot, which takes 600 ms here (${refused.ms} ms)`);
  t.equal(up.seen.length, 2, 'the refused request never reached the upstream');
  t.ok((up.seen[1]?.at ?? 0) - (up.seen[0]?.at ?? 0) >= 280, 'the queued request went up only after the first finished');
});

t.test('streaming robustness', async (t) => {
  await t.test('each chunk is sent as it arrives', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up);
    const started = Date.now();
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat('openai/slow-stream', 'one two three four five six seven eight', { stream: true })) });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const arrivals: number[] = [];
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      arrivals.push(Date.now() - started);
    }
    const total = arrivals.at(-1) as number;
    t.ok(arrivals.length >= 5, `many separate reads (${arrivals.length})`);
    t.ok((arrivals[0] as number) < total / 3, `the first chunk came long before the end (${arrivals[0]} of ${total} ms)`);
  });

  await t.test('a client that disconnects cancels the upstream request', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { concurrency: { max_in_flight: 1, max_queue: 0 } });
    const abort = new AbortController();
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    const res = await fetch(url, { method: 'POST', signal: abort.signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat('openai/slow-stream', words, { stream: true })) });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    abort.abort();
    const until = Date.now() + 2000;
    while (!up.seen[0]?.aborted && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    t.ok(up.seen[0]?.aborted, 'the upstream saw the gateway hang up before the stream was complete');
    // The stream's concurrency slot was given back: with max_in_flight 1 and no queue, a new request still goes up.
    const next = await postJson(url, chat('openai/gpt', 'after'));
    t.equal(next.status, 200);
  });

  await t.test('an upstream that fails mid-stream ends the SSE stream with an error event', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { retries: { max_retries: 2, initial_backoff_ms: 10 } });
    up.queue({ reset: 'mid-stream' });
    const res = await postJson(url, chat('openai/gpt', 'a b c', { stream: true }));
    t.equal(res.status, 200);
    const events = sseData(res.text);
    t.ok(events.length >= 2);
    t.notOk(events.includes('[DONE]'));
    t.equal(JSON.parse(events.at(-1) as string).error.code, 'HEIMDALL_ERR_UPSTREAM_CONNECT');
    t.equal(up.seen.length, 1, 'a stream that already started is not retried');

    up.queue({ streamError: true });
    const errored = sseData((await postJson(url, chat('openai/gpt', 'a b', { stream: true }))).text);
    t.match(JSON.parse(errored.at(-1) as string).error, { code: 'HEIMDALL_ERR_UPSTREAM_STATUS', message: /Overloaded/ });
  });

  await t.test('a stream refused before its first byte is retried like any call', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up, { retries: { max_retries: 1, initial_backoff_ms: 10 } });
    up.queue({ status: 503 });
    const res = await postJson(url, chat('openai/gpt', 'x y', { stream: true }));
    t.equal(res.status, 200);
    t.equal(sseData(res.text).at(-1), '[DONE]');
    t.equal(up.seen.length, 2);
  });

  await t.test('malformed JSON in a stream is an upstream error, not a chunk', async (t) => {
    const up = await startFakeProvider(t, 'openai');
    const { url } = await gatewayFor(t, up);
    up.queue({ malformed: true });
    const res = await postJson(url, chat('openai/gpt', 'x', { stream: true }));
    t.equal(res.status, 502, 'it failed before the first chunk, so it is an ordinary error answer');
    t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_BAD_RESPONSE');
  });
});
