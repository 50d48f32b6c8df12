/**
 * Every route runs the same plugin pipeline on the canonical request: /v1/chat/completions, /v1/embeddings, the
 * drop-in /openai/v1 routes and /anthropic/v1/messages. Also: embeddings end to end, and GET /v1/models.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { probePlugins } from './helpers/fixtures.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { startFakeProvider } from './helpers/fake-providers.js';

const probes = await probePlugins();

function tracer() {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'heimdall-routes-')), 'trace.jsonl');
  const read = (): any[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
  return { file, read };
}

t.test('plugins see the canonical request and response on every route', async (t) => {
  const tr = tracer();
  const openai = await startFakeProvider(t, 'openai');
  const anthropic = await startFakeProvider(t, 'anthropic');
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { openai: { base_url: openai.baseUrl }, anthropic: { base_url: anthropic.baseUrl } },
    plugins: [{ path: probes.p1, config: { trace: tr.file } }],
  });

  await postJson(`${gw.url}/openai/v1/chat/completions`, chat('gpt-4o-mini', 'via the openai route'));
  await postJson(`${gw.url}/anthropic/v1/messages`, { model: 'claude-x', max_tokens: 10, system: 'Be kind.', messages: [{ role: 'user', content: 'via the anthropic route' }] });
  await postJson(`${gw.url}/v1/embeddings`, { model: 'openai/text-embedding-3-small', input: 'embed me' });

  const pre = tr.read().filter((l) => l.hook === 'pre');
  t.same(pre.map((l) => l.ctx.route), ['/openai/v1/chat/completions', '/anthropic/v1/messages', '/v1/embeddings']);
  t.equal(pre[0].input.model, 'openai/gpt-4o-mini', 'a bare model name is "provider/model" by the time plugins see it');
  t.same(pre[1].input, {
    model: 'anthropic/claude-x',
    messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'via the anthropic route' }],
    max_tokens: 10,
  }, 'the Anthropic request, in the canonical shape');
  t.same(pre[2].input, { model: 'openai/text-embedding-3-small', input: 'embed me' });

  const post = tr.read().filter((l) => l.hook === 'post');
  t.equal(post[1].response.object, 'chat.completion', 'PostHook sees the canonical answer on the Anthropic route too');
  t.equal(post[2].response.object, 'list');
  t.same(tr.read().filter((l) => l.hook === 'transport').map((l) => l.http.path), ['/openai/v1/chat/completions', '/anthropic/v1/messages', '/v1/embeddings'], 'TransportInterceptor too');
});

t.test('a PreHook short-circuit answers in the route\'s own shape', async (t) => {
  const tr = tracer();
  const cached = { id: 'cached-1', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'from cache' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } };
  const gw = await startGateway(t, {
    providers: { anthropic: { type: 'mock' } },
    plugins: [{ path: probes.p1, config: { trace: tr.file, pre_output: JSON.stringify({ response: cached }) } }],
  });
  const res = await postJson(`${gw.url}/anthropic/v1/messages`, { model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] });
  t.match(res.json, { id: 'msg_cached-1', type: 'message', content: [{ type: 'text', text: 'from cache' }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 2 } });
  t.notOk(res.headers.get('x-heimdall-served-by'), 'no provider served it');

  const streamed = await postJson(`${gw.url}/anthropic/v1/messages`, { model: 'claude-x', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'x' }] });
  const events = streamed.text.split('\n\n').filter(Boolean).map((e) => e.split('\n')[0]?.replace('event: ', ''));
  t.same(events, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);

  const refused = await startGateway(t, {
    providers: { anthropic: { type: 'mock' } },
    plugins: [{ path: probes.p1, config: { pre_output: JSON.stringify({ error: { status_code: 403, message: 'no', allow_fallbacks: false } }) } }],
  });
  const err = await postJson(`${refused.url}/anthropic/v1/messages`, { model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] });
  t.equal(err.status, 403);
  t.same(err.json, { type: 'error', error: { type: 'permission_error', message: 'no' } });
});

t.test('embeddings: OpenAI-compatible upstream, the mock, fallbacks, validation', async (t) => {
  const up = await startFakeProvider(t, 'openai');
  const gw = await startGateway(t, { providers: { openai: { base_url: up.baseUrl }, mock: { type: 'mock' } } });
  const url = `${gw.url}/v1/embeddings`;

  const res = await postJson(url, { model: 'openai/text-embedding-3-small', input: ['a', 'b'], fallbacks: ['mock/embed'] });
  t.equal(res.status, 200);
  t.equal(res.headers.get('x-heimdall-served-by'), 'openai/text-embedding-3-small');
  t.equal(res.json.data.length, 2);
  t.same(up.seen[0]?.json, { model: 'text-embedding-3-small', input: ['a', 'b'] }, 'the gateway\'s fallbacks field stays home');
  t.equal(up.seen[0]?.url, '/v1/embeddings');

  up.queue({ status: 500 });
  const fallback = await postJson(url, { model: 'openai/text-embedding-3-small', input: 'x', fallbacks: ['mock/embed'] });
  t.equal(fallback.status, 200);
  t.equal(fallback.headers.get('x-heimdall-served-by'), 'mock/embed');
  t.equal(fallback.json.data[0].embedding.length, 8);

  const again = await postJson(url, { model: 'mock/embed', input: 'x' });
  t.same(again.json.data[0].embedding, fallback.json.data[0].embedding, 'the mock embeds deterministically');

  const missing = await postJson(url, { model: 'openai/text-embedding-3-small' });
  t.equal(missing.status, 400);
  t.match(missing.json.error.message, /"input" must be/);
});

t.test('/v1/models and /openai/v1/models list the configured models', async (t) => {
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock', models: ['echo'] }, gemini: { type: 'gemini', base_url: 'http://127.0.0.1:9/v1beta', models: ['gemini-2.0-flash'] } },
  });
  for (const route of ['/v1/models', '/openai/v1/models']) {
    const models = await (await fetch(`${gw.url}${route}`)).json();
    t.same(models.data.map((m: { id: string }) => m.id), ['mock/echo', 'gemini/gemini-2.0-flash'], route);
  }
});

t.test('streaming on the drop-in OpenAI route', async (t) => {
  const gw = await startGateway(t, { providers: { mock: { type: 'mock' } } });
  const res = await postJson(`${gw.url}/openai/v1/chat/completions`, chat('echo', 'bare name, no openai provider', { stream: true }));
  t.equal(res.status, 200);
  t.equal(res.headers.get('x-heimdall-served-by'), 'mock/echo', 'without a provider named openai, the first provider takes bare names');
  t.equal(sseData(res.text).at(-1), '[DONE]');
});
