/**
 * The example C plugins in plugins-c/, built by node-gyp, each shown doing its one job through a real gateway.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { REPO } from './helpers/fixtures.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { startUpstream } from './helpers/upstream.js';

const example = (name: string) => path.join(REPO, 'build', 'Release', name);
if (!existsSync(`${example('transform')}.so`)) {
  t.fail('the example plugins are not built: run npm install (or npm run build:plugins)');
}

t.test('the default config.json loads every example plugin', async (t) => {
  const config = JSON.parse(readFileSync(path.join(REPO, 'config.json'), 'utf8'));
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-default-'));
  for (const p of config.plugins) if (p.config.path) p.config.path = path.join(dir, 'audit.jsonl');
  delete config.server;
  const gw = await startGateway(t, config, REPO);
  t.same(gw.gateway.plugins.active.map((p) => p.info.name), ['header_rewrite', 'audit_log', 'validate', 'cache', 'transform']);
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'Hello, Heimdall'));
  t.equal(res.status, 200);
  t.equal(res.json.choices[0].message.content, 'Mock reply from echo. You said: Hello, Heimdall (system prompt: You are concise.)');
  t.same(res.json.heimdall_tags, ['transformed']);
});

t.test('transform: a system prompt goes first; responses are tagged', async (t) => {
  const up = await startUpstream(t);
  const gw = await startGateway(t, {
    providers: { openai: { base_url: up.baseUrl } },
    plugins: [{ path: example('transform'), config: { system_prompt: 'Be "brief".', tag: 'v1' } }],
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt', 'hi'));
  t.equal(res.status, 200);
  t.same(res.json.heimdall_tags, ['v1']);
  t.same(JSON.parse(up.seen[0]?.body ?? '{}').messages, [
    { role: 'system', content: 'Be "brief".' },
    { role: 'user', content: 'hi' },
  ]);
  await t.rejects(
    startGateway(t, { providers: { mock: {} }, plugins: [{ path: example('transform'), config: { tag: 7 } }] }),
    { code: 'HEIMDALL_ERR_PLUGIN_INIT' },
    'a bad config is refused at start',
  );
});

t.test('validate: banned words and token limits are refused with the configured status', async (t) => {
  const up = await startUpstream(t);
  const gw = await startGateway(t, {
    providers: { openai: { base_url: up.baseUrl } },
    plugins: [{ path: example('validate'), config: { banned_words: ['falcon'], max_tokens: 100, status_code: 403, message: 'not allowed' } }],
  });
  const url = `${gw.url}/v1/chat/completions`;
  const banned = await postJson(url, chat('openai/gpt', 'About FALCON...'));
  t.equal(banned.status, 403);
  t.same(banned.json.error, { message: 'not allowed', type: 'invalid_request_error', param: null, code: 'request_blocked' });
  const escaped = await postJson(url, '{"model":"openai/gpt","messages":[{"role":"user","content":"f\\u0061lcon"}]}');
  t.equal(escaped.status, 403, 'escapes cannot hide a banned word');
  const tooMany = await postJson(url, chat('openai/gpt', 'hi', { max_tokens: 101 }));
  t.equal(tooMany.status, 403);
  const fine = await postJson(url, chat('openai/gpt', 'hi', { max_tokens: 100 }));
  t.equal(fine.status, 200);
  t.equal(up.seen.length, 1, 'only the allowed request reached the provider');
});

t.test('cache: repeated requests are answered without the provider, until the TTL passes', async (t) => {
  const up = await startUpstream(t);
  const gw = await startGateway(t, {
    providers: { openai: { base_url: up.baseUrl } },
    plugins: [{ path: example('cache'), config: { ttl_seconds: 1, max_entries: 8 } }],
  });
  const url = `${gw.url}/v1/chat/completions`;
  const first = await postJson(url, chat('openai/gpt', 'cache me'));
  const second = await postJson(url, JSON.stringify(chat('openai/gpt', 'cache me'), null, 2));
  t.equal(second.text, first.text, 'the same answer, even with different whitespace');
  t.equal(up.seen.length, 1, 'the provider was called once');
  const other = await postJson(url, chat('openai/gpt', 'something else'));
  t.equal(other.status, 200);
  t.equal(up.seen.length, 2);

  const streamed = await postJson(url, chat('openai/gpt', 'stream and cache', { stream: true }));
  const again = await postJson(url, chat('openai/gpt', 'stream and cache', { stream: true }));
  const text = (body: string) => sseData(body).slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta.content ?? '').join('');
  t.equal(text(again.text), text(streamed.text), 'a streamed answer is cached and replayed as a stream');
  t.equal(up.seen.length, 3);

  await sleep(1100);
  await postJson(url, chat('openai/gpt', 'cache me'));
  t.equal(up.seen.length, 4, 'after the TTL the provider is asked again');
});

t.test('audit_log: one line per request and per outcome, with the request id and headers', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-audit-'));
  const file = path.join(dir, 'audit.jsonl');
  const gw = await startGateway(t, {
    providers: { mock: {} },
    plugins: [
      { path: example('header_rewrite'), config: { set: { 'x-team': 'search' }, remove: ['x-debug'] } },
      { path: example('audit_log'), config: { path: file } },
    ],
  });
  const ok = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'audit me'), { 'x-debug': 'on', authorization: 'Bearer sk-hidden' });
  const bad = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/missing-model-is-fine'));
  t.equal(ok.status, 200);
  t.equal(bad.status, 200);
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(lines.map((l) => l.event), ['request', 'response', 'request', 'response']);
  t.equal(lines[0].request_id, ok.headers.get('x-request-id'));
  t.equal(lines[1].request_id, ok.headers.get('x-request-id'));
  t.equal(lines[0].request.messages[0].content, 'audit me');
  t.equal(lines[0].headers['x-team'], 'search', 'header_rewrite set x-team before the audit saw the request');
  t.notOk('x-debug' in lines[0].headers, 'and removed x-debug');
  t.notMatch(JSON.stringify(lines), /sk-hidden/, 'credentials never reach the audit log');
  t.match(lines[1].response.choices[0].message.content, /audit me/);
});
