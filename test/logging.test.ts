/**
 * Logs through a real gateway: the request id on every line a request writes, the plugin's name on every plugin
 * event, no credentials and no message content; JSON for machines and readable text for a terminal.
 */
import { request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger, loggedPath, requestLoggerFactory } from '../src/logger.js';
import { chat, postJson, startGateway } from './helpers/gateway.js';
import { probePlugins } from './helpers/fixtures.js';
import { startUpstream } from './helpers/upstream.js';

const probes = await probePlugins();

const SECRETS = {
  providerKey: 'sk-upstream-secret-1234',
  bearer: 'sk-client-secret-5678',
  apiKey: 'xk-client-secret-9012',
  cookie: 'cookie-secret-3456',
  query: 'sk-query-secret-7890',
};
const CONTENT = 'the launch code is zebra-42';

t.test('request lines carry the request id, plugin events the plugin, and nothing secret or said', async (t) => {
  const up = await startUpstream(t);
  process.env.HEIMDALL_LOG_TEST_KEY = SECRETS.providerKey;
  t.teardown(() => delete process.env.HEIMDALL_LOG_TEST_KEY);
  const gw = await startGateway(t, {
    providers: { openai: { type: 'openai', base_url: up.baseUrl, api_key: 'env.HEIMDALL_LOG_TEST_KEY' } },
    plugins: [
      { path: probes.p1, config: { pre_status: '1', pre_output: 'p1 failed on purpose' } },
      { path: probes.p2, config: { post_status: '2' } },
      // Its breaker is off: it fails on every chunk, and a quarantine is a plugin event, not a request's.
      { path: probes.p3, config: { chunk_status: '3' }, breaker: { failures: 0 } },
    ],
  });
  const before = gw.logs.length;
  const headers = (id: string) => ({
    'x-request-id': id,
    authorization: `Bearer ${SECRETS.bearer}`,
    'x-api-key': SECRETS.apiKey,
    cookie: `session=${SECRETS.cookie}`,
  });
  const url = `${gw.url}/v1/chat/completions`;
  const answered = await postJson(`${url}?key=${SECRETS.query}`, chat('openai/gpt-4o-mini', CONTENT), headers('log-json'));
  t.equal(answered.status, 200);
  const streamed = await postJson(url, chat('openai/gpt-4o-mini', CONTENT, { stream: true }), headers('log-stream'));
  t.equal(streamed.status, 200);
  t.equal((await postJson(url, chat('openai/fail-500', CONTENT), headers('log-fail'))).status, 500);
  t.equal((await postJson(url, '{"model": "openai/x", "messages": [', headers('log-bad'))).status, 400);
  await new Promise((r) => setTimeout(r, 50)); // a stream's PostHooks log just after the client has read [DONE]

  const lines = gw.logs.slice(before);
  const ids = ['log-json', 'log-stream', 'log-fail', 'log-bad'];
  t.ok(lines.length >= 8, `${lines.length} lines`);
  for (const line of lines) {
    t.ok(ids.includes(line.request_id as string), `"${line.msg}" carries its request id (${String(line.request_id)})`);
  }
  for (const id of ids) {
    const done = lines.filter((l) => l.request_id === id && l.msg === 'request');
    t.equal(done.length, 1, `${id}: one request line`);
  }
  const requestLine = lines.find((l) => l.request_id === 'log-json' && l.msg === 'request');
  t.equal(requestLine?.url, '/v1/chat/completions', 'the path is logged without its query string');
  t.equal(requestLine?.status, 200);

  const failures = lines.filter((l) => l.plugin !== undefined);
  const seen = new Set(failures.map((l) => `${l.request_id} ${l.plugin} ${l.hook}`));
  for (const expected of [
    'log-json p1 PreHook', 'log-json p2 PostHook', 'log-stream p1 PreHook', 'log-stream p3 StreamChunkHook', 'log-stream p2 PostHook',
  ]) {
    t.ok(seen.has(expected), `plugin event logged with request id, plugin and hook: ${expected}`);
  }
  t.ok(failures.every((l) => l.level === 40 && typeof l.msg === 'string' && l.msg.includes(l.plugin as string)), 'warnings that name the plugin');

  const everything = JSON.stringify(lines) + JSON.stringify(gw.logs.slice(0, before));
  for (const [what, secret] of Object.entries(SECRETS)) t.notOk(everything.includes(secret), `no ${what} in the logs`);
  t.notOk(everything.includes('zebra-42'), 'no message content in the logs');
  t.notOk(everything.includes('upstream says'), 'no response content in the logs');
});

t.test('log.requests: false drops the per-request line and nothing else', async (t) => {
  const up = await startUpstream(t);
  const gw = await startGateway(t, {
    log: { level: 'info', requests: false },
    providers: { openai: { type: 'openai', base_url: up.baseUrl } },
    plugins: [{ path: probes.p1, config: { pre_status: '1', pre_output: 'p1 failed on purpose' } }],
  });
  const before = gw.logs.length;
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-4o-mini', 'hi'), { 'x-request-id': 'quiet-1' });
  t.equal(res.status, 200);
  const lines = gw.logs.slice(before);
  t.equal(lines.filter((l) => l.msg === 'request').length, 0, 'no request line');
  t.ok(lines.some((l) => l.request_id === 'quiet-1' && l.plugin === 'p1'), 'the plugin failure is still logged, with its request id');
});

t.test('log.bodies: true logs each request with the answer the client got, in one line per request, redacted', async (t) => {
  const up = await startUpstream(t);
  const gw = await startGateway(t, {
    log: { level: 'info', bodies: true },
    providers: { openai: { type: 'openai', base_url: up.baseUrl } },
  });
  const url = `${gw.url}/v1/chat/completions`;
  const before = gw.logs.length;
  const plain = await postJson(url, { ...chat('openai/gpt-4o-mini', CONTENT), api_key: SECRETS.apiKey }, { 'x-request-id': 'bodies-json' });
  t.equal(plain.status, 200);
  t.equal((await postJson(url, chat('openai/gpt-4o-mini', CONTENT, { stream: true }), { 'x-request-id': 'bodies-stream' })).status, 200);
  t.equal((await postJson(url, chat('openai/fail-500', CONTENT), { 'x-request-id': 'bodies-fail' })).status, 500);
  await new Promise((r) => setTimeout(r, 50)); // a stream's line comes once the client has read [DONE]
  const bodies = (id: string) => gw.logs.slice(before).filter((l) => l.msg === 'bodies' && l.request_id === id);
  type Logged = { request?: { messages?: { content: string }[]; api_key?: string }; response?: { choices?: { message: { content: string } }[] }; error?: { code: string } };

  const [json, ...extra] = bodies('bodies-json') as Logged[];
  t.equal(extra.length, 0, 'one line per request');
  t.equal(json?.request?.messages?.[0]?.content, CONTENT, 'the request as received');
  t.equal(json?.response?.choices?.[0]?.message.content, `upstream says: ${CONTENT}`, 'the answer as sent');
  t.equal(json?.request?.api_key, '[redacted]', 'credentials in the body are still redacted');
  t.notOk(JSON.stringify(gw.logs).includes(SECRETS.apiKey), 'the key appears nowhere');

  const streamed = bodies('bodies-stream') as Logged[];
  t.equal(streamed.length, 1);
  t.equal(streamed[0]?.response?.choices?.[0]?.message.content, `upstream says: ${CONTENT}`, 'a stream: the chunks the client got, assembled');

  const failed = bodies('bodies-fail') as Logged[];
  t.equal(failed.length, 1);
  t.equal(failed[0]?.error?.code, 'HEIMDALL_ERR_UPSTREAM_STATUS', 'a failure: the error the client got');
  t.equal(failed[0]?.request?.messages?.[0]?.content, CONTENT);
});

t.test("a request's own logger: its lines carry the request id; below the level it writes nothing", async (t) => {
  const { sink, text } = capture();
  const parent = createLogger('info', sink);
  const log = requestLoggerFactory(parent, { request_id: 'lazy-1' }, {});
  log.debug({ detail: 1 }, 'not at this level');
  t.equal(text(), '', 'nothing written below the level');
  t.equal(log.level, 'info');
  log.warn({ plugin: 'cache' }, 'something to say');
  const line = JSON.parse(text());
  t.match(line, { level: 40, request_id: 'lazy-1', plugin: 'cache', msg: 'something to say' });
  const child = log.child({ hook: 'PreHook' });
  child.error('deeper');
  const last = JSON.parse(text().trim().split('\n').at(-1) as string);
  t.match(last, { level: 50, request_id: 'lazy-1', hook: 'PreHook', msg: 'deeper' }, 'children keep the request id');
  const routeLevel = requestLoggerFactory(parent, { request_id: 'lazy-2' }, { level: 'debug' });
  routeLevel.debug('a route with its own level gets a real child at once');
  t.match(text(), /lazy-2/);
});

t.test('the access line logs a path only: no query, path parameters or user info', async (t) => {
  t.equal(loggedPath('/v1/chat/completions'), '/v1/chat/completions');
  t.equal(loggedPath('/v1/chat/completions?key=sk-1'), '/v1/chat/completions');
  t.equal(loggedPath('/v1/models;key=sk-2'), '/v1/models');
  t.equal(loggedPath('/health#x'), '/health');
  t.equal(loggedPath('http://user:sk-3@example.test/v1/chat/completions?key=sk-4'), '/v1/chat/completions');
  t.equal(loggedPath('*'), '(not a URL)');

  // Through a real gateway: node:http hands an absolute-form target over as it came, user info included.
  const up = await startUpstream(t);
  const gw = await startGateway(t, { providers: { openai: { type: 'openai', base_url: up.baseUrl } } });
  const before = gw.logs.length;
  const { port } = new URL(gw.url);
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `http://someone:${SECRETS.bearer}@127.0.0.1:${port}/v1/chat/completions?key=${SECRETS.query}`,
        headers: { 'content-type': 'application/json', 'x-request-id': 'abs-form' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(chat('openai/gpt-4o-mini', 'hi')));
  });
  t.equal(status, 200, 'an absolute-form target is served');
  const line = gw.logs.slice(before).find((l) => l.request_id === 'abs-form' && l.msg === 'request');
  t.equal(line?.url, '/v1/chat/completions');
  const text = JSON.stringify(gw.logs.slice(before));
  t.notOk(text.includes(SECRETS.bearer), 'no user info in the logs');
  t.notOk(text.includes(SECRETS.query), 'no query in the logs');
});

t.test('credentials are redacted wherever a line carries headers', async (t) => {
  const { sink, text } = capture();
  const log = createLogger('info', sink);
  log.info({ headers: { authorization: 'Bearer sk-1', 'x-api-key': 'k-2', accept: 'json' }, api_key: 'k-3', provider: { api_key: 'k-4' } }, 'x');
  const line = JSON.parse(text());
  t.same(line.headers, { authorization: '[redacted]', 'x-api-key': '[redacted]', accept: 'json' });
  t.equal(line.api_key, '[redacted]');
  t.equal(line.provider.api_key, '[redacted]');
});

t.test('JSON lines unless the output is for a person; then readable text', async (t) => {
  const json = capture();
  createLogger('info', json.sink).child({ request_id: 'r-1' }).info({ plugin: 'cache' }, 'plugin loaded');
  const line = JSON.parse(json.text());
  t.match(line, { level: 30, request_id: 'r-1', plugin: 'cache', msg: 'plugin loaded' }, 'piped output is one JSON object per line');

  const pretty = capture();
  createLogger('info', pretty.sink, true).child({ request_id: 'r-2' }).info({ plugin: 'cache' }, 'plugin loaded');
  await new Promise((r) => setTimeout(r, 50));
  const text = pretty.text();
  t.throws(() => JSON.parse(text), 'pretty output is not JSON');
  t.match(text, /INFO.*plugin loaded/);
  t.match(text, /request_id: "r-2"/);
  t.match(text, /plugin: "cache"/);
});

function capture() {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString('utf8');
      done();
    },
  });
  return { sink, text: () => out };
}
