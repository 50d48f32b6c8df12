/**
 * Limits on what a plugin hands back, checked where its output is decoded: JSON nested past 256 levels, and header
 * names and values (TransportInterceptor headers, an error's retry_after) that HTTP cannot carry. Each is the
 * plugin's failure, logged under its name, never the gateway's 500; the decoder on its own, then through a real
 * gateway with the probe plugin answering them.
 */
import Fastify from 'fastify';
import t from 'tap';
import { sendError } from '../src/server/routes/chat.js';
import { ActionError, decodeChunk, decodePostHook, decodePreHook, decodeTransport } from '../src/plugins/actions.js';
import { chat, postJson, startGateway } from './helpers/gateway.js';
import { probePlugins } from './helpers/fixtures.js';

const probes = await probePlugins();

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const errorWith = (retry_after: unknown) => JSON.stringify({ error: { status_code: 429, message: 'slow down', retry_after } });

t.test('the decoder refuses JSON nested deeper than 256 levels, before parsing it', async (t) => {
  const tooDeep = /^output nests JSON deeper than 256 levels$/;
  // The action object and its "context" are two of the levels.
  t.throws(() => decodePreHook(`{"context":{"x":${nested(255)}}}`), { constructor: ActionError, message: tooDeep }, '257 levels are refused');
  t.ok(Array.isArray(decodePreHook(`{"context":{"x":${nested(254)}}}`).context?.x), '256 levels are accepted');
  t.throws(() => decodePostHook(`{"response":${nested(200_000)}}`), { message: tooDeep }, 'far too deep: refused, no stack overflow');
  t.throws(() => decodeChunk(`{"chunk":{"a":${nested(300)}}}`), { message: tooDeep });
  t.throws(() => decodeTransport(`{"body":${nested(300)}}`), { message: tooDeep });
  // Brackets inside strings, escaped quotes included, are text, not nesting.
  const text = `${'['.repeat(1000)}\\"${'{'.repeat(1000)}`;
  t.equal(decodePreHook(`{"context":{"note":"${text}"}}`).context?.note, JSON.parse(`"${text}"`));
});

t.test('the decoder refuses header names and values HTTP cannot carry', async (t) => {
  for (const bad of ['1\r\nx-injected: yes', '1\n', 'soon\u0000', '\u65e5\u672c']) {
    t.throws(() => decodePreHook(errorWith(bad)), { constructor: ActionError, message: /"error.retry_after" must be a number or a string that is a valid HTTP header value/ }, JSON.stringify(bad));
  }
  t.throws(() => decodePostHook(errorWith('2\r\n')), { message: /error.retry_after/ }, 'in a PostHook error');
  t.throws(() => decodeChunk(errorWith('2\r\n')), { message: /error.retry_after/ }, 'in a StreamChunkHook error');
  for (const bad of [null, true, { seconds: 3 }, [3]]) {
    t.throws(() => decodePreHook(errorWith(bad)), { message: /error.retry_after/ }, `${JSON.stringify(bad)} is neither a number nor a string`);
  }
  for (const good of [3, 0.5, '120', 'Wed, 21 Oct 2015 07:28:00 GMT', '\u00e9\tok']) {
    const r = decodePreHook(errorWith(good));
    t.equal(r.kind === 'error' ? r.error.retry_after : undefined, good, `${JSON.stringify(good)} is accepted`);
  }

  t.throws(() => decodeTransport(JSON.stringify({ headers: { 'x-team': 'a\r\nb' } })), { message: /"headers.x-team" is not a valid HTTP header value/ });
  t.throws(() => decodeTransport(JSON.stringify({ headers: { 'x team': 'a' } })), { message: /"headers" has "x team", which is not a valid HTTP header name/ });
  t.throws(() => decodeTransport(JSON.stringify({ response: { status_code: 403, headers: { 'x-reason': 'geo\nset-cookie: a=b' } } })), {
    message: /"response.headers.x-reason" is not a valid HTTP header value/,
  });
  t.throws(() => decodeTransport(JSON.stringify({ response: { headers: { '': 'x' } } })), { message: /not a valid HTTP header name/ });
  for (const framing of ['Transfer-Encoding', 'content-length', 'connection']) {
    t.throws(() => decodeTransport(JSON.stringify({ response: { headers: { [framing]: 'chunked' } } })), { message: /which the gateway sets itself/ }, framing);
  }
  t.same(decodeTransport(JSON.stringify({ headers: { 'x-team': 'search', 'x-debug': null } })).kind, 'continue', 'valid headers, and null, are accepted');
});

t.test('through a gateway: a retry_after with CR/LF is the plugin\'s failure; the request is served', async (t) => {
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock' } },
    plugins: [
      { path: probes.p1, config: { post_output: errorWith('3\r\nx-injected: yes') } },
      { path: probes.p2, config: { pre_output: errorWith('1\r\nx-injected: yes') } },
    ],
  });
  for (const route of ['/v1/chat/completions', '/openai/v1/chat/completions']) {
    const res = await postJson(`${gw.url}${route}`, chat('mock/echo', 'still served'));
    t.equal(res.status, 200, `${route}: answered by the provider, not a 500`);
    t.match(res.json?.choices?.[0]?.message?.content, /still served/);
    t.equal(res.headers.get('x-injected'), null, 'nothing was injected');
    t.equal(res.headers.get('retry-after'), null);
  }
  const anthropic = await postJson(`${gw.url}/anthropic/v1/messages`, { model: 'mock/echo', max_tokens: 16, messages: [{ role: 'user', content: 'still served' }] });
  t.equal(anthropic.status, 200, 'the Anthropic route too');
  t.equal(anthropic.json?.type, 'message');

  const failures = gw.logs.filter((l) => l.level === 40 && /error\.retry_after/.test(l.msg));
  t.ok(failures.some((l) => l.plugin === 'p2' && l.hook === 'PreHook'), 'the PreHook failure is logged under the plugin');
  t.ok(failures.some((l) => l.plugin === 'p1' && l.hook === 'PostHook'), 'the PostHook failure is logged under the plugin');
  t.notOk(gw.logs.some((l) => l.level >= 50), 'no error-level line: nothing failed in the gateway');
});

t.test('through a gateway: a valid retry_after is still sent', async (t) => {
  const gw = await startGateway(t, { providers: { mock: { type: 'mock' } }, plugins: [{ path: probes.p1, config: { pre_output: errorWith('12') } }] });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
  t.equal(res.status, 429);
  t.equal(res.headers.get('retry-after'), '12');
  t.equal(res.json.error.message, 'slow down');
});

t.test('through a gateway: TransportInterceptor headers with CR/LF are the plugin\'s failure', async (t) => {
  const answer = JSON.stringify({ response: { status_code: 403, headers: { 'x-reason': 'geo\r\nx-injected: yes' }, body: { error: { message: 'no' } } } });
  const rewrite = JSON.stringify({ headers: { 'x-team': 'search\r\nx-injected: yes' } });
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock' } },
    plugins: [
      { path: probes.p1, config: { transport_output: answer } },
      { path: probes.p2, config: { transport_output: rewrite } },
    ],
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'still served'));
  t.equal(res.status, 200, 'the plugin\'s answer was refused, and the request served');
  t.match(res.json?.choices?.[0]?.message?.content, /still served/);
  t.equal(res.headers.get('x-injected'), null);
  t.match(gw.logs.find((l) => l.plugin === 'p1' && l.hook === 'TransportInterceptor')?.msg, /TransportInterceptor "response.headers.x-reason" is not a valid HTTP header value/);
  t.match(gw.logs.find((l) => l.plugin === 'p2' && l.hook === 'TransportInterceptor')?.msg, /TransportInterceptor "headers.x-team" is not a valid HTTP header value/);
});

t.test('through a gateway: output nested 100,000 deep fails the plugin, clearly; the request is served', async (t) => {
  const deep = `{"context":{"x":${nested(100_000)}}}`;
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock' } },
    plugins: [{ path: probes.p1, config: { pre_output: deep, post_output: `{"response":${nested(100_000)}}` } }],
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'still served'));
  t.equal(res.status, 200);
  t.match(res.json?.choices?.[0]?.message?.content, /still served/);
  const messages = gw.logs.filter((l) => l.plugin === 'p1' && l.level === 40).map((l) => l.msg);
  t.match(messages, [/PreHook output nests JSON deeper than 256 levels$/, /PostHook output nests JSON deeper than 256 levels$/]);
});

t.test('the routes send retry-after only when HTTP can carry it, whatever reached the error', async (t) => {
  const app = Fastify();
  t.teardown(() => app.close());
  app.get('/:value', async (req, reply) => sendError(reply, { status_code: 429, message: 'slow down', retry_after: JSON.parse((req.params as { value: string }).value) }));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const get = async (value: unknown) => fetch(`${url}/${encodeURIComponent(JSON.stringify(value))}`);
  const bad = await get('1\r\nx-injected: yes');
  t.equal(bad.status, 429, 'the error\'s own status, not a 500');
  t.match(await bad.json(), { error: { message: 'slow down', type: 'rate_limit_error' } }, 'in the gateway\'s error shape');
  t.equal(bad.headers.get('retry-after'), null);
  t.equal(bad.headers.get('x-injected'), null);
  t.equal((await get(7)).headers.get('retry-after'), '7');
  t.equal((await get('7')).headers.get('retry-after'), '7');
});
