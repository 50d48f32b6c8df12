/**
 * Behaviours a mutation audit found untested: each had code, but breaking that code failed no test. Every test
 * here goes through a real gateway over real sockets, with real C probe plugins and real loopback upstreams (but the
 * config refusal, which happens before anything listens).
 */
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfigFile } from '../src/config/load.js';
import { startFakeProvider } from './helpers/fake-providers.js';
import { probePlugins } from './helpers/fixtures.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';

const probes = await probePlugins();

function tracer() {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'heimdall-audit-')), 'trace.jsonl');
  const read = (): { plugin: string; hook: string; ctx?: any; http?: any }[] =>
    existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
  return { file, read };
}

async function until(check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

t.test('credential headers never reach a plugin\'s context; only the TransportInterceptor\'s http input has them', async (t) => {
  const tr = tracer();
  const gw = await startGateway(t, { providers: { mock: { type: 'mock' } }, plugins: [{ path: probes.p1, config: { trace: tr.file } }] });
  const credentials = {
    authorization: 'Bearer sk-client-1',
    'proxy-authorization': 'Basic cHJveHk6c2VjcmV0',
    cookie: 'session=cookie-2',
    'x-api-key': 'xk-client-3',
    'api-key': 'azure-client-4',
  };
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'hi', { stream: true }), { ...credentials, 'x-team': 'search' });
  t.equal(res.status, 200);
  await until(() => tr.read().some((l) => l.hook === 'post'), 2000); // a stream's PostHook runs after [DONE]

  const lines = tr.read().filter((l) => l.ctx !== undefined);
  t.same(lines.map((l) => l.hook).filter((h, i, all) => all.indexOf(h) === i), ['transport', 'pre', 'chunk', 'post'], 'every hook that takes a context ran');
  for (const line of lines) {
    t.equal(line.ctx.headers['x-team'], 'search', `${line.hook}: other headers are there`);
    const names = Object.keys(credentials).filter((name) => name in line.ctx.headers);
    const values = Object.values(credentials).filter((secret) => JSON.stringify(line.ctx).includes(secret));
    t.same({ names, values }, { names: [], values: [] }, `${line.hook}: no credential header in ctx, by name or by value`);
  }
  const transport = tr.read().find((l) => l.hook === 'transport');
  t.match(transport?.http.headers, credentials, 'the TransportInterceptor\'s http input has them all, as documented');
});

t.test('a literal admin.token in config.json is refused like a literal api_key, without echoing it', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-audit-'));
  const file = path.join(dir, 'config.json');
  const secret = 'admin-token-literal-5678';
  for (const enabled of [true, false]) {
    writeFileSync(file, JSON.stringify({ providers: { mock: { type: 'mock' } }, admin: { enabled, token: secret } }));
    t.throws(() => loadConfigFile(file), { code: 'HEIMDALL_ERR_CONFIG', message: /admin\.token: must be an environment reference/ }, `enabled: ${enabled}`);
    try {
      loadConfigFile(file);
    } catch (err) {
      t.notMatch((err as Error).message, secret, 'the refused secret is not echoed back');
    }
  }
  // The way a gateway meets it: it does not start.
  const config = { providers: { mock: { type: 'mock' } }, admin: { enabled: true, token: secret } };
  await t.rejects(startGateway(t, config), { code: 'HEIMDALL_ERR_CONFIG', message: /admin\.token: must be an environment reference/ });
});

t.test('a non-streamed request whose client leaves is cancelled upstream', async (t) => {
  const up = await startFakeProvider(t, 'openai');
  up.modelFaults.set('slow', { slowMs: 10_000 });
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { openai: { base_url: up.baseUrl } } });
  const client = new AbortController();
  const pending = fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    signal: client.signal,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(chat('openai/slow', 'take your time')),
  });
  pending.catch(() => {}); // the abort rejects it
  await until(() => up.seen.length === 1, 2000);
  t.equal(up.seen.length, 1, 'the request reached the upstream');
  const left = Date.now();
  client.abort();
  await until(() => up.seen[0]?.aborted === true, 1000);
  t.ok(up.seen[0]?.aborted, 'the upstream saw its request\'s connection closed');
  t.ok(Date.now() - left < 1000, `soon after the client left (${Date.now() - left} ms), not when the answer came (10 s)`);
});

t.test('a streamed call holds its provider concurrency slot until the stream ends, not until its headers', async (t) => {
  const up = await startFakeProvider(t, 'openai');
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { openai: { base_url: up.baseUrl, concurrency: { max_in_flight: 1, max_queue: 0 } } } });
  const url = `${gw.url}/v1/chat/completions`;
  const words = Array.from({ length: 16 }, (_, i) => `w${i}`).join(' ');
  // slow-stream: a word every 50 ms, so this stream sends for about a second.
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat('openai/slow-stream', words, { stream: true })) });
  t.equal(res.status, 200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value);

  const during = await postJson(url, chat('openai/gpt', 'while streaming'));
  t.equal(during.status, 429, 'refused while the stream is still sending');
  t.equal(during.json?.error?.code, 'HEIMDALL_ERR_PROVIDER_QUEUE_FULL');
  t.notOk(text.includes('[DONE]'), 'the stream had not ended then');

  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  const events = sseData(text);
  t.equal(events.at(-1), '[DONE]');
  const said = events.slice(0, -1).map((e) => JSON.parse(e).choices[0].delta.content ?? '').join('');
  t.equal(said, `upstream says: ${words}`, 'the whole stream came');

  const after = await postJson(url, chat('openai/gpt', 'after the stream'));
  t.equal(after.status, 200, 'the slot was given back when the stream ended');
  t.equal(up.seen.length, 2, 'the refused request never reached the upstream');
});

t.test('an upstream 404 is a rejection: a 404 for the client, not a 502, and not retried', async (t) => {
  const up = await startFakeProvider(t, 'openai');
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { openai: { base_url: up.baseUrl, retries: { max_retries: 2, initial_backoff_ms: 10 } } } });
  up.queue({ status: 404, message: 'The model `gpt-nope` does not exist' });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-nope'));
  t.equal(res.status, 404);
  t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_REJECTED');
  t.equal(res.json.error.type, 'server_error', 'the upstream\'s own type, as it sent it');
  t.match(res.json.error.message, /refused the request \(404\): The model `gpt-nope` does not exist/);
  t.equal(up.seen.length, 1);
});

t.test('a stream still completes, every chunk and [DONE], when a StreamChunkHook fails on each chunk', async (t) => {
  const tr = tracer();
  const up = await startFakeProvider(t, 'openai');
  const gw = await startGateway(t, {
    providers: { openai: { base_url: up.baseUrl } },
    // The breaker is off, so the hook is called, and fails, on every chunk.
    plugins: [{ path: probes.p1, config: { trace: tr.file, chunk_status: '3', chunk_output: 'chunk hook broke' }, breaker: { failures: 0 } }],
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt', 'one two three', { stream: true }));
  t.equal(res.status, 200);
  const events = sseData(res.text);
  t.equal(events.at(-1), '[DONE]', 'the stream ends with [DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  // The upstream's: the role, five words, the finish.
  t.equal(chunks.length, 7, 'every chunk reached the client');
  t.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), 'upstream says: one two three');
  t.equal(chunks.at(-1)?.choices[0].finish_reason, 'stop');
  t.equal(tr.read().filter((l) => l.hook === 'chunk').length, 7, 'the hook ran on every chunk');
  const failures = gw.logs.filter((l) => l.plugin === 'p1' && l.hook === 'StreamChunkHook');
  t.equal(failures.length, 7, 'and each failure was logged');
  t.match(failures[0]?.msg, /StreamChunkHook returned status 3: chunk hook broke/);
});
