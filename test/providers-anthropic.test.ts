/**
 * The anthropic provider: OpenAI-shaped requests translated to the Messages API and its answers (plain and
 * streamed) translated back, against a loopback server that speaks the Messages API.
 */
import t from 'tap';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { startFakeProvider, WEATHER_ARGS } from './helpers/fake-providers.js';

process.env.HEIMDALL_TEST_ANTHROPIC_KEY = 'sk-ant-test';
t.teardown(() => delete process.env.HEIMDALL_TEST_ANTHROPIC_KEY);

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const weatherTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
};

async function setup(t: Parameters<typeof startGateway>[0], extra: Record<string, unknown> = {}) {
  const up = await startFakeProvider(t, 'anthropic');
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { anthropic: { base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_ANTHROPIC_KEY', default_max_tokens: 1024, ...extra } },
  });
  return { up, gw, url: `${gw.url}/v1/chat/completions` };
}

t.test('the request: system prompts, turns, tools, tool calls and results, images, parameters', async (t) => {
  const { up, url } = await setup(t);
  const res = await postJson(url, {
    model: 'anthropic/claude-sonnet-4-5',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'developer', content: 'Use metric units.' },
      { role: 'user', content: [{ type: 'text', text: 'What is in these?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }, { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } }] },
      { role: 'assistant', content: 'A pixel and a cat.' },
      { role: 'user', content: 'Weather in Paris and Rome?' },
      { role: 'assistant', content: null, tool_calls: [
        { id: 'toolu_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'toolu_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
      ] },
      { role: 'tool', tool_call_id: 'toolu_a', content: '18C' },
      { role: 'tool', tool_call_id: 'toolu_b', content: '24C' },
      { role: 'user', content: 'Thanks, summarise.' },
    ],
    tools: [weatherTool],
    tool_choice: 'required',
    parallel_tool_calls: false,
    temperature: 0.2,
    top_p: 0.9,
    stop: 'END',
    user: 'user-42',
  });
  t.equal(res.status, 200);
  const seen = up.seen[0];
  t.equal(seen?.url, '/v1/messages');
  t.equal(seen?.headers['x-api-key'], 'sk-ant-test');
  t.equal(seen?.headers['anthropic-version'], '2023-06-01');
  t.same(seen?.json, {
    model: 'claude-sonnet-4-5',
    max_tokens: 1024,
    system: 'You are terse.\n\nUse metric units.',
    messages: [
      { role: 'user', content: [
        { type: 'text', text: 'What is in these?' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
        { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
      ] },
      { role: 'assistant', content: 'A pixel and a cat.' },
      { role: 'user', content: 'Weather in Paris and Rome?' },
      { role: 'assistant', content: [
        { type: 'tool_use', id: 'toolu_a', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'toolu_b', name: 'get_weather', input: { city: 'Rome' } },
      ] },
      { role: 'user', content: [
        { type: 'tool_result', tool_use_id: 'toolu_a', content: '18C' },
        { type: 'tool_result', tool_use_id: 'toolu_b', content: '24C' },
        { type: 'text', text: 'Thanks, summarise.' },
      ] },
    ],
    temperature: 0.2,
    top_p: 0.9,
    stop_sequences: ['END'],
    metadata: { user_id: 'user-42' },
    tools: [{ name: 'get_weather', input_schema: weatherTool.function.parameters, description: 'Weather for a city' }],
    tool_choice: { type: 'any', disable_parallel_tool_use: true },
  });

  await postJson(url, chat('anthropic/claude', 'x', { max_completion_tokens: 77, tool_choice: { type: 'function', function: { name: 'get_weather' } }, tools: [weatherTool] }));
  t.equal(up.seen[1]?.json.max_tokens, 77, 'max_completion_tokens wins over the default');
  t.same(up.seen[1]?.json.tool_choice, { type: 'tool', name: 'get_weather' });

  const n = await postJson(url, chat('anthropic/claude', 'x', { n: 2 }));
  t.equal(n.status, 400);
  t.equal(n.json.error.code, 'HEIMDALL_ERR_FIELD_UNSUPPORTED');
  t.equal(n.json.error.param, 'n');
  const badRole = await postJson(url, { model: 'anthropic/claude', messages: [{ role: 'wizard', content: 'x' }] });
  t.equal(badRole.status, 400);
  t.match(badRole.json.error.message, /messages\[0\]\.role.*wizard/);
  t.equal(badRole.json.error.param, 'messages[0].role');
  t.equal(up.seen.length, 2, 'refused requests never went upstream');
});

t.test('the answer: text, tool calls, stop reasons and usage', async (t) => {
  const { url } = await setup(t);
  const text = await postJson(url, chat('anthropic/claude', 'hello claude'));
  t.match(text.json, {
    id: 'msg_fake1',
    object: 'chat.completion',
    model: 'claude',
    choices: [{ index: 0, message: { role: 'assistant', content: 'upstream says: hello claude' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9, prompt_tokens_details: { cached_tokens: 2 } },
  });
  const tool = await postJson(url, chat('anthropic/tool', 'weather?', { tools: [weatherTool] }));
  t.same(tool.json.choices[0].message, {
    role: 'assistant',
    content: 'Let me check.',
    tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(WEATHER_ARGS) } }],
  });
  t.equal(tool.json.choices[0].finish_reason, 'tool_calls');
});

t.test('streaming: every event type becomes chunks', async (t) => {
  const { url } = await setup(t);
  const res = await postJson(url, chat('anthropic/claude', 'stream it please', { stream: true }));
  t.equal(res.status, 200);
  const data = sseData(res.text);
  t.equal(data.at(-1), '[DONE]');
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  t.equal(chunks[0].choices[0].delta.role, 'assistant', 'message_start opens with the role');
  t.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === 'msg_fake1'));
  t.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'upstream says: stream it please');
  t.equal(chunks.at(-2).choices[0].finish_reason, 'stop', 'message_delta carries the stop reason');
  const last = chunks.at(-1);
  t.same(last.choices, [], 'message_stop gives a last chunk without choices');
  t.match(last.usage, { prompt_tokens: 3, completion_tokens: 4 }, 'and the usage');

  const tool = sseData((await postJson(url, chat('anthropic/tool', 'weather?', { stream: true, tools: [weatherTool] }))).text);
  const toolChunks = tool.slice(0, -1).map((d) => JSON.parse(d));
  const calls = toolChunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
  t.same(calls[0], { index: 0, id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '' } });
  t.equal(calls.map((c: any) => c.function.arguments).join(''), JSON.stringify(WEATHER_ARGS), 'input_json_delta pieces concatenate to the arguments');
  t.equal(toolChunks.at(-2).choices[0].finish_reason, 'tool_calls');
});

t.test('failures: status codes, mid-stream error events, malformed answers; no embeddings', async (t) => {
  const { up, url, gw } = await setup(t, { retries: { max_retries: 1, initial_backoff_ms: 10, max_retry_after_ms: 1000 } });
  up.queue({ status: 529, message: 'Overloaded' });
  t.equal((await postJson(url, chat('anthropic/claude'))).status, 200, '529 (overloaded) is retried');
  t.equal(up.seen.length, 2);

  up.queue({ status: 429, retryAfter: '20', message: 'rate limited' });
  const limited = await postJson(url, chat('anthropic/claude'));
  t.equal(limited.status, 429);
  t.equal(limited.headers.get('retry-after'), '20');
  t.match(limited.json.error.message, /rate limited/);

  up.queue({ streamError: true });
  const broken = sseData((await postJson(url, chat('anthropic/claude', 'a b', { stream: true }))).text);
  t.match(JSON.parse(broken.at(-1) as string).error, { code: 'HEIMDALL_ERR_UPSTREAM_STATUS', message: /Overloaded/ });

  up.queue({ malformed: true });
  const garbage = await postJson(url, chat('anthropic/claude'));
  t.equal(garbage.status, 502);
  t.equal(garbage.json.error.code, 'HEIMDALL_ERR_UPSTREAM_BAD_RESPONSE');

  const emb = await postJson(`${gw.url}/v1/embeddings`, { model: 'anthropic/claude', input: 'x' });
  t.equal(emb.status, 400);
  t.equal(emb.json.error.code, 'HEIMDALL_ERR_PROVIDER_UNSUPPORTED');
});

t.test('a fallback may use another wire format', async (t) => {
  const openai = await startFakeProvider(t, 'openai');
  const anthropic = await startFakeProvider(t, 'anthropic');
  const gw = await startGateway(t, {
    providers: { openai: { base_url: openai.baseUrl }, anthropic: { base_url: anthropic.baseUrl } },
  });
  openai.modelFaults.set('gpt-4o', { status: 500 });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-4o', 'anyone?', { fallbacks: ['anthropic/claude-haiku'] }));
  t.equal(res.status, 200);
  t.equal(res.headers.get('x-heimdall-served-by'), 'anthropic/claude-haiku');
  t.equal(res.json.choices[0].message.content, 'upstream says: anyone?');
  t.equal(anthropic.seen[0]?.json.model, 'claude-haiku');
});
