/**
 * The HTTP surface: OpenAI-compatible routes, every malformed-request case, and upstream failures, against a real
 * OpenAI-compatible server on loopback.
 */
import t from 'tap';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { startUpstream } from './helpers/upstream.js';

t.test('malformed requests get a 4xx with an OpenAI-style error body', async (t) => {
  const gw = await startGateway(t, {
    server: { body_limit: 1024 },
    providers: { mock: { type: 'mock', models: ['echo'] } },
  });
  const url = `${gw.url}/v1/chat/completions`;
  const cases: [string, () => Promise<{ status: number; json: any }>, number, string, string?][] = [
    ['malformed JSON', () => postJson(url, '{"model": "mock/echo", "messages": ['), 400, 'HEIMDALL_ERR_BAD_JSON'],
    ['empty body', () => postJson(url, ''), 400, 'HEIMDALL_ERR_BAD_JSON'],
    ['not an object', () => postJson(url, '[1,2]'), 400, 'HEIMDALL_ERR_BAD_REQUEST'],
    ['no messages', () => postJson(url, { model: 'mock/echo' }), 400, 'HEIMDALL_ERR_BAD_REQUEST', 'messages'],
    ['stream not a boolean', () => postJson(url, chat('mock/echo', 'x', { stream: 'yes' })), 400, 'HEIMDALL_ERR_BAD_REQUEST', 'stream'],
    ['missing model', () => postJson(url, { messages: [{ role: 'user', content: 'x' }] }), 400, 'HEIMDALL_ERR_MODEL_MISSING'],
    ['model not provider/model', () => postJson(url, chat('gpt-4o')), 400, 'HEIMDALL_ERR_MODEL_FORMAT'],
    ['unknown provider', () => postJson(url, chat('nope/gpt-4o')), 404, 'HEIMDALL_ERR_PROVIDER_UNKNOWN'],
    ['unknown model', () => postJson(url, chat('mock/other')), 404, 'HEIMDALL_ERR_MODEL_UNKNOWN'],
    ['wrong content type', () => postJson(url, 'hello', { 'content-type': 'text/plain' }), 415, 'HEIMDALL_ERR_CONTENT_TYPE'],
    ['body over the limit', () => postJson(url, chat('mock/echo', 'x'.repeat(2000))), 413, 'HEIMDALL_ERR_BODY_TOO_LARGE'],
  ];
  for (const [name, send, status, code, param] of cases) {
    const res = await send();
    t.equal(res.status, status, `${name}: status`);
    t.equal(res.json?.error?.code, code, `${name}: code`);
    t.type(res.json?.error?.message, 'string', `${name}: message`);
    t.ok(res.json?.error?.type, `${name}: type`);
    t.equal(res.json?.error?.param, param ?? null, `${name}: param`);
  }
  const bare = await fetch(url, { method: 'POST' });
  t.equal(bare.status, 400, 'a POST with no body and no content-type');
  t.equal((await bare.json()).error.code, 'HEIMDALL_ERR_BAD_JSON');

  const unknown = await postJson(url, chat('nope/gpt-4o'));
  t.match(unknown.json.error.message, /configured providers: mock/, 'names what exists');

  const notFound = await fetch(`${gw.url}/v1/nothing`);
  t.equal(notFound.status, 404);
  t.equal((await notFound.json()).error.code, 'HEIMDALL_ERR_ROUTE_NOT_FOUND');
});

t.test('GET /v1/models lists configured models; GET /health reports plugins', async (t) => {
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock', models: ['echo', 'big'] }, openai: { type: 'openai', base_url: 'http://127.0.0.1:9/v1', models: ['gpt-4o-mini'] } },
  });
  const models = await (await fetch(`${gw.url}/v1/models`)).json();
  t.equal(models.object, 'list');
  t.same(models.data.map((m: { id: string }) => m.id), ['mock/echo', 'mock/big', 'openai/gpt-4o-mini']);
  const health = await fetch(`${gw.url}/health`);
  t.equal(health.status, 200);
  t.same(await health.json(), { status: 'ok', uptime_seconds: 0, plugins: [] });
});

t.test('x-request-id is honoured and returned', async (t) => {
  const gw = await startGateway(t, { providers: { mock: { type: 'mock' } } });
  const given = await postJson(`${gw.url}/v1/chat/completions`, chat(), { 'x-request-id': 'req-abc-123' });
  t.equal(given.headers.get('x-request-id'), 'req-abc-123');
  const generated = await postJson(`${gw.url}/v1/chat/completions`, chat());
  t.match(generated.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
  const hostile = await postJson(`${gw.url}/v1/chat/completions`, chat(), { 'x-request-id': 'a"b{c}'.padEnd(300, 'x') });
  t.match(hostile.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'an id that is not a sane identifier is replaced');
});

t.test('openai provider: requests reach a real OpenAI-compatible server', async (t) => {
  const up = await startUpstream(t);
  process.env.HEIMDALL_TEST_KEY = 'sk-test-123';
  t.teardown(() => delete process.env.HEIMDALL_TEST_KEY);
  const gw = await startGateway(t, {
    providers: { openai: { base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_KEY', timeout_ms: 500 } },
  });
  const url = `${gw.url}/v1/chat/completions`;

  await t.test('the client\'s bytes go upstream untouched but for the model name', async (t) => {
    const raw = '{ "model" : "openai/gpt-4o-mini",\n  "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5 }';
    const res = await postJson(url, raw);
    t.equal(res.status, 200);
    t.equal(res.json.choices[0].message.content, 'upstream says: hi');
    const seen = up.seen.at(-1);
    t.equal(seen?.url, '/v1/chat/completions');
    t.equal(seen?.headers.authorization, 'Bearer sk-test-123', 'the env reference was resolved');
    t.equal(seen?.body, raw.replace('"openai/gpt-4o-mini"', '"gpt-4o-mini"'));
  });

  await t.test('when the model name also appears in content, the request is re-serialised correctly', async (t) => {
    const res = await postJson(url, chat('openai/gpt-4o-mini', 'use "openai/gpt-4o-mini" please'));
    t.equal(res.status, 200);
    const sent = JSON.parse(up.seen.at(-1)?.body ?? '{}');
    t.equal(sent.model, 'gpt-4o-mini');
    t.equal(sent.messages[0].content, 'use "openai/gpt-4o-mini" please');
  });

  await t.test('streaming is relayed as SSE ending with [DONE]', async (t) => {
    const res = await postJson(url, chat('openai/gpt-4o-mini', 'stream this now', { stream: true }));
    t.equal(res.status, 200);
    const data = sseData(res.text);
    t.equal(data.at(-1), '[DONE]');
    const text = data.slice(0, -1).map((d) => JSON.parse(d).choices[0].delta.content ?? '').join('');
    t.equal(text, 'upstream says: stream this now');
    t.equal(JSON.parse(up.seen.at(-1)?.body ?? '{}').stream, true);
  });

  await t.test('upstream failures become 5xx error bodies, and nothing hangs', async (t) => {
    const r500 = await postJson(url, chat('openai/fail-500'));
    t.equal(r500.status, 500, 'the upstream\'s status');
    t.equal(r500.json.error.code, 'HEIMDALL_ERR_UPSTREAM_STATUS');
    t.match(r500.json.error.message, /answered 500: the model is overloaded/);

    const r429 = await postJson(url, chat('openai/fail-429'));
    t.equal(r429.status, 429);
    t.equal(r429.json.error.code, 'HEIMDALL_ERR_UPSTREAM_RATE_LIMIT');

    const garbage = await postJson(url, chat('openai/garbage'));
    t.equal(garbage.status, 502);
    t.equal(garbage.json.error.code, 'HEIMDALL_ERR_UPSTREAM_BAD_RESPONSE');

    const slow = await postJson(url, chat('openai/slow'));
    t.equal(slow.status, 504);
    t.equal(slow.json.error.code, 'HEIMDALL_ERR_UPSTREAM_TIMEOUT');

    const slowStream = await postJson(url, chat('openai/fail-500', 'x', { stream: true }));
    t.equal(slowStream.status, 500, 'a stream that fails before its first byte is an ordinary error answer');
    t.equal(slowStream.json.error.code, 'HEIMDALL_ERR_UPSTREAM_STATUS');

    const broken = await postJson(url, chat('openai/break-stream', 'a b c', { stream: true }));
    t.equal(broken.status, 200);
    const events = sseData(broken.text);
    t.ok(events.length >= 2, 'chunks before the break were delivered');
    t.notOk(events.includes('[DONE]'));
    t.equal(JSON.parse(events.at(-1) ?? '{}').error?.code, 'HEIMDALL_ERR_UPSTREAM_CONNECT', 'the stream ends with an error event');
  });

  await t.test('connection refused', async (t) => {
    const gw2 = await startGateway(t, { providers: { openai: { base_url: 'http://127.0.0.1:9/v1' } } });
    const res = await postJson(`${gw2.url}/v1/chat/completions`, chat('openai/gpt-4o-mini'));
    t.equal(res.status, 502);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_CONNECT');
    t.match(res.json.error.message, /ECONNREFUSED/);
  });

  await t.test('the API key never appears in logs', async (t) => {
    t.notMatch(JSON.stringify(gw.logs), /sk-test-123/);
  });
});
