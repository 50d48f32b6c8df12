/**
 * A lossless API, seen by the official SDKs: what an upstream says reaches the client as it said it. Behind the
 * gateway, scripted loopback servers answer exactly the bytes each test gives them (a message, SSE events, an error,
 * headers) and record exactly what they received, so each test asserts both ends:
 *
 * - an Anthropic client served by an Anthropic upstream: its request goes upstream JSON-equal (prompt caching,
 *   thinking, documents, images in tool results, anthropic-beta), and the answer and the stream events come back
 *   byte for byte;
 * - upstream errors keep their status, type, code and param in each SDK's error classes (a 401 is not retried);
 * - rate-limit headers and the upstream's request id reach the client; count_tokens and models.list work;
 * - an Anthropic client served by an OpenAI upstream gets correct streamed usage, and Anthropic-only fields are
 *   refused with a 400 naming them, or left out and listed in x-heimdall-dropped when the operator allows it.
 */
import Anthropic from '@anthropic-ai/sdk';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import t from 'tap';
import { postJson, startGateway } from './helpers/gateway.js';

interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
}

type Script =
  | { status?: number; headers?: Record<string, string>; json: unknown }
  | { status?: number; headers?: Record<string, string>; sse: string };

interface Scripted {
  baseUrl: string;
  received: Received[];
  /** The answers to the next requests, in order; when none is queued, `fallback` answers. */
  next(...scripts: Script[]): void;
  fallback: Script;
}

async function scriptedUpstream(t: { teardown(fn: () => unknown): void }): Promise<Scripted> {
  const received: Received[] = [];
  const queue: Script[] = [];
  const up: Scripted = {
    baseUrl: '',
    received,
    next: (...scripts) => void queue.push(...scripts),
    fallback: { status: 500, json: { error: { message: 'nothing scripted' } } },
  };
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, json });
      const script = queue.shift() ?? up.fallback;
      if ('sse' in script) {
        res.writeHead(script.status ?? 200, { 'content-type': 'text/event-stream', ...script.headers });
        res.end(script.sse);
      } else {
        res.writeHead(script.status ?? 200, { 'content-type': 'application/json', ...script.headers });
        res.end(JSON.stringify(script.json));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return up;
}

process.env.HEIMDALL_TEST_FIDELITY_KEY = 'sk-ant-gateway-secret-0123456789';
t.teardown(() => delete process.env.HEIMDALL_TEST_FIDELITY_KEY);

const PDF = Buffer.from('%PDF-1.4 a tiny document').toString('base64');
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

/** A Messages request that uses every feature the translation used to lose. */
const RICH_REQUEST = {
  model: 'claude-sonnet-4-5',
  max_tokens: 2048,
  system: [
    { type: 'text', text: 'You are a careful analyst.' },
    { type: 'text', text: 'A long shared preamble.', cache_control: { type: 'ephemeral', ttl: '1h' } },
  ],
  thinking: { type: 'enabled', budget_tokens: 1024 },
  messages: [
    {
      role: 'user',
      content: [
        { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF }, title: 'Report', citations: { enabled: true } },
        { type: 'text', text: 'Summarise the report.', cache_control: { type: 'ephemeral' } },
      ],
    },
    {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'The user wants a summary.', signature: 'sig-abc==' },
        { type: 'redacted_thinking', data: 'opaque-redacted==' },
        { type: 'tool_use', id: 'toolu_1', name: 'render', input: { page: 1 } },
      ],
    },
    {
      role: 'user',
      content: [
        {
          type: 'tool_result',
          tool_use_id: 'toolu_1',
          content: [{ type: 'text', text: 'page one' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }],
        },
      ],
    },
  ],
  tools: [{ name: 'render', description: 'Render a page', input_schema: { type: 'object', properties: { page: { type: 'integer' } } }, cache_control: { type: 'ephemeral' } }],
  tool_choice: { type: 'auto', disable_parallel_tool_use: true },
  stop_sequences: ['END'],
  metadata: { user_id: 'user-42' },
  top_k: 40,
};

const MESSAGE = {
  id: 'msg_01XYZ',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5-20250929',
  content: [
    { type: 'thinking', thinking: 'Page one says hello.', signature: 'sig-def==' },
    { type: 'text', text: 'The report says hello.', citations: null },
  ],
  stop_reason: 'stop_sequence',
  stop_sequence: 'END',
  usage: { input_tokens: 12, cache_creation_input_tokens: 900, cache_read_input_tokens: 3000, output_tokens: 20, service_tier: 'standard' },
};

const RATE_HEADERS = {
  'anthropic-ratelimit-requests-limit': '50',
  'anthropic-ratelimit-requests-remaining': '49',
  'anthropic-ratelimit-tokens-reset': '2026-12-03T12:00:00Z',
  'request-id': 'req_upstream_123',
  'set-cookie': 'upstream=private',
};

function sse(events: Array<[string, unknown]>): string {
  return events.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join('');
}

const STREAM = sse([
  ['message_start', { type: 'message_start', message: { ...MESSAGE, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 12, cache_creation_input_tokens: 900, cache_read_input_tokens: 3000, output_tokens: 1 } } }],
  ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }],
  ['ping', { type: 'ping' }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Page one ' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'says hello.' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig-def==' } }],
  ['content_block_stop', { type: 'content_block_stop', index: 0 }],
  ['content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'The report ' } }],
  ['a_future_event', { type: 'a_future_event', detail: 'kept' }],
  ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'says hello.' } }],
  ['content_block_stop', { type: 'content_block_stop', index: 1 }],
  ['message_delta', { type: 'message_delta', delta: { stop_reason: 'stop_sequence', stop_sequence: 'END' }, usage: { output_tokens: 20 } }],
  ['message_stop', { type: 'message_stop' }],
]);

async function anthropicGateway(t: Parameters<typeof startGateway>[0], extra: Record<string, unknown> = {}) {
  const up = await scriptedUpstream(t);
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { anthropic: { type: 'anthropic', base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_FIDELITY_KEY', ...extra } },
  });
  const client = new Anthropic({ baseURL: `${gw.url}/anthropic`, apiKey: 'sk-ant-client-side', maxRetries: 0 });
  return { up, gw, client };
}

t.test('Anthropic client, Anthropic upstream: the request goes upstream as the client sent it', async (t) => {
  const { up, client } = await anthropicGateway(t);
  up.next({ json: MESSAGE, headers: RATE_HEADERS });
  const { data, response } = await client.messages
    .create(RICH_REQUEST as unknown as Anthropic.MessageCreateParamsNonStreaming, { headers: { 'anthropic-beta': 'interleaved-thinking-2025-05-14' } })
    .withResponse();

  const sent = up.received[0] as Received;
  t.equal(sent.url, '/v1/messages');
  t.same(sent.json, RICH_REQUEST, 'JSON-equal: cache_control, system blocks, thinking, documents, tool-result images, top_k');
  t.equal(sent.headers['anthropic-beta'], 'interleaved-thinking-2025-05-14', 'anthropic-beta is forwarded');
  t.equal(sent.headers['x-api-key'], 'sk-ant-gateway-secret-0123456789', 'the gateway\'s key, not the client\'s');

  t.same(data, MESSAGE, 'the answer is the upstream\'s: thinking with its signature, stop_sequence, cache usage');
  t.equal(response.headers.get('anthropic-ratelimit-requests-remaining'), '49', 'rate-limit headers are relayed');
  t.equal(response.headers.get('anthropic-ratelimit-tokens-reset'), '2026-12-03T12:00:00Z');
  t.equal(response.headers.get('request-id'), 'req_upstream_123', 'the upstream\'s request id, under its name');
  t.ok(response.headers.get('x-request-id'), 'and the gateway\'s own');
  t.equal(response.headers.get('set-cookie'), null, 'nothing else of the upstream\'s headers');
});

t.test('Anthropic client, Anthropic upstream: the stream comes back event for event', async (t) => {
  const { gw, up, client } = await anthropicGateway(t);
  const streamed = { ...RICH_REQUEST, stream: true };
  up.next({ sse: STREAM, headers: RATE_HEADERS });
  const raw = await fetch(`${gw.url}/anthropic/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(streamed),
  });
  t.equal(raw.status, 200);
  t.equal(await raw.text(), STREAM, 'byte for byte: thinking and signature deltas, ping, an unknown event');
  t.equal(raw.headers.get('anthropic-ratelimit-requests-remaining'), '49');
  t.same(up.received[0]?.json, streamed);

  up.next({ sse: STREAM });
  const final = await client.messages.stream(streamed as unknown as Anthropic.MessageStreamParams).finalMessage();
  t.same(final.content, MESSAGE.content.map((b) => (b.type === 'text' ? { type: 'text', text: b.text } : b)), 'the SDK assembles thinking and text');
  t.equal(final.stop_reason, 'stop_sequence');
  t.equal(final.stop_sequence, 'END');
  t.equal(final.usage.input_tokens, 12, 'streamed input tokens are not 0');
  t.equal(final.usage.cache_creation_input_tokens, 900);
  t.equal(final.usage.cache_read_input_tokens, 3000);
  t.equal(final.usage.output_tokens, 20);
});

t.test('Anthropic client, Anthropic upstream: errors keep their status and type', async (t) => {
  const { up, client } = await anthropicGateway(t);
  up.next({ status: 529, json: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }, headers: { 'request-id': 'req_529' } });
  const overloaded = await client.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  t.type(overloaded, Anthropic.APIError);
  t.equal((overloaded as InstanceType<typeof Anthropic.APIError>).status, 529, '529 stays 529');
  t.match((overloaded as InstanceType<typeof Anthropic.APIError>).error, { type: 'error', error: { type: 'overloaded_error', message: /Overloaded/ } });
  t.equal((overloaded as InstanceType<typeof Anthropic.APIError>).headers?.get('request-id'), 'req_529', 'an error relays the upstream\'s headers too');

  up.next({ status: 404, json: { type: 'error', error: { type: 'not_found_error', message: 'model: claude-x' } } });
  const missing = await client.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  t.type(missing, Anthropic.NotFoundError, '404 stays 404');

  up.next({ status: 401, json: { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } } });
  const denied = await client.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  t.type(denied, Anthropic.AuthenticationError, '401 stays 401');
});

t.test('count_tokens and models.list on the Anthropic route', async (t) => {
  const { up, client } = await anthropicGateway(t, { models: ['claude-sonnet-4-5', 'claude-haiku-4-5'] });
  up.next({ json: { input_tokens: 2095 } });
  const count = await client.messages.countTokens({
    model: 'claude-sonnet-4-5',
    system: [{ type: 'text', text: 'x', cache_control: { type: 'ephemeral' } }],
    messages: [{ role: 'user', content: 'How many tokens?' }],
  });
  t.equal(count.input_tokens, 2095);
  t.equal(up.received[0]?.url, '/v1/messages/count_tokens');
  t.same(up.received[0]?.json.system, [{ type: 'text', text: 'x', cache_control: { type: 'ephemeral' } }]);

  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  t.same(models, ['anthropic/claude-sonnet-4-5', 'anthropic/claude-haiku-4-5']);
  const one = await client.models.retrieve('anthropic/claude-haiku-4-5');
  t.equal(one.id, 'anthropic/claude-haiku-4-5');
  t.equal(one.type, 'model');
});

async function openaiGateway(t: Parameters<typeof startGateway>[0], extra: Record<string, unknown> = {}) {
  const up = await scriptedUpstream(t);
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { openai: { type: 'openai', base_url: `${up.baseUrl}/v1`, ...extra } },
  });
  const openai = new OpenAI({ baseURL: `${gw.url}/openai/v1`, apiKey: 'sk-client-side', maxRetries: 2 });
  const anthropic = new Anthropic({ baseURL: `${gw.url}/anthropic`, apiKey: 'sk-ant-client-side', maxRetries: 0 });
  return { up, gw, openai, anthropic };
}

const COMPLETION = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop', logprobs: null }],
  usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
};

t.test('OpenAI client, OpenAI upstream: errors and headers keep their meaning', async (t) => {
  const { up, openai } = await openaiGateway(t);
  up.next({ status: 401, json: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } } });
  const denied = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  t.type(denied, OpenAI.AuthenticationError, '401 stays 401');
  t.equal((denied as InstanceType<typeof OpenAI.APIError>).code, 'invalid_api_key', 'the upstream\'s code');
  t.equal(up.received.length, 1, 'the SDK does not retry a 401 (it retried a 502 three times)');

  up.next({ status: 404, json: { error: { message: 'The model `gpt-9` does not exist', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } } });
  const missing = await openai.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  t.type(missing, OpenAI.NotFoundError, '404 stays 404');
  t.match(missing, { code: 'model_not_found', param: 'model', type: 'invalid_request_error' });
  t.match((missing as InstanceType<typeof OpenAI.APIError>).error, { heimdall_code: 'HEIMDALL_ERR_UPSTREAM_REJECTED' }, 'the gateway\'s code beside it');

  up.next({ status: 400, json: { error: { message: "Invalid 'messages[0].role'", type: 'invalid_request_error', param: 'messages[0].role', code: 'invalid_value' } } });
  const bad = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  t.type(bad, OpenAI.BadRequestError);
  t.match(bad, { param: 'messages[0].role', code: 'invalid_value' });

  up.next({
    json: COMPLETION,
    headers: { 'x-ratelimit-remaining-requests': '99', 'x-ratelimit-reset-tokens': '6ms', 'x-request-id': 'req_openai_1', 'openai-processing-ms': '42', 'openai-organization': 'org-secret' },
  });
  const { response } = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
  t.equal(response.headers.get('x-ratelimit-remaining-requests'), '99');
  t.equal(response.headers.get('x-ratelimit-reset-tokens'), '6ms');
  t.equal(response.headers.get('openai-processing-ms'), '42');
  t.equal(response.headers.get('x-upstream-request-id'), 'req_openai_1', 'the upstream\'s id beside the gateway\'s x-request-id');
  t.not(response.headers.get('x-request-id'), 'req_openai_1');
  t.equal(response.headers.get('openai-organization'), null, 'the operator\'s organisation stays private');
});

t.test('Anthropic client, OpenAI upstream: usage in streams, and fields OpenAI cannot take', async (t) => {
  const { up, anthropic } = await openaiGateway(t);
  const chunk = (delta: unknown, finish: string | null = null) => ({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta, finish_reason: finish }] });
  const events = [
    chunk({ role: 'assistant', content: '' }),
    chunk({ content: 'Hello' }),
    chunk({}, 'stop'),
    { id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 30, completion_tokens: 7, total_tokens: 37, prompt_tokens_details: { cached_tokens: 10 } } },
  ];
  up.next({ sse: `${events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('')}data: [DONE]\n\n` });
  const final = await anthropic.messages.stream({ model: 'openai/gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }).finalMessage();
  t.same(up.received[0]?.json.stream_options, { include_usage: true }, 'the OpenAI upstream is asked for usage');
  t.equal(final.usage.output_tokens, 7);
  t.equal(final.usage.input_tokens, 20, 'input tokens are not 0: prompt minus cached');
  t.equal(final.usage.cache_read_input_tokens, 10);

  const cached = {
    model: 'openai/gpt-4o-mini',
    max_tokens: 50,
    messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'hi', cache_control: { type: 'ephemeral' as const } }] }],
  };
  const refused = await anthropic.messages.create(cached).catch((e: unknown) => e);
  t.type(refused, Anthropic.BadRequestError, 'by default a field the upstream cannot express is refused');
  t.match((refused as InstanceType<typeof Anthropic.APIError>).message, /cache_control/);
  t.equal(up.received.length, 1, 'and nothing went upstream');
});

t.test('drop_unsupported: the field is left out and named in x-heimdall-dropped', async (t) => {
  const { up, gw } = await openaiGateway(t, { drop_unsupported: true });
  up.next({ json: COMPLETION });
  const res = await postJson(`${gw.url}/anthropic/v1/messages`, {
    model: 'openai/gpt-4o-mini',
    max_tokens: 50,
    top_k: 5,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'hi', cache_control: { type: 'ephemeral' } }] }],
  });
  t.equal(res.status, 200);
  t.equal(res.json.content[0].text, 'hi');
  const dropped = (res.headers.get('x-heimdall-dropped') ?? '').split(', ').sort();
  t.same(dropped, ['messages[*].content[*].cache_control', 'top_k'], 'one name per kind of field');
  t.notOk(JSON.stringify(up.received[0]?.json).includes('cache_control'), 'the upstream never saw it');
  t.equal(up.received[0]?.json.top_k, undefined);
});

t.test('an OpenAI client\'s own fields pass to an OpenAI upstream untouched', async (t) => {
  const { up, gw } = await openaiGateway(t);
  up.next({ json: COMPLETION });
  const body = {
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }],
    seed: 7,
    logprobs: true,
    top_logprobs: 2,
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' }, strict: true } },
    reasoning_effort: 'low',
    user: 'u-1',
    a_new_field: { kept: true },
  };
  const res = await postJson(`${gw.url}/openai/v1/chat/completions`, body);
  t.equal(res.status, 200);
  t.same(up.received[0]?.json, body);
});

t.test('plugins on the Anthropic route: a changed request or chunks take the translated path, which still carries everything', async (t) => {
  const { probePlugins, REPO } = await import('./helpers/fixtures.js');
  const path = await import('node:path');
  const probes = await probePlugins();
  const up = await scriptedUpstream(t);
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { anthropic: { type: 'anthropic', base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_FIDELITY_KEY' } },
    plugins: [
      { path: path.join(REPO, 'build', 'Release', 'transform'), config: { system_prompt: 'Be brief.', tag: 'v1' } },
      { path: probes.p1, config: {} },
    ],
  });
  const client = new Anthropic({ baseURL: `${gw.url}/anthropic`, apiKey: 'sk-ant-client-side', maxRetries: 0 });

  up.next({ json: MESSAGE });
  const message = await client.messages.create(RICH_REQUEST as unknown as Anthropic.MessageCreateParamsNonStreaming);
  const sent = up.received[0]?.json;
  t.same(sent, { ...RICH_REQUEST, system: [{ type: 'text', text: 'Be brief.' }, ...RICH_REQUEST.system] }, 'rebuilt from the canonical request: only the PreHook\'s change differs');
  t.same(message.content, MESSAGE.content.map((b) => (b.type === 'text' ? { type: 'text', text: b.text } : b)), 'thinking survives the translation back');
  t.equal(message.stop_reason, 'stop_sequence');
  t.equal(message.stop_sequence, 'END');
  t.match(message.usage, { input_tokens: 12, cache_creation_input_tokens: 900, cache_read_input_tokens: 3000, output_tokens: 20 });

  up.next({ sse: STREAM });
  const raw = await fetch(`${gw.url}/anthropic/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...RICH_REQUEST, stream: true }),
  });
  const text = await raw.text();
  t.not(text, STREAM, 'a StreamChunkHook ran: the events are the translation, not the upstream\'s');
  t.notOk(text.includes('a_future_event'));

  up.next({ sse: STREAM });
  const final = await client.messages.stream({ ...RICH_REQUEST, stream: true } as unknown as Anthropic.MessageStreamParams).finalMessage();
  t.same(final.content, MESSAGE.content.map((b) => (b.type === 'text' ? { type: 'text', text: b.text } : b)), 'thinking with its signature, streamed through the translation');
  t.equal(final.stop_reason, 'stop_sequence');
  t.match(final.usage, { input_tokens: 12, cache_creation_input_tokens: 900, cache_read_input_tokens: 3000, output_tokens: 20 });
});

t.test('OpenAI client, Anthropic upstream: structured output, usage, refused fields', async (t) => {
  const { up, client } = await anthropicGateway(t);
  const openai = new OpenAI({ baseURL: client.baseURL.replace(/\/anthropic$/, '/openai/v1'), apiKey: 'sk-client-side', maxRetries: 0 });
  const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
  up.next({
    json: {
      id: 'msg_2', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5',
      content: [{ type: 'tool_use', id: 'toolu_j', name: 'heimdall_json_output', input: { city: 'Oslo' } }],
      stop_reason: 'tool_use', stop_sequence: null,
      usage: { input_tokens: 10, cache_read_input_tokens: 5, cache_creation_input_tokens: 2, output_tokens: 3 },
    },
  });
  const completion = await openai.chat.completions.create({
    model: 'anthropic/claude-sonnet-4-5',
    messages: [{ role: 'user', content: 'Where?' }],
    response_format: { type: 'json_schema', json_schema: { name: 'place', schema, strict: true } },
  });
  const sent = up.received[0]?.json;
  t.match(sent.tools, [{ name: 'heimdall_json_output', input_schema: schema }], 'the schema goes upstream as a forced tool');
  t.same(sent.tool_choice, { type: 'tool', name: 'heimdall_json_output' });
  t.same(JSON.parse(completion.choices[0]?.message.content ?? ''), { city: 'Oslo' }, 'and comes back as the message text');
  t.equal(completion.choices[0]?.finish_reason, 'stop');
  t.match(completion.usage, { prompt_tokens: 17, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 5 } });

  const seeded = await openai.chat.completions.create({ model: 'anthropic/claude-sonnet-4-5', messages: [{ role: 'user', content: 'x' }], seed: 3 }).catch((e: unknown) => e);
  t.type(seeded, OpenAI.BadRequestError, 'a field Anthropic cannot express is refused...');
  t.match(seeded, { param: 'seed', code: 'HEIMDALL_ERR_FIELD_UNSUPPORTED' }, '...naming it');
  t.equal(up.received.length, 1, 'before anything went upstream');
});

t.test('Anthropic client, OpenAI upstream: a refusal is not an empty message', async (t) => {
  const { up, anthropic } = await openaiGateway(t);
  up.next({ json: { ...COMPLETION, choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: 'I can\'t help with that.' }, finish_reason: 'stop', logprobs: null }] } });
  const message = await anthropic.messages.create({ model: 'openai/gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'something bad' }] });
  t.same(message.content, [{ type: 'text', text: 'I can\'t help with that.' }]);
  t.equal(message.stop_reason, 'refusal');
});

t.test('the lossless path sends what the gateway checked: a key given twice counts once, as the last', async (t) => {
  const { up, gw } = await anthropicGateway(t, { models: ['claude-haiku'] });
  up.fallback = { json: MESSAGE };
  const twice = '{"model":"claude-opus","max_tokens":10,"messages":[{"role":"user","content":"claude-haiku"}],"model":"claude-haiku"}';
  const res = await postJson(`${gw.url}/anthropic/v1/messages`, twice);
  t.equal(res.status, 200);
  t.equal(up.received.length, 1);
  t.notOk(up.received[0]?.body.includes('claude-opus'), 'the model the allow-list refused never goes upstream');
  t.same(up.received[0]?.json, { model: 'claude-haiku', max_tokens: 10, messages: [{ role: 'user', content: 'claude-haiku' }] }, 'and the message text is untouched');

  const blocked = await postJson(`${gw.url}/anthropic/v1/messages`, '{"model":"claude-haiku","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"model":"claude-opus"}');
  t.equal(blocked.status, 404, 'the last one is the one checked');
});

t.test('an upstream cannot reach the client through relayed headers, odd statuses or a ping flood', async (t) => {
  const { up, gw } = await anthropicGateway(t);
  const key = process.env.HEIMDALL_TEST_FIDELITY_KEY as string;
  up.next({ json: MESSAGE, headers: { 'request-id': key, 'anthropic-ratelimit-requests-remaining': key.slice(4), 'anthropic-ratelimit-requests-limit': '50' } });
  const res = await postJson(`${gw.url}/anthropic/v1/messages`, { model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
  t.equal(res.status, 200);
  t.equal(res.headers.get('request-id'), null, 'a header that holds the key is not relayed');
  t.equal(res.headers.get('anthropic-ratelimit-requests-remaining'), null, 'nor one that holds a piece of it');
  t.equal(res.headers.get('anthropic-ratelimit-requests-limit'), '50');

  up.next({ status: 407, json: { type: 'error', error: { type: 'api_error', message: 'proxy' } } });
  const odd = await postJson(`${gw.url}/anthropic/v1/messages`, { model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
  t.equal(odd.status, 400, 'a 407 is not passed on: the client would blame its own proxy');

  const start = sse([['message_start', { type: 'message_start', message: { ...MESSAGE, content: [], stop_reason: null, usage: { input_tokens: 1, output_tokens: 0 } } }]]);
  const pings = sse(Array.from({ length: 5000 }, () => ['ping', { type: 'ping' }] as [string, unknown]));
  const end = sse([
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'ok' } }],
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 1 } }],
    ['message_stop', { type: 'message_stop' }],
  ]);
  up.next({ sse: start + pings + end });
  const streamed = await fetch(`${gw.url}/anthropic/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'claude-x', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
  });
  t.equal(await streamed.text(), start + pings + end, 'every ping is passed on, none held back');
});

t.test('count_tokens runs the TransportInterceptors: a plugin that refuses the request refuses the count', async (t) => {
  const { probePlugins } = await import('./helpers/fixtures.js');
  const probes = await probePlugins();
  const up = await scriptedUpstream(t);
  const refusal = JSON.stringify({ response: { status_code: 401, body: { type: 'error', error: { type: 'authentication_error', message: 'no key' } } } });
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { anthropic: { type: 'anthropic', base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_FIDELITY_KEY' } },
    plugins: [{ path: probes.p1, config: { transport_output: refusal } }],
  });
  const res = await postJson(`${gw.url}/anthropic/v1/messages/count_tokens`, { model: 'claude-x', messages: [{ role: 'user', content: 'hi' }] });
  t.equal(res.status, 401);
  t.equal(up.received.length, 0, 'nothing was counted upstream');
});

t.test('x-heimdall-dropped stays small however many fields were left out', async (t) => {
  const { up, gw } = await openaiGateway(t, { drop_unsupported: true });
  up.next({ json: COMPLETION });
  const messages = Array.from({ length: 3000 }, (_, i) => ({ role: 'user', content: [{ type: 'text', text: `m${i}`, cache_control: { type: 'ephemeral' } }] }));
  const fields = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`field_${i}`, i]));
  const res = await postJson(`${gw.url}/anthropic/v1/messages`, { model: 'openai/gpt-4o-mini', max_tokens: 10, messages, ...fields });
  t.equal(res.status, 200);
  const dropped = res.headers.get('x-heimdall-dropped') ?? '';
  t.ok(dropped.length <= 1100, `bounded (${dropped.length} characters)`);
  t.match(dropped, /^field_0, field_1, .*, and \d+ more$/, 'as many names as fit, then a count');
  t.notOk(JSON.stringify(up.received[0]?.json).includes('cache_control'));
});
