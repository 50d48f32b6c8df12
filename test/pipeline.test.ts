/**
 * The hook pipeline through a real gateway, with real native probe plugins: order, short-circuit symmetry,
 * context propagation, and plugin failures that never fail a request.
 */
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { probePlugins } from './helpers/fixtures.js';
import { startUpstream } from './helpers/upstream.js';

const probes = await probePlugins();

interface TraceLine {
  plugin: string;
  hook: string;
  ctx?: any;
  input?: any;
  response?: any;
  error?: any;
  http?: any;
  body?: string | null;
}

function tracer() {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'heimdall-trace-')), 'trace.jsonl');
  const read = (): TraceLine[] =>
    existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as TraceLine) : [];
  const calls = (...hooks: string[]) => read().filter((l) => hooks.includes(l.hook)).map((l) => `${l.plugin}:${l.hook}`);
  return { file, read, calls };
}

/** Three probes sharing one trace file, each with its own extra config. */
function threeProbes(trace: string, extra: Partial<Record<'p1' | 'p2' | 'p3', Record<string, string>>> = {}) {
  return (['p1', 'p2', 'p3'] as const).map((name) => ({ path: probes[name], config: { trace, ...extra[name] } }));
}

t.test('hooks run in order: transport and pre forward, post in reverse', async (t) => {
  const tr = tracer();
  const gw = await startGateway(t, { providers: { mock: { type: 'mock' } }, plugins: threeProbes(tr.file) });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'order please'));
  t.equal(res.status, 200);
  t.match(res.json.choices[0].message.content, /You said: order please/);
  t.same(tr.calls('transport', 'pre', 'post'), [
    'p1:transport', 'p2:transport', 'p3:transport',
    'p1:pre', 'p2:pre', 'p3:pre',
    'p3:post', 'p2:post', 'p1:post',
  ]);
  const pre = tr.read().find((l) => l.hook === 'pre');
  t.equal(pre?.ctx.provider, 'mock');
  t.equal(pre?.ctx.model, 'echo');
  t.equal(pre?.ctx.request_id, res.headers.get('x-request-id'));
  t.equal(pre?.input.model, 'mock/echo', 'PreHook sees the request as the client sent it');
  const post = tr.read().find((l) => l.hook === 'post');
  t.equal(post?.error, null);
  t.match(post?.response.choices[0].message.content, /order please/);
});

t.test('a PreHook short-circuit skips the provider and later PreHooks; PostHooks run for those that ran', async (t) => {
  const tr = tracer();
  const up = await startUpstream(t);
  const cached = { id: 'cached-1', object: 'chat.completion', created: 1, model: 'gpt', choices: [{ index: 0, message: { role: 'assistant', content: 'from cache' }, finish_reason: 'stop' }] };
  const gw = await startGateway(t, {
    providers: { openai: { type: 'openai', base_url: up.baseUrl } },
    plugins: threeProbes(tr.file, { p2: { pre_output: JSON.stringify({ response: cached }) } }),
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt'));
  t.equal(res.status, 200);
  t.equal(res.json.choices[0].message.content, 'from cache');
  t.equal(up.seen.length, 0, 'the upstream was never called');
  t.same(tr.calls('pre', 'post'), ['p1:pre', 'p2:pre', 'p2:post', 'p1:post']);
  t.same(tr.read().find((l) => l.hook === 'post')?.response, cached, 'PostHook sees the short-circuit response');
});

t.test('a PreHook error short-circuit answers with its status and an OpenAI error body', async (t) => {
  const tr = tracer();
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock' } },
    plugins: threeProbes(tr.file, {
      p1: { pre_output: JSON.stringify({ error: { status_code: 429, message: 'too many', type: 'rate_limit_error', code: 'rate_limited', allow_fallbacks: false, retry_after: 3 } }) },
    }),
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
  t.equal(res.status, 429);
  t.same(res.json, { error: { message: 'too many', type: 'rate_limit_error', param: null, code: 'rate_limited' } });
  t.equal(res.headers.get('retry-after'), '3');
  t.same(tr.calls('pre', 'post'), ['p1:pre', 'p1:post']);
  t.equal(tr.read().find((l) => l.hook === 'post')?.error.allow_fallbacks, false);
});

t.test('context values set by one hook are visible to later hooks of the same request', async (t) => {
  const tr = tracer();
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock' } },
    plugins: threeProbes(tr.file, {
      p1: { transport_output: JSON.stringify({ context: { seen_by: 'p1-transport' } }) },
      p2: { pre_output: JSON.stringify({ context: { tier: 'gold' } }) },
    }),
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
  t.equal(res.status, 200);
  const lines = tr.read();
  t.same(lines.find((l) => l.plugin === 'p1' && l.hook === 'pre')?.ctx.values, { seen_by: 'p1-transport' });
  t.same(lines.find((l) => l.plugin === 'p3' && l.hook === 'pre')?.ctx.values, { seen_by: 'p1-transport', tier: 'gold' });
  t.same(lines.find((l) => l.plugin === 'p1' && l.hook === 'post')?.ctx.values, { seen_by: 'p1-transport', tier: 'gold' });
  // A second request starts with a clean context.
  await postJson(`${gw.url}/v1/chat/completions`, chat());
  const again = tr.read().filter((l) => l.plugin === 'p1' && l.hook === 'pre');
  t.same(again[1]?.ctx.values, { seen_by: 'p1-transport' });
});

t.test('a PreHook can rewrite the request; later hooks and the provider see the new one', async (t) => {
  const tr = tracer();
  const up = await startUpstream(t);
  const rewritten = { model: 'openai/gpt-rewritten', messages: [{ role: 'user', content: 'rewritten by p1' }] };
  const gw = await startGateway(t, {
    providers: { openai: { type: 'openai', base_url: up.baseUrl } },
    plugins: threeProbes(tr.file, { p1: { pre_output: JSON.stringify({ request: rewritten }) } }),
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-original', 'original'));
  t.equal(res.status, 200);
  t.same(tr.read().find((l) => l.plugin === 'p2' && l.hook === 'pre')?.input, rewritten);
  t.equal(tr.read().find((l) => l.plugin === 'p2' && l.hook === 'pre')?.ctx.model, 'gpt-rewritten');
  const sent = JSON.parse(up.seen[0]?.body ?? '{}');
  t.equal(sent.model, 'gpt-rewritten');
  t.equal(sent.messages[0].content, 'rewritten by p1');
});

t.test('a plugin that fails is logged under its name and the request goes on', async (t) => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ['garbage output', { pre_output: 'this is {not json' }, /PreHook output is not valid JSON/],
    ['non-zero status', { pre_status: '3', pre_output: 'database unreachable' }, /PreHook returned status 3: database unreachable/],
    ['wrong shape', { pre_output: JSON.stringify({ request: 42 }) }, /"request" must be a JSON object/],
    ['unknown action', { pre_output: JSON.stringify({ reqest: {} }) }, /unknown field "reqest"/],
    ['error without message', { pre_output: JSON.stringify({ error: { status_code: 400 } }) }, /error.message/],
  ];
  for (const [name, p2, expected] of cases) {
    await t.test(name, async (t) => {
      const tr = tracer();
      const gw = await startGateway(t, { providers: { mock: { type: 'mock' } }, plugins: threeProbes(tr.file, { p2 }) });
      const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'still served'));
      t.equal(res.status, 200, 'the request is served');
      t.match(res.json.choices[0].message.content, /still served/);
      t.same(tr.calls('pre', 'post'), ['p1:pre', 'p2:pre', 'p3:pre', 'p3:post', 'p2:post', 'p1:post']);
      const failure = gw.logs.find((l) => l.plugin === 'p2' && l.hook === 'PreHook');
      t.ok(failure, 'the failure is logged with the plugin name');
      t.match(failure?.msg, expected);
      t.equal(failure?.level, 40, 'as a warning');
      t.equal(failure?.request_id, res.headers.get('x-request-id'));
    });
  }
});

t.test('PostHooks can replace a response, recover from an error, and invalidate a response', async (t) => {
  const replacement = { id: 'r', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'replaced' }, finish_reason: 'stop' }] };

  await t.test('replace: the earlier-registered PostHook runs last and wins', async (t) => {
    const tr = tracer();
    const gw = await startGateway(t, {
      providers: { mock: { type: 'mock' } },
      plugins: threeProbes(tr.file, { p3: { post_output: JSON.stringify({ response: replacement }) } }),
    });
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
    t.equal(res.json.choices[0].message.content, 'replaced');
    t.same(tr.read().find((l) => l.plugin === 'p2' && l.hook === 'post')?.response, replacement, 'p2 sees p3\'s replacement');
  });

  await t.test('recover: an upstream error becomes a response', async (t) => {
    const tr = tracer();
    const up = await startUpstream(t);
    const gw = await startGateway(t, {
      providers: { openai: { type: 'openai', base_url: up.baseUrl } },
      plugins: threeProbes(tr.file, { p2: { post_output: JSON.stringify({ response: replacement }) } }),
    });
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/fail-500'));
    t.equal(res.status, 200);
    t.equal(res.json.choices[0].message.content, 'replaced');
    const p3 = tr.read().find((l) => l.plugin === 'p3' && l.hook === 'post');
    t.equal(p3?.response, null);
    t.equal(p3?.error.status_code, 500);
    t.equal(p3?.error.code, 'HEIMDALL_ERR_UPSTREAM_STATUS');
    t.match(p3?.error.message, /overloaded/);
    t.same(tr.read().find((l) => l.plugin === 'p1' && l.hook === 'post')?.response, replacement);
  });

  await t.test('invalidate: a response becomes an error', async (t) => {
    const tr = tracer();
    const gw = await startGateway(t, {
      providers: { mock: { type: 'mock' } },
      plugins: threeProbes(tr.file, { p1: { post_output: JSON.stringify({ error: { status_code: 422, message: 'unsafe answer', code: 'blocked' } }) } }),
    });
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
    t.equal(res.status, 422);
    t.equal(res.json.error.message, 'unsafe answer');
    t.equal(res.json.error.code, 'blocked');
  });
});

t.test('TransportInterceptor sees the raw request and can rewrite headers and body, or answer itself', async (t) => {
  await t.test('rewrite', async (t) => {
    const tr = tracer();
    const gw = await startGateway(t, {
      providers: { mock: { type: 'mock' } },
      plugins: threeProbes(tr.file, {
        p1: { transport_output: JSON.stringify({ headers: { 'x-team': 'search', 'x-debug': null }, body: chat('mock/echo', 'body from p1') }) },
      }),
    });
    const res = await postJson(`${gw.url}/v1/chat/completions`, '{"model": "mock/echo", "messages": [{"role":"user","content":"raw"}]}', {
      'x-debug': '1',
      authorization: 'Bearer sk-secret',
    });
    t.equal(res.status, 200);
    t.match(res.json.choices[0].message.content, /body from p1/);
    const lines = tr.read();
    const p1 = lines.find((l) => l.plugin === 'p1' && l.hook === 'transport');
    t.equal(p1?.http.method, 'POST');
    t.equal(p1?.http.path, '/v1/chat/completions');
    t.equal(p1?.http.headers['x-debug'], '1');
    t.equal(p1?.http.headers.authorization, 'Bearer sk-secret', 'the transport hook sees credentials');
    t.equal(p1?.body, '{"model": "mock/echo", "messages": [{"role":"user","content":"raw"}]}', 'raw bytes, as sent');
    const p2 = lines.find((l) => l.plugin === 'p2' && l.hook === 'transport');
    t.equal(p2?.http.headers['x-team'], 'search');
    t.notOk('x-debug' in (p2?.http.headers ?? {}));
    const pre = lines.find((l) => l.plugin === 'p1' && l.hook === 'pre');
    t.equal(pre?.ctx.headers['x-team'], 'search');
    t.notOk('authorization' in pre?.ctx.headers, 'credentials never reach the context');
  });

  await t.test('answer', async (t) => {
    const tr = tracer();
    const gw = await startGateway(t, {
      providers: { mock: { type: 'mock' } },
      plugins: threeProbes(tr.file, {
        p2: { transport_output: JSON.stringify({ response: { status_code: 403, headers: { 'x-reason': 'geo' }, body: { error: { message: 'not here' } } } }) },
      }),
    });
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
    t.equal(res.status, 403);
    t.equal(res.headers.get('x-reason'), 'geo');
    t.same(res.json, { error: { message: 'not here' } });
    t.same(tr.calls('transport', 'pre', 'post'), ['p1:transport', 'p2:transport']);
  });

  await t.test('answer with its own content type; a malformed answer is a plugin failure', async (t) => {
    const tr = tracer();
    const gw = await startGateway(t, {
      providers: { mock: { type: 'mock' } },
      plugins: threeProbes(tr.file, {
        p1: { transport_output: JSON.stringify({ response: { status: 200, body: {} } }) },
        p2: { transport_output: JSON.stringify({ response: { status_code: 200, headers: { 'content-type': 'application/problem+json' }, body: { ok: true } } }) },
      }),
    });
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
    t.equal(res.headers.get('content-type'), 'application/problem+json');
    t.same(res.json, { ok: true });
    t.match(gw.logs.find((l) => l.plugin === 'p1' && l.hook === 'TransportInterceptor')?.msg, /unknown field "status" in response/);
  });
});

t.test('streaming: chunks pass through StreamChunkHooks in reverse order; PostHook sees the assembled response', async (t) => {
  await t.test('observe', async (t) => {
    const tr = tracer();
    const gw = await startGateway(t, { providers: { mock: { type: 'mock' } }, plugins: threeProbes(tr.file) });
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'stream me', { stream: true }));
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /text\/event-stream/);
    const data = sseData(res.text);
    t.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    t.equal(text, 'Mock reply from echo. You said: stream me');
    const chunkCalls = tr.calls('chunk');
    t.equal(chunkCalls.length, chunks.length * 3);
    t.same(chunkCalls.slice(0, 3), ['p3:chunk', 'p2:chunk', 'p1:chunk']);
    const posts = tr.read().filter((l) => l.hook === 'post');
    t.same(posts.map((l) => l.plugin), ['p3', 'p2', 'p1'], 'PostHook once per plugin, after the stream');
    t.equal(posts[0]?.response.choices[0].message.content, text, 'with the assembled response');
    t.equal(posts[0]?.response.object, 'chat.completion');
  });

  await t.test('modify, drop and abort', async (t) => {
    const tr = tracer();
    const replaced = { id: 'x', object: 'chat.completion.chunk', created: 1, model: 'echo', choices: [{ index: 0, delta: { content: 'ZAP ' }, finish_reason: null }] };
    const gw = await startGateway(t, {
      providers: { mock: { type: 'mock' } },
      plugins: threeProbes(tr.file, { p3: { chunk_output: JSON.stringify({ chunk: replaced }) } }),
    });
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'hi', { stream: true }));
    const chunks = sseData(res.text).slice(0, -1).map((d) => JSON.parse(d));
    t.ok(chunks.length > 2);
    t.ok(chunks.every((c) => c.choices[0].delta.content === 'ZAP '), 'every chunk replaced by p3');
    t.same(tr.read().find((l) => l.plugin === 'p2' && l.hook === 'chunk')?.input, replaced, 'p2 sees p3\'s chunk');

    const tr2 = tracer();
    const gw2 = await startGateway(t, {
      providers: { mock: { type: 'mock' } },
      plugins: threeProbes(tr2.file, { p2: { chunk_output: JSON.stringify({ drop: true }) } }),
    });
    const dropped = await postJson(`${gw2.url}/v1/chat/completions`, chat('mock/echo', 'hi', { stream: true }));
    t.same(sseData(dropped.text), ['[DONE]'], 'every chunk dropped');
    t.same(tr2.calls('chunk').slice(0, 3), ['p3:chunk', 'p2:chunk', 'p3:chunk'], 'p1 never sees a dropped chunk');

    const tr3 = tracer();
    const gw3 = await startGateway(t, {
      providers: { mock: { type: 'mock' } },
      plugins: threeProbes(tr3.file, { p1: { chunk_output: JSON.stringify({ error: { status_code: 400, message: 'policy violation', code: 'aborted' } }) } }),
    });
    const aborted = await postJson(`${gw3.url}/v1/chat/completions`, chat('mock/echo', 'hi', { stream: true }));
    t.equal(aborted.status, 200, 'the stream had started');
    t.same(sseData(aborted.text).map((d) => JSON.parse(d)), [{ error: { message: 'policy violation', type: 'invalid_request_error', param: null, code: 'aborted' } }]);
    t.same(tr3.read().filter((l) => l.hook === 'post').map((l) => l.error?.code), ['aborted', 'aborted', 'aborted']);
  });

  await t.test('a short-circuit response is streamed through the chunk hooks', async (t) => {
    const tr = tracer();
    const cached = { id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'cached words' }, finish_reason: 'stop' }] };
    const gw = await startGateway(t, {
      providers: { mock: { type: 'mock' } },
      plugins: threeProbes(tr.file, { p2: { pre_output: JSON.stringify({ response: cached }) } }),
    });
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'hi', { stream: true }));
    const chunks = sseData(res.text).slice(0, -1).map((d) => JSON.parse(d));
    t.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'cached words');
    t.same([...new Set(tr.calls('chunk'))], ['p2:chunk', 'p1:chunk'], 'only plugins whose PreHook ran');
    t.same(tr.read().find((l) => l.plugin === 'p1' && l.hook === 'post')?.response.choices[0].message.content, 'cached words');
  });
});

t.test('a plugin error without type or code gets the type its status implies', async (t) => {
  const tr = tracer();
  const gw = await startGateway(t, {
    providers: { mock: { type: 'mock' } },
    plugins: threeProbes(tr.file, { p1: { pre_output: JSON.stringify({ error: { status_code: 403, message: 'secret' } }) } }),
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat());
  t.equal(res.status, 403);
  t.same(res.json, { error: { message: 'secret', type: 'permission_error', param: null, code: null } });
});
