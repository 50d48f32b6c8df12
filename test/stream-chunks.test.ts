/**
 * A streamed chunk is parsed once, by the provider that read it, and travels on as its text (what the client is
 * sent) and its parsed value (what the gateway reads): the assembler behind PostHook, the drop-in Anthropic route's
 * event writer and the token metrics take the value. Checked without any timing: by counting JSON.parse calls on
 * chunk text through a real gateway, and by handing the readers values that are frozen next to text that is not
 * JSON at all.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Cancellation } from '../src/cancel.js';
import { parseConfig } from '../src/config/load.js';
import { InstrumentedProvider, type Usage } from '../src/metrics/instrumented-provider.js';
import { Payload } from '../src/payload.js';
import { responseToChunks, StreamAssembler } from '../src/pipeline/stream-shapes.js';
import type { JsonObject } from '../src/plugins/plugin.js';
import { EventWriter } from '../src/providers/anthropic/inbound.js';
import type { ChatCall, Provider, StreamChunk } from '../src/providers/provider.js';
import { ProviderRegistry } from '../src/providers/registry.js';
import { startFakeProvider, WEATHER_ARGS, type Wire } from './helpers/fake-providers.js';
import { probePlugins } from './helpers/fixtures.js';
import { chat, sseData, startGateway } from './helpers/gateway.js';

const probes = await probePlugins();

/** A value no reader may change: freezing it makes any write throw (test files are ES modules: strict mode). */
function frozen<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) frozen(v);
    Object.freeze(value);
  }
  return value;
}

/** A chunk whose text can't be parsed: a reader that still parses the text instead of reading the value fails. */
function valueOnly(value: JsonObject): StreamChunk {
  return { text: 'not JSON: read the value', value: frozen(value) };
}

const chunk = (delta: JsonObject, finish: string | null = null, extra: JsonObject = {}): JsonObject => ({
  id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 7, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }], ...extra,
});

/** Runs `fn` while counting the JSON.parse calls made on chat.completion.chunk text, by anyone in this process. */
async function countChunkParses(fn: () => Promise<void>): Promise<number> {
  const original = JSON.parse;
  let parses = 0;
  JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
    if (typeof text === 'string' && text.includes('"chat.completion.chunk"')) parses += 1;
    return original(text, reviver);
  }) as typeof JSON.parse;
  try {
    await fn();
  } finally {
    JSON.parse = original;
  }
  return parses;
}

/** POST JSON and read the answer as text only (parsing it here would count as a parse of chunk text). */
async function postText(url: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

function anthropicEvents(text: string): { event: string; data: any }[] {
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((e) => {
      const [event, data] = e.split('\n');
      return { event: (event ?? '').replace('event: ', ''), data: JSON.parse((data ?? '').replace('data: ', '')) };
    });
}

const call = (model: string, content = 'hello there'): ChatCall => ({
  model,
  request: Payload.fromValue({ model: `p/${model}`, stream: true, messages: [{ role: 'user', content }] }),
  unchanged: false,
  signal: new Cancellation(),
});

async function collect(chunks: AsyncIterable<StreamChunk>): Promise<StreamChunk[]> {
  const out: StreamChunk[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

t.test('StreamAssembler assembles the response from the chunks\' values, changing none of them', async (t) => {
  const values = [
    chunk({ role: 'assistant', content: '' }),
    chunk({ content: 'Hello ' }),
    { ...chunk({ content: 'there' }), choices: [{ index: 0, delta: { content: 'there' }, finish_reason: null }, { index: 1, delta: { role: 'assistant', content: 'Other' }, finish_reason: null }] },
    chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_', arguments: '{"city":' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { name: 'weather', arguments: '"Paris"}' } }] }),
    { ...chunk({}, 'tool_calls'), choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }, { index: 1, delta: {}, finish_reason: 'stop' }] },
    { ...chunk({}, null, { usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } }), choices: [] },
  ].map((v) => frozen(v as JsonObject));
  const assembler = new StreamAssembler();
  const parses = await countChunkParses(async () => {
    for (const v of values) assembler.add(v);
  });
  t.equal(parses, 0, 'no chunk is parsed');
  t.same(assembler.response(), {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 7,
    model: 'm',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'Hello there', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        finish_reason: 'tool_calls',
      },
      { index: 1, message: { role: 'assistant', content: 'Other' }, finish_reason: 'stop' },
    ],
    usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 },
  });
});

t.test('responseToChunks: each chunk\'s text is its value serialised, and the chunks assemble back to the response', async (t) => {
  const response: JsonObject = {
    id: 'c1',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: 'cached words' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
  };
  const chunks = responseToChunks(response);
  t.equal(chunks.length, 3, 'role and content, finish, usage');
  for (const c of chunks) t.equal(c.text, JSON.stringify(c.value));
  const assembler = new StreamAssembler();
  for (const c of chunks) assembler.add(c.value);
  t.same(assembler.response(), response);
});

t.test('the Anthropic route\'s EventWriter turns chunk values into events without parsing', async (t) => {
  const writer = new EventWriter('claude-x');
  const frames = [
    chunk({ role: 'assistant', content: '' }),
    chunk({ content: 'Let me ' }),
    chunk({ content: 'check.' }),
    chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":"Paris"}' } }] }),
    chunk({}, 'tool_calls', { usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } }),
  ].flatMap((v) => writer.chunk(frozen(v)));
  frames.push(...writer.end());
  t.same(frames.map((f) => f.event), [
    'message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop',
    'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop',
  ]);
  t.match(frames[0]?.data, { message: { id: 'msg_chatcmpl-1', model: 'm' } });
  t.same(frames[5]?.data, { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'call_1', name: 'get_weather', input: {} } });
  t.same(frames[6]?.data.delta, { type: 'input_json_delta', partial_json: '{"city":"Paris"}' });
  t.same(frames[8]?.data, { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { input_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 4 } });
});

t.test('the token metrics read a stream\'s usage from the chunks\' values', async (t) => {
  const chunks = [
    valueOnly(chunk({ role: 'assistant', content: '' }, null, { usage: null })),
    valueOnly(chunk({ content: 'hi' }, null, { usage: null })),
    valueOnly(chunk({}, 'stop', { usage: null })),
    valueOnly({ ...chunk({}), choices: [], usage: { prompt_tokens: 11, completion_tokens: 2, total_tokens: 13 } }),
  ];
  const inner: Provider = {
    name: 'fake',
    models: undefined,
    chat: () => Promise.reject(new Error('not here')),
    embeddings: () => Promise.reject(new Error('not here')),
    stream: async () => (async function* () {
      yield* chunks;
    })(),
    close: async () => {},
  };
  const tokens: Usage[] = [];
  const calls: boolean[] = [];
  const provider = new InstrumentedProvider(inner, { upstreamCall: (_p, _m, _ms, ok) => calls.push(ok), tokens: (_p, _m, usage) => tokens.push(usage) });
  const relayed = await collect(await provider.stream(call('m')));
  t.equal(relayed.length, chunks.length);
  t.ok(relayed.every((c, i) => c === chunks[i]), 'the chunks are handed on as they are');
  t.same(calls, [true]);
  t.same(tokens, [{ input: 11, output: 2 }], 'the usage of the chunk that has one, not the nulls');
});

t.test('providers yield each chunk as text and the value it parses to; OpenAI\'s text is the upstream\'s own', async (t) => {
  const wires: Wire[] = ['openai', 'anthropic', 'gemini'];
  const ups = Object.fromEntries(await Promise.all(wires.map(async (w) => [w, await startFakeProvider(t, w)] as const)));
  const config = parseConfig({
    providers: {
      openai: { base_url: ups.openai?.baseUrl },
      anthropic: { base_url: ups.anthropic?.baseUrl },
      gemini: { base_url: ups.gemini?.baseUrl },
      mock: { type: 'mock' },
    },
  });
  const registry = new ProviderRegistry(config.providers);
  t.teardown(() => registry.close());
  for (const name of [...wires, 'mock']) {
    for (const model of ['chat-model', 'tool']) {
      const { provider } = registry.resolve(`${name}/${model}`);
      const chunks = await collect(await provider.stream(call(model, 'one two three')));
      t.ok(chunks.length >= 2, `${name}/${model}: chunks`);
      for (const c of chunks) t.same(c.value, JSON.parse(c.text), `${name}/${model}: the value is what the text says`);
      const assembler = new StreamAssembler();
      for (const c of chunks) assembler.add(c.value);
      const message = (assembler.response().choices as any)[0].message;
      if (name === 'mock') t.equal(message.content, `Mock reply from ${model}. You said: one two three`);
      else if (model === 'tool') t.same(JSON.parse(message.tool_calls[0].function.arguments), WEATHER_ARGS, `${name}: the tool call`);
      else t.equal(message.content, 'upstream says: one two three', `${name}: the text`);
    }
  }
  const upstreamData = await fetchOpenAIStream(ups.openai?.baseUrl ?? '');
  const { provider } = registry.resolve('openai/chat-model');
  const texts = (await collect(await provider.stream(call('chat-model', 'one two three')))).map((c) => c.text);
  t.same(texts, upstreamData.slice(0, -1), 'the client gets the upstream\'s bytes, not a re-serialisation');
});

/** The fake OpenAI upstream's own `data` texts for the same request. */
async function fetchOpenAIStream(baseUrl: string): Promise<string[]> {
  const res = await fetch(`${baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'chat-model', stream: true, messages: [{ role: 'user', content: 'one two three' }] }),
  });
  return sseData(await res.text());
}

t.test('an OpenAI-compatible chunk that is JSON but not an object ends the stream with an upstream error', async (t) => {
  const first = JSON.stringify(chunk({ role: 'assistant', content: '' }));
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(`data: ${first}\n\ndata: [1, 2]\n\ndata: [DONE]\n\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { openai: { base_url: `http://127.0.0.1:${port}/v1` } } });
  const res = await postText(`${gw.url}/v1/chat/completions`, chat('openai/m', 'x', { stream: true }));
  t.equal(res.status, 200, 'the stream had started');
  const data = sseData(res.text);
  t.equal(data[0], first, 'the first chunk was delivered as received');
  t.match(JSON.parse(data.at(-1) ?? '{}').error, { code: 'HEIMDALL_ERR_UPSTREAM_BAD_RESPONSE', message: /not a JSON object: \[1, 2\]/ });
});

t.test('through a gateway with a PostHook plugin, each chunk is parsed once (by the provider), on both routes', async (t) => {
  const up = await startFakeProvider(t, 'openai');
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { openai: { base_url: up.baseUrl }, mock: { type: 'mock' } },
    // A probe has every hook: a StreamChunkHook that lets each chunk through, and a PostHook (so chunks are assembled).
    plugins: [{ path: probes.p1, config: {} }],
  });
  const request = (model: string) => chat(model, 'count my parses please', { stream: true });
  const anthropicRequest = (model: string) => ({ model, max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'count my parses please' }] });

  let openai = { status: 0, text: '' };
  const openaiParses = await countChunkParses(async () => {
    openai = await postText(`${gw.url}/v1/chat/completions`, request('openai/gpt-x'));
  });
  const upstreamChunks = sseData(openai.text).length - 1; // all but [DONE]
  t.equal(openai.status, 200);
  t.ok(upstreamChunks > 3, 'several chunks');
  t.equal(openaiParses, upstreamChunks, 'one parse per chunk: the provider\'s (the assembler reads the value)');
  const openaiData = sseData(openai.text);
  t.equal(openaiData.at(-1), '[DONE]');
  t.equal(openaiData.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta.content ?? '').join(''), 'upstream says: count my parses please');

  let anthropic = { status: 0, text: '' };
  const anthropicParses = await countChunkParses(async () => {
    anthropic = await postText(`${gw.url}/anthropic/v1/messages`, anthropicRequest('openai/gpt-x'));
  });
  t.equal(anthropic.status, 200);
  t.equal(anthropicParses, upstreamChunks, 'one parse per chunk on the Anthropic route too (its writer reads the value)');
  const events = anthropicEvents(anthropic.text);
  t.same([...new Set(events.map((e) => e.event))], ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  t.equal(events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join(''), 'upstream says: count my parses please');
  t.same(events.find((e) => e.event === 'message_delta')?.data.delta, { stop_reason: 'end_turn', stop_sequence: null });

  // The mock builds its chunks as values: nothing parses them at all, usage metrics included.
  const mockParses = await countChunkParses(async () => {
    const a = await postText(`${gw.url}/v1/chat/completions`, request('mock/echo'));
    const b = await postText(`${gw.url}/anthropic/v1/messages`, anthropicRequest('mock/echo'));
    t.equal(a.status, 200);
    t.equal(b.status, 200);
  });
  t.equal(mockParses, 0, 'chunks the gateway built are never parsed');
});

t.test('a StreamChunkHook\'s replacement reaches the PostHook and the Anthropic route as its value', async (t) => {
  const replaced = { id: 'x', object: 'chat.completion.chunk', created: 1, model: 'echo', choices: [{ index: 0, delta: { content: 'ZAP ' }, finish_reason: null }] };
  const trace = path.join(mkdtempSync(path.join(tmpdir(), 'heimdall-trace-')), 'trace.jsonl');
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { anthropic: { type: 'mock' } },
    plugins: [{ path: probes.p1, config: { trace, chunk_output: JSON.stringify({ chunk: replaced }) } }],
  });
  const res = await postText(`${gw.url}/anthropic/v1/messages`, { model: 'claude-x', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'a b c' }] });
  t.equal(res.status, 200);
  const deltas = anthropicEvents(res.text).filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text);
  t.ok(deltas.length > 2);
  t.ok(deltas.every((d) => d === 'ZAP '), 'every chunk as the plugin replaced it');
  t.equal(anthropicEvents(res.text)[0]?.data.message.id, 'msg_x', 'read from the replacement\'s value');
  // The PostHook runs just after the client has read the end of the stream.
  let post: any;
  for (let i = 0; i < 100 && post === undefined; i++) {
    post = readFileSync(trace, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.hook === 'post');
    if (post === undefined) await new Promise((r) => setTimeout(r, 10));
  }
  t.equal(post?.response.choices[0].message.content, 'ZAP '.repeat(deltas.length), 'the PostHook saw the replacements assembled');
  t.equal(post?.response.id, 'x');
});

t.test('the assembler keeps a stream\'s canonical extensions: thinking with signatures, refusals, the stop\'s details', async (t) => {
  const { StreamAssembler, responseToChunks } = await import('../src/pipeline/stream-shapes.js');
  const base = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm' };
  const assembler = new StreamAssembler();
  for (const choice of [
    { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null },
    { index: 0, delta: { reasoning_content: 'Let me ' }, finish_reason: null },
    { index: 0, delta: { reasoning_content: 'think.' }, finish_reason: null },
    { index: 0, delta: { thinking_blocks: [{ type: 'thinking', signature: 'sig==' }] }, finish_reason: null },
    { index: 0, delta: { thinking_blocks: [{ type: 'redacted_thinking', data: 'opaque' }] }, finish_reason: null },
    { index: 0, delta: { content: 'Done.' }, finish_reason: null },
    { index: 0, delta: { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' }, extra_content: { google: { thought_signature: 'ts' } } }] }, finish_reason: null },
    { index: 0, delta: {}, finish_reason: 'stop', stop_sequence: 'END' },
  ]) assembler.add({ ...base, choices: [choice] });
  const response = assembler.response();
  const message = {
    role: 'assistant',
    content: 'Done.',
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' }, extra_content: { google: { thought_signature: 'ts' } } }],
    reasoning_content: 'Let me think.',
    thinking_blocks: [{ type: 'thinking', thinking: 'Let me think.', signature: 'sig==' }, { type: 'redacted_thinking', data: 'opaque' }],
  };
  t.same(response.choices, [{ index: 0, message, finish_reason: 'stop', stop_sequence: 'END' }]);

  const again = new StreamAssembler();
  for (const c of responseToChunks(response)) again.add(c.value);
  t.same(again.response().choices, response.choices, 'a response split into chunks assembles back to itself');
});
