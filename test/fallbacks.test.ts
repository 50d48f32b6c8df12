/**
 * Fallbacks: the order they are tried in, after the primary's retries; PreHook/PostHook again for each attempt;
 * allow_fallbacks: false; the primary's error when every attempt fails; which provider/model served the answer;
 * and streams that fail before their first byte. Checked against what each loopback upstream saw.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { probePlugins } from './helpers/fixtures.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { startFakeProvider, type FakeProvider } from './helpers/fake-providers.js';

async function three(t: Parameters<typeof startGateway>[0], extra: Record<string, unknown> = {}, primaryExtra: Record<string, unknown> = {}) {
  const ups = { primary: await startFakeProvider(t, 'openai'), second: await startFakeProvider(t, 'openai'), third: await startFakeProvider(t, 'openai') };
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: {
      primary: { type: 'openai', base_url: ups.primary.baseUrl, ...primaryExtra },
      second: { type: 'openai', base_url: ups.second.baseUrl },
      third: { type: 'openai', base_url: ups.third.baseUrl },
    },
    ...extra,
  });
  return { ups, gw, url: `${gw.url}/v1/chat/completions` };
}

/** Which upstreams were called, in order of arrival, as "upstream:model". */
function order(ups: Record<string, FakeProvider>): string[] {
  return Object.entries(ups)
    .flatMap(([name, up]) => up.seen.map((s) => ({ seq: s.seq, label: `${name}:${s.model}` })))
    .sort((a, b) => a.seq - b.seq)
    .map((x) => x.label);
}

t.test('fallbacks are tried in order once the primary (and its retries) failed; the answer says who served it', async (t) => {
  const { ups, url } = await three(t, {}, { retries: { max_retries: 1, initial_backoff_ms: 10 } });
  ups.primary.modelFaults.set('big', { status: 500 });
  ups.second.modelFaults.set('medium', { status: 503 });
  const res = await postJson(url, chat('primary/big', 'who answers?', { fallbacks: ['second/medium', 'third/small'] }));
  t.equal(res.status, 200);
  t.equal(res.json.choices[0].message.content, 'upstream says: who answers?');
  t.equal(res.headers.get('x-heimdall-served-by'), 'third/small');
  t.same(order(ups), ['primary:big', 'primary:big', 'second:medium', 'third:small'], 'primary twice (one retry), then each fallback once');
  for (const up of Object.values(ups)) {
    for (const seen of up.seen) t.notOk('fallbacks' in seen.json, 'the gateway field never goes upstream');
  }

  const direct = await postJson(url, chat('third/small', 'hi', { fallbacks: ['second/medium'] }));
  t.equal(direct.headers.get('x-heimdall-served-by'), 'third/small', 'a primary that answers is named too');
  t.equal(ups.second.seen.length, 1, 'and its fallbacks are not called');
});

t.test('when every attempt fails the client gets the primary\'s error', async (t) => {
  const { ups, url } = await three(t);
  ups.primary.modelFaults.set('m', { status: 429, retryAfter: '9', message: 'primary is rate limited' });
  ups.second.modelFaults.set('m', { status: 500, message: 'second is down' });
  ups.third.modelFaults.set('m', { status: 400, message: 'third refuses' });
  const res = await postJson(url, chat('primary/m', 'x', { fallbacks: ['second/m', 'third/m'] }));
  t.equal(res.status, 429);
  t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_RATE_LIMIT');
  t.match(res.json.error.message, /primary is rate limited/);
  t.equal(res.headers.get('retry-after'), '9');
  t.notOk(res.headers.get('x-heimdall-served-by'));
  t.same(order(ups), ['primary:m', 'second:m', 'third:m']);
});

t.test('fallbacks are checked before anything is sent', async (t) => {
  const { ups, url } = await three(t);
  const notArray = await postJson(url, chat('primary/m', 'x', { fallbacks: 'second/m' }));
  t.equal(notArray.status, 400);
  t.match(notArray.json.error.message, /"fallbacks" must be an array/);
  const unknown = await postJson(url, chat('primary/m', 'x', { fallbacks: ['nowhere/m'] }));
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'HEIMDALL_ERR_PROVIDER_UNKNOWN');
  t.same(order(ups), []);
});

t.test('streams: a failure before the first byte falls back; a failure after it is the client\'s error event', async (t) => {
  const { ups, url } = await three(t);
  ups.primary.queue({ status: 502 }, { reset: 'before' }, { malformed: true }, { reset: 'mid-stream' });
  for (const fault of ['status 502', 'reset before answering', 'malformed first event']) {
    const res = await postJson(url, chat('primary/m', 'stream me', { stream: true, fallbacks: ['second/m'] }));
    t.equal(res.status, 200, fault);
    t.equal(res.headers.get('x-heimdall-served-by'), 'second/m', `${fault}: served by the fallback`);
    const events = sseData(res.text);
    t.equal(events.at(-1), '[DONE]');
    t.equal(events.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta.content ?? '').join(''), 'upstream says: stream me');
  }
  t.equal(ups.second.seen.length, 3);

  const broken = await postJson(url, chat('primary/m', 'a b c', { stream: true, fallbacks: ['second/m'] }));
  t.equal(broken.headers.get('x-heimdall-served-by'), 'primary/m', 'the primary had started streaming');
  t.equal(JSON.parse(sseData(broken.text).at(-1) as string).error.code, 'HEIMDALL_ERR_UPSTREAM_CONNECT');
  t.equal(ups.second.seen.length, 3, 'no fallback once the stream had started');
});

t.test('plugins: PreHook and PostHook run again for each attempt; allow_fallbacks: false stops the chain', async (t) => {
  const probes = await probePlugins();
  const traceFile = () => path.join(mkdtempSync(path.join(tmpdir(), 'heimdall-fallback-')), 'trace.jsonl');
  const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);

  await t.test('per attempt', async (t) => {
    const trace = traceFile();
    const { ups, url } = await three(t, { plugins: [{ path: probes.p1, config: { trace } }, { path: probes.p2, config: { trace } }] });
    ups.primary.modelFaults.set('m', { status: 500 });
    const res = await postJson(url, chat('primary/m', 'x', { fallbacks: ['second/n'] }));
    t.equal(res.status, 200);
    const calls = read(trace).filter((l) => l.hook === 'pre' || l.hook === 'post');
    t.same(calls.map((l) => `${l.plugin}:${l.hook}:${l.ctx.provider}/${l.ctx.model}`), [
      'p1:pre:primary/m', 'p2:pre:primary/m', 'p2:post:primary/m', 'p1:post:primary/m',
      'p1:pre:second/n', 'p2:pre:second/n', 'p2:post:second/n', 'p1:post:second/n',
    ]);
    const firstPost = calls[2];
    const lastPost = calls[7];
    t.equal(firstPost.error.code, 'HEIMDALL_ERR_UPSTREAM_STATUS', 'the failed attempt\'s PostHook sees its error');
    t.equal(lastPost.response.choices[0].message.content, 'upstream says: x', 'the fallback\'s PostHook sees its answer');
    const fallbackPre = calls[4];
    t.equal(fallbackPre.input.model, 'second/n', 'the fallback attempt\'s request names the fallback model');
    t.notOk('fallbacks' in fallbackPre.input);
  });

  await t.test('allow_fallbacks: false', async (t) => {
    const trace = traceFile();
    const refusal = { error: { status_code: 403, message: 'not for you', code: 'policy', allow_fallbacks: false } };
    const { ups, url } = await three(t, { plugins: [{ path: probes.p1, config: { trace, pre_output: JSON.stringify(refusal) } }] });
    const res = await postJson(url, chat('primary/m', 'x', { fallbacks: ['second/m', 'third/m'] }));
    t.equal(res.status, 403);
    t.equal(res.json.error.code, 'policy');
    t.same(order(ups), [], 'no upstream was called');
    t.equal(read(trace).filter((l) => l.hook === 'pre').length, 1, 'and no fallback attempt was made');
  });

  await t.test('a plugin error that allows fallbacks lets them run', async (t) => {
    const trace = traceFile();
    const refusal = { error: { status_code: 503, message: 'busy here', code: 'busy' } };
    const { ups, url } = await three(t, { plugins: [{ path: probes.p1, config: { trace, pre_output: JSON.stringify(refusal) } }] });
    const res = await postJson(url, chat('primary/m', 'x', { fallbacks: ['second/m'] }));
    t.equal(res.status, 503, 'the PreHook refuses the fallback too: the primary\'s error');
    t.equal(res.json.error.message, 'busy here');
    t.same(read(trace).filter((l) => l.hook === 'pre').map((l) => l.ctx.provider), ['primary', 'second']);
    t.same(order(ups), []);
  });
});
