/**
 * The Anthropic translations, field by field: a Messages request through the canonical form and back comes out as
 * it went in; every OpenAI request field is translated, passed or left out (never dropped quietly); answers and
 * streams carry thinking, stop sequences, refusals and cache usage both ways.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { HeimdallError } from '../src/errors.js';
import type { JsonObject } from '../src/plugins/plugin.js';
import { leaveOut as leaveOutPolicy } from '../src/providers/canonical.js';
import { newUpstreamMeta } from '../src/providers/provider.js';
import { EventWriter, toCanonical, toMessage, type SseFrame } from '../src/providers/anthropic/inbound.js';
import { toMessagesRequest } from '../src/providers/anthropic/request.js';
import { fromMessage, StreamTranslator } from '../src/providers/anthropic/response.js';
import { message, messagesRequest, streamEvent, JSON_OUTPUT_TOOL } from '../src/providers/anthropic/wire.js';
import { postJson, sseData, startGateway } from './helpers/gateway.js';

process.env.HEIMDALL_TEST_ANTHROPIC_KEY = 'sk-ant-test';
t.teardown(() => delete process.env.HEIMDALL_TEST_ANTHROPIC_KEY);

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAAABJRU5ErkJggg==';
const PDF = 'JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcjw8L1Jvb3QgMSAwIFI+PgolJUVPRgo=';
const CACHE = { type: 'ephemeral' } as const;
const CACHE_1H = { type: 'ephemeral', ttl: '1h' } as const;

/** Records what a translation leaves out instead of refusing it. */
function recorder() {
  const left: string[] = [];
  return { left, leaveOut: (field: string) => void left.push(field) };
}

function translate(request: JsonObject, extra: { stream?: boolean } = {}) {
  const r = recorder();
  const out = toMessagesRequest(request, 'claude-up', { defaultMaxTokens: 1000, stream: extra.stream ?? false, provider: 'anthropic', leaveOut: r.leaveOut });
  return { out, left: r.left };
}

const richRequest = {
  model: 'claude-sonnet-4-5',
  max_tokens: 4096,
  stream: true,
  system: [
    { type: 'text', text: 'You are a careful analyst.' },
    { type: 'text', text: 'Here is the long reference manual...', cache_control: CACHE_1H },
  ],
  thinking: { type: 'enabled', budget_tokens: 2048 },
  messages: [
    { role: 'user', content: 'Plain string turn.' },
    {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'Let me think about the weather.', signature: 'sig-abc' },
        { type: 'redacted_thinking', data: 'opaque-redacted' },
        { type: 'text', text: 'I will look it up.' },
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Rome' }, cache_control: CACHE },
      ],
    },
    {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'Sunny, 18C' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }] },
        { type: 'tool_result', tool_use_id: 'toolu_2', content: 'service down', is_error: true, cache_control: CACHE },
        { type: 'text', text: 'Also read these.', cache_control: CACHE },
        { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' }, cache_control: CACHE },
        { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF }, title: 'report.pdf', cache_control: CACHE },
        { type: 'document', source: { type: 'url', url: 'https://example.com/paper.pdf' }, citations: { enabled: true }, context: 'a paper' },
        { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'plain words' }, title: 'notes' },
      ],
    },
    { role: 'assistant', content: [{ type: 'text', text: 'Noted.' }] },
    { role: 'user', content: [{ type: 'text', text: 'Summarise.' }] },
  ],
  tools: [
    { name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } } }, cache_control: CACHE },
    { type: 'web_search_20250305', name: 'web_search', max_uses: 3 },
  ],
  tool_choice: { type: 'auto', disable_parallel_tool_use: true },
  stop_sequences: ['END', '###'],
  metadata: { user_id: 'user-42' },
  top_k: 40,
  temperature: 1,
  service_tier: 'standard_only',
  fallbacks: ['openai/gpt-4o'],
};

t.test('a Messages request through the canonical form and back is the same request', async (t) => {
  const parsed = messagesRequest.parse(richRequest);
  const canonical = toCanonical(parsed);
  const { out, left } = translate(canonical);
  const { model: _m, stream: _s, fallbacks: _f, ...expected } = richRequest;
  t.same(out, { ...expected, model: 'claude-up' });
  t.same(left, [], 'nothing left out');
  t.equal(JSON.stringify(out).includes('fallbacks'), false, 'the gateway\'s own field does not go upstream');
  t.same(translate(canonical, { stream: true }).out.stream, true);

  t.test('the canonical form carries the extensions plugins see', async (t) => {
    const messages = canonical.messages as JsonObject[];
    t.same(messages[0], { role: 'system', content: [{ type: 'text', text: 'You are a careful analyst.' }, { type: 'text', text: 'Here is the long reference manual...', cache_control: CACHE_1H }] });
    t.match(messages[2], {
      role: 'assistant',
      content: [{ type: 'text', text: 'I will look it up.' }],
      reasoning_content: 'Let me think about the weather.',
      thinking_blocks: [{ type: 'thinking', thinking: 'Let me think about the weather.', signature: 'sig-abc' }, { type: 'redacted_thinking', data: 'opaque-redacted' }],
      tool_calls: [{ id: 'toolu_1', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }, { id: 'toolu_2', cache_control: CACHE }],
    });
    t.same(messages[3], { role: 'tool', tool_call_id: 'toolu_1', content: [{ type: 'text', text: 'Sunny, 18C' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] });
    t.same(messages[4], { role: 'tool', tool_call_id: 'toolu_2', content: 'service down', is_error: true, cache_control: CACHE });
    const user = messages[5]?.content as JsonObject[];
    t.same(user[2], { type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}`, filename: 'report.pdf' }, cache_control: CACHE }, 'a plain PDF is OpenAI\'s own file part');
    t.same(user[3], {
      type: 'file',
      file: {},
      anthropic_document: { type: 'document', source: { type: 'url', url: 'https://example.com/paper.pdf' }, citations: { enabled: true }, context: 'a paper' },
    });
    t.match(user[4], { file: { file_data: `data:text/plain;base64,${Buffer.from('plain words').toString('base64')}`, filename: 'notes' } });
    t.match(canonical, {
      user: 'user-42', stop: ['END', '###'], tool_choice: 'auto', parallel_tool_calls: false, top_k: 40, service_tier: 'standard_only',
      thinking: { type: 'enabled', budget_tokens: 2048 }, max_tokens: 4096, stream: true,
    });
    t.same((canonical.tools as JsonObject[])[0], {
      type: 'function',
      function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
      cache_control: CACHE,
    });
    t.same((canonical.tools as JsonObject[])[1], { type: 'web_search_20250305', name: 'web_search', max_uses: 3 }, 'a server tool as Anthropic wrote it');
  });

  t.test('smaller shapes survive too', async (t) => {
    const cases = [
      { model: 'm', max_tokens: 5, system: 'one string', messages: [{ role: 'user', content: 'hi' }] },
      { model: 'm', max_tokens: 5, system: [{ type: 'text', text: 'a block' }], messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] },
      { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: [{ type: 'thinking', thinking: 't', signature: 's' }, { type: 'tool_use', id: 'a', name: 'f', input: {} }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'a' }] }] },
      { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'x' }], tool_choice: { type: 'any', disable_parallel_tool_use: false }, tools: [{ name: 'f', input_schema: { type: 'object' } }] },
      { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'x' }], tool_choice: { type: 'tool', name: 'f' }, tools: [{ name: 'f', input_schema: { type: 'object' }, strict: true }] },
      { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'x' }], tool_choice: { type: 'none' }, thinking: { type: 'disabled' }, metadata: { user_id: null } },
      { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'search_result', source: 'https://x', title: 'X', content: [{ type: 'text', text: 'found' }] }] }], container: 'ctr_1' },
    ];
    for (const req of cases) {
      const { model: _m, ...expected } = req;
      t.same(translate(toCanonical(messagesRequest.parse(req))).out, { ...expected, model: 'claude-up' }, JSON.stringify(req).slice(0, 80));
    }
  });
});

t.test('the Messages schema takes what Anthropic takes and refuses what it refuses', async (t) => {
  t.ok(messagesRequest.safeParse(richRequest).success);
  const base = { model: 'm', max_tokens: 5 };
  const bad: [string, unknown][] = [
    ['a text block without text', { ...base, messages: [{ role: 'user', content: [{ type: 'text' }] }] }],
    ['an image without a source', { ...base, messages: [{ role: 'user', content: [{ type: 'image' }] }] }],
    ['a document without a source', { ...base, messages: [{ role: 'user', content: [{ type: 'document', title: 'x' }] }] }],
    ['a thinking block without its signature', { ...base, messages: [{ role: 'assistant', content: [{ type: 'thinking', thinking: 'x' }] }] }],
    ['a tool with neither schema nor type', { ...base, messages: [{ role: 'user', content: 'x' }], tools: [{ name: 'f' }] }],
    ['enabled thinking without a budget', { ...base, messages: [{ role: 'user', content: 'x' }], thinking: { type: 'enabled' } }],
    ['a bad cache_control', { ...base, messages: [{ role: 'user', content: [{ type: 'text', text: 'x', cache_control: { type: 'forever' } }] }] }],
  ];
  for (const [what, req] of bad) t.notOk(messagesRequest.safeParse(req).success, what);
  const userThinking = messagesRequest.parse({ ...base, messages: [{ role: 'user', content: [{ type: 'thinking', thinking: 'x', signature: 's' }] }] });
  t.throws(() => toCanonical(userThinking), { code: 'HEIMDALL_ERR_BAD_REQUEST', message: /messages\[0\]\.content\[0\]: a thinking block can't be sent by a user/ });
});

t.test('OpenAI request fields to an Anthropic upstream: translated, passed, or left out', async (t) => {
  const msgs = [{ role: 'user', content: 'hi' }];

  t.test('translated', async (t) => {
    const { out, left } = translate({
      model: 'anthropic/claude', messages: msgs, max_completion_tokens: 3000, max_tokens: 200, temperature: 0.3, top_p: 0.8, stop: 'END',
      safety_identifier: 'safe-1', reasoning_effort: 'low', service_tier: 'default', stream_options: { include_usage: true },
      n: 1, presence_penalty: 0, frequency_penalty: 0, logprobs: false, logit_bias: {}, store: false, modalities: ['text'], seed: null,
    });
    t.same(left, [], 'defaults and nulls ask for nothing');
    t.same(out, {
      model: 'claude-up', max_tokens: 3000, messages: [{ role: 'user', content: 'hi' }], temperature: 0.3, top_p: 0.8, stop_sequences: ['END'],
      metadata: { user_id: 'safe-1' }, service_tier: 'standard_only', thinking: { type: 'enabled', budget_tokens: 2048 },
    });
    t.same(translate({ messages: msgs, user: 'u-1' }).out.metadata, { user_id: 'u-1' });
    t.same(translate({ messages: msgs, reasoning_effort: 'high' }).out, {
      model: 'claude-up', max_tokens: 24576 + 1000, messages: msgs, thinking: { type: 'enabled', budget_tokens: 24576 },
    }, 'the default max_tokens grows to hold the budget');
    t.same(translate({ messages: msgs, reasoning_effort: 'high', max_tokens: 5000 }).out.thinking, { type: 'enabled', budget_tokens: 4999 }, 'the client\'s max_tokens is kept');
    t.equal(translate({ messages: msgs, reasoning_effort: 'none' }).out.thinking, undefined);
    t.same(translate({ messages: msgs, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }], parallel_tool_calls: false }).out.tool_choice, { type: 'auto', disable_parallel_tool_use: true });
  });

  t.test('response_format becomes a forced tool, and its input the answer', async (t) => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] };
    const { out, left } = translate({ messages: msgs, response_format: { type: 'json_schema', json_schema: { name: 'reply', description: 'the reply', schema, strict: true } } });
    t.same(left, []);
    t.same(out.tools, [{ name: JSON_OUTPUT_TOOL, description: 'Give the answer as this tool\'s input (reply: the reply).', input_schema: schema }]);
    t.same(out.tool_choice, { type: 'tool', name: JSON_OUTPUT_TOOL });
    t.same(translate({ messages: msgs, response_format: { type: 'json_object' } }).out.tools, [{ name: JSON_OUTPUT_TOOL, description: 'Give the answer as this tool\'s input.', input_schema: { type: 'object' } }]);
    t.equal(translate({ messages: msgs, response_format: { type: 'text' } }).out.tools, undefined);
    const withTools = translate({ messages: msgs, response_format: { type: 'json_object' }, tools: [{ type: 'function', function: { name: 'f' } }] });
    t.same(withTools.left, ['response_format']);
    t.same(withTools.out.tools, [{ name: 'f', input_schema: { type: 'object', properties: {} } }]);
    t.same(translate({ messages: msgs, response_format: { type: 'json_object' }, reasoning_effort: 'low' }).left, ['response_format']);

    const answer = fromMessage(message.parse({
      id: 'msg_1', model: 'claude', stop_reason: 'tool_use', stop_sequence: null, usage: { input_tokens: 1, output_tokens: 2 },
      content: [{ type: 'tool_use', id: 'toolu_x', name: JSON_OUTPUT_TOOL, input: { answer: 'yes' } }],
    }));
    t.same((answer.choices as JsonObject[])[0], { index: 0, message: { role: 'assistant', content: '{"answer":"yes"}' }, finish_reason: 'stop', logprobs: null });

    const translator = new StreamTranslator('anthropic', (s) => s);
    const chunks = [
      { type: 'message_start', message: { id: 'msg_1', model: 'claude', usage: { input_tokens: 1, output_tokens: 1 } } },
      { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_x', name: JSON_OUTPUT_TOOL, input: {} } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"answer":' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '"yes"}' } },
      { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 5 } },
    ].flatMap((e) => translator.translate(streamEvent.parse(e)).map((c) => c.value));
    t.equal(chunks.map((c: any) => c.choices[0]?.delta.content ?? '').join(''), '{"answer":"yes"}');
    t.equal(chunks.some((c: any) => c.choices[0]?.delta.tool_calls !== undefined), false);
    t.equal((chunks.at(-1) as any).choices[0].finish_reason, 'stop');
  });

  t.test('left out: each field named, never dropped quietly', async (t) => {
    const fields: [string, JsonObject][] = [
      ['n', { n: 2 }],
      ['presence_penalty', { presence_penalty: 0.5 }],
      ['frequency_penalty', { frequency_penalty: 0.5 }],
      ['logit_bias', { logit_bias: { 50256: -100 } }],
      ['logprobs', { logprobs: true }],
      ['top_logprobs', { top_logprobs: 3 }],
      ['seed', { seed: 7 }],
      ['store', { store: true }],
      ['modalities', { modalities: ['text', 'audio'] }],
      ['audio', { audio: { voice: 'alloy', format: 'wav' } }],
      ['prediction', { prediction: { type: 'content', content: 'x' } }],
      ['web_search_options', { web_search_options: {} }],
      ['verbosity', { verbosity: 'low' }],
      ['prompt_cache_key', { prompt_cache_key: 'k' }],
      ['functions', { functions: [{ name: 'f' }] }],
      ['function_call', { function_call: 'auto' }],
      ['service_tier', { service_tier: 'flex' }],
      ['metadata', { metadata: { team: 'a' } }],
      ['reasoning_effort', { reasoning_effort: 'low', thinking: { type: 'enabled', budget_tokens: 1024 } }],
      ['reasoning_effort', { reasoning_effort: 'low', max_tokens: 1000 }],
      ['user', { user: 'a', metadata: { user_id: 'b' } }],
      ['tools[0]', { tools: [{ type: 'custom', custom: { name: 'free' } }] }],
      ['messages[0].name', { messages: [{ role: 'user', name: 'bob', content: 'hi' }] }],
      ['messages[0].content[0]', { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'x', format: 'wav' } }] }] }],
      ['messages[0].content[0].file.file_id', { messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'file-1' } }] }] }],
      ['messages[0].content[0].image_url.detail', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'high' } }] }] }],
      ['messages[1].reasoning_content', { messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a', reasoning_content: 'unsigned thoughts' }] }],
      ['messages[1].audio', { messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a', audio: { id: 'au_1' } }] }],
    ];
    for (const [field, extra] of fields) t.same(translate({ messages: msgs, ...extra }).left, [field], field);

    // The provider's policy: a 400 naming the field, or with drop_unsupported, listed for x-heimdall-dropped.
    const refuse = leaveOutPolicy('anthropic', false, undefined);
    const err = t.throws(() => toMessagesRequest({ messages: msgs, seed: 1 }, 'c', { defaultMaxTokens: 10, stream: false, provider: 'anthropic', leaveOut: refuse })) as HeimdallError;
    t.equal(err.code, 'HEIMDALL_ERR_FIELD_UNSUPPORTED');
    t.equal(err.param, 'seed');
    const meta = newUpstreamMeta();
    const dropped = toMessagesRequest({ messages: msgs, seed: 1, logprobs: true }, 'c', { defaultMaxTokens: 10, stream: false, provider: 'anthropic', leaveOut: leaveOutPolicy('anthropic', true, meta) });
    t.same(meta.dropped, ['logprobs', 'seed']);
    t.equal(dropped.seed, undefined);
  });

  t.test('passed: Anthropic fields and parts travel as they are; gateway fields stay home', async (t) => {
    const { out, left } = translate({ messages: msgs, top_k: 5, container: 'ctr_1', mcp_servers: [{ type: 'url', url: 'https://mcp', name: 'm' }], fallbacks: ['x/y'], stream_options: { include_usage: true } });
    t.same(left, []);
    t.same(out, { model: 'claude-up', max_tokens: 1000, messages: msgs, top_k: 5, container: 'ctr_1', mcp_servers: [{ type: 'url', url: 'https://mcp', name: 'm' }] });
  });

  t.test('messages: system parts, merged turns, tool results with images, refusals, files', async (t) => {
    const { out, left } = translate({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Cached rules.', cache_control: CACHE }] },
        { role: 'user', content: [{ type: 'text', text: 'Read this' }, { type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}`, filename: 'a.pdf' } }] },
        { role: 'assistant', content: '', refusal: 'I can\'t help with that.' },
        { role: 'user', content: 'please' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'shot', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: 'here' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }], is_error: false },
        { role: 'user', content: 'thanks' },
      ],
    });
    t.same(left, []);
    t.same(out.system, [{ type: 'text', text: 'Be brief.' }, { type: 'text', text: 'Cached rules.', cache_control: CACHE }], 'a system with parts is blocks');
    t.same(out.messages, [
      { role: 'user', content: [{ type: 'text', text: 'Read this' }, { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF }, title: 'a.pdf' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'I can\'t help with that.' }] },
      { role: 'user', content: 'please' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'c1', name: 'shot', input: {} }] },
      { role: 'user', content: [
        { type: 'tool_result', tool_use_id: 'c1', content: [{ type: 'text', text: 'here' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }], is_error: false },
        { type: 'text', text: 'thanks' },
      ] },
    ]);
  });
});

t.test('an Anthropic answer as a chat.completion: thinking, stop sequence, cache usage', async (t) => {
  const answer = fromMessage(message.parse({
    id: 'msg_1', type: 'message', role: 'assistant', model: 'claude',
    content: [
      { type: 'thinking', thinking: 'Hmm. ', signature: 'sig1' },
      { type: 'redacted_thinking', data: 'xyz' },
      { type: 'thinking', thinking: 'Done.', signature: 'sig2' },
      { type: 'text', text: 'The answer' },
      { type: 'tool_use', id: 'toolu_1', name: 'f', input: { a: 1 } },
    ],
    stop_reason: 'stop_sequence', stop_sequence: '###',
    usage: { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 100, cache_creation_input_tokens: 20 },
  }));
  t.same((answer.choices as JsonObject[])[0], {
    index: 0,
    message: {
      role: 'assistant', content: 'The answer', reasoning_content: 'Hmm. Done.',
      thinking_blocks: [{ type: 'thinking', thinking: 'Hmm. ', signature: 'sig1' }, { type: 'redacted_thinking', data: 'xyz' }, { type: 'thinking', thinking: 'Done.', signature: 'sig2' }],
      tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
    },
    finish_reason: 'stop', stop_sequence: '###', logprobs: null,
  });
  t.same(answer.usage, { prompt_tokens: 130, completion_tokens: 5, total_tokens: 135, prompt_tokens_details: { cached_tokens: 100, cache_creation_tokens: 20 } });

  const reasons = (stop: string) => (fromMessage(message.parse({ id: 'm', model: 'c', content: [], stop_reason: stop })).choices as JsonObject[])[0];
  t.match(reasons('refusal'), { finish_reason: 'content_filter' });
  t.notOk('stop_reason' in (reasons('refusal') as object));
  t.match(reasons('pause_turn'), { finish_reason: 'stop', stop_reason: 'pause_turn' });
  t.match(reasons('model_context_window_exceeded'), { finish_reason: 'length', stop_reason: 'model_context_window_exceeded' });

  t.test('and back as an Anthropic message, JSON-equal', async (t) => {
    const back = toMessage(answer, 'claude');
    t.same(back, {
      id: 'msg_1', type: 'message', role: 'assistant', model: 'claude',
      content: [
        { type: 'thinking', thinking: 'Hmm. ', signature: 'sig1' },
        { type: 'redacted_thinking', data: 'xyz' },
        { type: 'thinking', thinking: 'Done.', signature: 'sig2' },
        { type: 'text', text: 'The answer' },
        { type: 'tool_use', id: 'toolu_1', name: 'f', input: { a: 1 } },
      ],
      stop_reason: 'stop_sequence', stop_sequence: '###',
      usage: { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 100, cache_creation_input_tokens: 20 },
    });
    for (const stop of ['pause_turn', 'refusal', 'model_context_window_exceeded', 'max_tokens', 'end_turn', 'tool_use']) {
      t.equal(toMessage(fromMessage(message.parse({ id: 'm', model: 'c', content: [], stop_reason: stop })), 'c').stop_reason, stop, stop);
    }
  });

  t.test('an OpenAI refusal and reasoning text reach an Anthropic client', async (t) => {
    const refused = toMessage({ id: 'chatcmpl-1', model: 'gpt', choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: 'I won\'t.' }, finish_reason: 'stop' }], usage: { prompt_tokens: 9, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 4 } } }, 'gpt');
    t.same(refused.content, [{ type: 'text', text: 'I won\'t.' }]);
    t.equal(refused.stop_reason, 'refusal');
    t.same(refused.usage, { input_tokens: 5, output_tokens: 2, cache_read_input_tokens: 4, cache_creation_input_tokens: 0 });
    const reasoning = toMessage({ choices: [{ message: { content: 'ok', reasoning_content: 'first...' }, finish_reason: 'stop', stop_sequence: 'END' }] }, 'ds');
    t.same(reasoning.content, [{ type: 'thinking', thinking: 'first...', signature: '' }, { type: 'text', text: 'ok' }]);
    t.equal(reasoning.stop_reason, 'stop_sequence');
    t.equal(reasoning.stop_sequence, 'END');
  });
});

/** An Anthropic stream with everything in it. */
const upstreamEvents = [
  { type: 'message_start', message: { id: 'msg_s', type: 'message', role: 'assistant', model: 'claude', content: [], usage: { input_tokens: 12, output_tokens: 1, cache_read_input_tokens: 300, cache_creation_input_tokens: 40 } } },
  { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
  { type: 'ping' },
  { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Consider ' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'this.' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig-1' } },
  { type: 'content_block_stop', index: 0 },
  { type: 'content_block_start', index: 1, content_block: { type: 'redacted_thinking', data: 'enc' } },
  { type: 'content_block_stop', index: 1 },
  { type: 'content_block_start', index: 2, content_block: { type: 'text', text: '' } },
  { type: 'content_block_delta', index: 2, delta: { type: 'text_delta', text: 'Checking' } },
  { type: 'content_block_stop', index: 2 },
  { type: 'content_block_start', index: 3, content_block: { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: {} } },
  { type: 'content_block_delta', index: 3, delta: { type: 'input_json_delta', partial_json: '{"city":' } },
  { type: 'content_block_delta', index: 3, delta: { type: 'input_json_delta', partial_json: '"Oslo"}' } },
  { type: 'content_block_stop', index: 3 },
  { type: 'message_delta', delta: { stop_reason: 'stop_sequence', stop_sequence: 'END' }, usage: { output_tokens: 30 } },
  { type: 'message_stop' },
];

function translateStream(events: object[]): JsonObject[] {
  const translator = new StreamTranslator('anthropic', (s) => s);
  const out = events.flatMap((e) => translator.translate(streamEvent.parse(e)).map((c) => c.value));
  if (!translator.stopped) throw new Error('message_stop did not stop the translator');
  return out;
}

t.test('an Anthropic stream as chunks: thinking, signatures, redacted thinking, stop sequence, usage first and last', async (t) => {
  const chunks = translateStream(upstreamEvents);
  const deltas = chunks.map((c: any) => c.choices[0]?.delta);
  t.same(chunks[0]?.usage, { prompt_tokens: 352, completion_tokens: 1, total_tokens: 353, prompt_tokens_details: { cached_tokens: 300, cache_creation_tokens: 40 } }, 'message_start\'s usage rides on the first chunk');
  t.same(deltas.slice(0, 8), [
    { role: 'assistant', content: '' },
    { reasoning_content: 'Consider ' },
    { reasoning_content: 'this.' },
    { thinking_blocks: [{ type: 'thinking', signature: 'sig-1' }] },
    { thinking_blocks: [{ type: 'redacted_thinking', data: 'enc' }] },
    { content: 'Checking' },
    { tool_calls: [{ index: 0, id: 'toolu_9', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
    { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
  ]);
  const finish = chunks.at(-2) as any;
  t.same(finish.choices, [{ index: 0, delta: {}, finish_reason: 'stop', stop_sequence: 'END' }], 'message_delta: finish_reason and the stop sequence');
  t.equal(finish.usage, undefined);
  t.same(chunks.at(-1), {
    id: 'msg_s', object: 'chat.completion.chunk', created: (chunks.at(-1) as any).created, model: 'claude', choices: [],
    usage: { prompt_tokens: 352, completion_tokens: 30, total_tokens: 382, prompt_tokens_details: { cached_tokens: 300, cache_creation_tokens: 40 } },
  }, 'message_stop: one last chunk, no choices, the whole usage');
});

function events(frames: SseFrame[]): JsonObject[] {
  return frames.map((f) => f.data);
}

t.test('chunks back to an Anthropic client\'s events', async (t) => {
  t.test('from an Anthropic upstream: the same events, blocks and indices', async (t) => {
    const writer = new EventWriter('claude');
    const frames = translateStream(upstreamEvents).flatMap((c) => writer.chunk(c));
    frames.push(...writer.end());
    const expected = upstreamEvents.filter((e) => e.type !== 'ping');
    // The writer opens thinking blocks empty, closes each after its last delta, and reports usage as the upstream did.
    t.same(events(frames), expected.map((e) => {
      if (e.type === 'message_start') return { type: 'message_start', message: { ...e.message, stop_reason: null, stop_sequence: null } };
      return e;
    }));
  });

  t.test('a signature ends its thinking block: the next thinking is a new block', async (t) => {
    const writer = new EventWriter('claude');
    const c = (delta: JsonObject) => ({ id: 'msg_2', model: 'claude', choices: [{ index: 0, delta, finish_reason: null }] });
    const frames = [
      c({ reasoning_content: 'one' }), c({ thinking_blocks: [{ type: 'thinking', signature: 's1' }] }),
      c({ reasoning_content: 'two' }), c({ thinking_blocks: [{ type: 'thinking', signature: 's2' }] }),
    ].flatMap((v) => writer.chunk(v));
    t.same(events(frames).map((d) => [d.type, d.index ?? null, (d.delta as JsonObject | undefined)?.type ?? null]), [
      ['message_start', null, null],
      ['content_block_start', 0, null], ['content_block_delta', 0, 'thinking_delta'], ['content_block_delta', 0, 'signature_delta'], ['content_block_stop', 0, null],
      ['content_block_start', 1, null], ['content_block_delta', 1, 'thinking_delta'], ['content_block_delta', 1, 'signature_delta'], ['content_block_stop', 1, null],
    ]);
  });

  t.test('from an OpenAI upstream: usage comes last, so message_delta carries input and cache counts', async (t) => {
    const writer = new EventWriter('gpt');
    const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt' };
    const frames = [
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { reasoning_content: 'why' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { refusal: ' but no.' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
      { ...base, choices: [], usage: { prompt_tokens: 50, completion_tokens: 7, total_tokens: 57, prompt_tokens_details: { cached_tokens: 20, cache_creation_tokens: 5 } } },
    ].flatMap((c) => writer.chunk(c));
    frames.push(...writer.end());
    const data = events(frames);
    t.same(data.map((d) => d.type), [
      'message_start', 'content_block_start', 'content_block_delta', 'content_block_stop',
      'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop',
    ]);
    t.same((data[0]?.message as JsonObject).usage, { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 });
    t.same(data[1], { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } });
    t.same(data[2], { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'why' } });
    t.same(data[4], { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } });
    t.same(data[8], {
      type: 'message_delta', delta: { stop_reason: 'refusal', stop_sequence: null },
      usage: { input_tokens: 25, cache_creation_input_tokens: 5, cache_read_input_tokens: 20, output_tokens: 7 },
    });
  });
});

// --- over HTTP -------------------------------------------------------------------------------------------------

/** A Messages API upstream that records requests and answers with thinking, a stop sequence and cache usage. */
async function thinkingUpstream(t: Parameters<typeof startGateway>[0]) {
  const seen: any[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8'));
      seen.push(body);
      if (body.stream === true) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const e of upstreamEvents) res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id: 'msg_h', type: 'message', role: 'assistant', model: body.model,
        content: [{ type: 'thinking', thinking: 'mull', signature: 'sg' }, { type: 'text', text: 'done' }],
        stop_reason: 'stop_sequence', stop_sequence: 'END',
        usage: { input_tokens: 3, output_tokens: 4, cache_read_input_tokens: 5, cache_creation_input_tokens: 6 },
      }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { seen, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

t.test('over HTTP: an OpenAI client served by an Anthropic upstream', async (t) => {
  const up = await thinkingUpstream(t);
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { anthropic: { base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_ANTHROPIC_KEY', default_max_tokens: 500 } } });
  const url = `${gw.url}/v1/chat/completions`;
  const res = await postJson(url, {
    model: 'anthropic/claude', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi', cache_control: CACHE }] }],
    thinking: { type: 'enabled', budget_tokens: 1024 }, top_k: 3, user: 'u',
  });
  t.equal(res.status, 200);
  t.same(up.seen[0], {
    model: 'claude', max_tokens: 500, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi', cache_control: CACHE }] }],
    thinking: { type: 'enabled', budget_tokens: 1024 }, top_k: 3, metadata: { user_id: 'u' },
  });
  t.match(res.json.choices[0], { message: { content: 'done', reasoning_content: 'mull', thinking_blocks: [{ type: 'thinking', thinking: 'mull', signature: 'sg' }] }, finish_reason: 'stop', stop_sequence: 'END' });
  t.same(res.json.usage.prompt_tokens_details, { cached_tokens: 5, cache_creation_tokens: 6 });

  const refused = await postJson(url, { model: 'anthropic/claude', messages: [{ role: 'user', content: 'hi' }], seed: 3 });
  t.equal(refused.status, 400);
  t.equal(refused.json.error.code, 'HEIMDALL_ERR_FIELD_UNSUPPORTED');
  t.equal(up.seen.length, 1, 'a refused field never goes upstream');

  const streamed = sseData((await postJson(url, { model: 'anthropic/claude', messages: [{ role: 'user', content: 'hi' }], stream: true })).text);
  t.equal(streamed.at(-1), '[DONE]');
  const chunks = streamed.slice(0, -1).map((d) => JSON.parse(d));
  t.equal(chunks.map((c) => c.choices[0]?.delta.reasoning_content ?? '').join(''), 'Consider this.');
  t.same(chunks.at(-1).choices, []);
  t.equal(chunks.at(-1).usage.completion_tokens, 30);
});

t.test('over HTTP: drop_unsupported leaves a field out and names it', async (t) => {
  const up = await thinkingUpstream(t);
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { anthropic: { base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_ANTHROPIC_KEY', drop_unsupported: true } } });
  const res = await postJson(`${gw.url}/v1/chat/completions`, { model: 'anthropic/claude', messages: [{ role: 'user', content: 'hi' }], seed: 3, logprobs: true });
  t.equal(res.status, 200);
  t.equal(up.seen[0].seed, undefined);
  t.equal(res.headers.get('x-heimdall-dropped'), 'logprobs, seed');
});
