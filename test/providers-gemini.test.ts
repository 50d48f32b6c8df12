/**
 * The gemini provider: OpenAI-shaped requests translated to generateContent / streamGenerateContent /
 * batchEmbedContents and the answers translated back, against a loopback server that speaks the Gemini API.
 */
import OpenAI from 'openai';
import t from 'tap';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { startFakeProvider, WEATHER_ARGS } from './helpers/fake-providers.js';

process.env.HEIMDALL_TEST_GEMINI_KEY = 'gemini-secret';
t.teardown(() => delete process.env.HEIMDALL_TEST_GEMINI_KEY);

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  },
};

async function setup(t: Parameters<typeof startGateway>[0], extra: Record<string, unknown> = {}) {
  const up = await startFakeProvider(t, 'gemini');
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { gemini: { base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_GEMINI_KEY', ...extra } } });
  return { up, gw, url: `${gw.url}/v1/chat/completions` };
}

t.test('the request: system instruction, turns, function calls and responses, images, generation config', async (t) => {
  const { up, url } = await setup(t);
  const res = await postJson(url, {
    model: 'gemini/gemini-2.0-flash',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: [{ type: 'text', text: 'Look:' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'image_url', image_url: { url: 'https://example.com/cat.webp' } }] },
      { role: 'assistant', content: 'A cat.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_7', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_7', content: '{"temp": 18}' },
      { role: 'tool', tool_call_id: 'call_7', content: 'sunny' },
    ],
    tools: [weatherTool],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    temperature: 0.3,
    top_p: 0.8,
    max_tokens: 256,
    stop: ['END'],
    n: 1,
    seed: 7,
    response_format: { type: 'json_object' },
  });
  t.equal(res.status, 200);
  const seen = up.seen[0];
  t.equal(seen?.url, '/v1beta/models/gemini-2.0-flash:generateContent');
  t.equal(seen?.headers['x-goog-api-key'], 'gemini-secret');
  t.same(seen?.json, {
    contents: [
      { role: 'user', parts: [{ text: 'Look:' }, { inlineData: { mimeType: 'image/png', data: 'AAAA' } }, { fileData: { mimeType: 'image/webp', fileUri: 'https://example.com/cat.webp' } }] },
      { role: 'model', parts: [{ text: 'A cat.' }] },
      { role: 'user', parts: [{ text: 'Weather in Paris?' }] },
      { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] },
      { role: 'user', parts: [
        { functionResponse: { name: 'get_weather', response: { temp: 18 } } },
        { functionResponse: { name: 'get_weather', response: { content: 'sunny' } } },
      ] },
    ],
    systemInstruction: { parts: [{ text: 'You are terse.' }] },
    generationConfig: { temperature: 0.3, topP: 0.8, maxOutputTokens: 256, stopSequences: ['END'], candidateCount: 1, seed: 7, responseMimeType: 'application/json' },
    tools: [{ functionDeclarations: [{ name: 'get_weather', parametersJsonSchema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false }, description: 'Weather for a city' }] }],
    toolConfig: { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] } },
  }, 'tool parameters go as JSON Schema, whole but for the $schema marker');

  const orphan = await postJson(url, { model: 'gemini/g', messages: [{ role: 'user', content: 'x' }, { role: 'tool', tool_call_id: 'nope', content: 'y' }] });
  t.equal(orphan.status, 400);
  t.match(orphan.json.error.message, /no earlier assistant message called/);
});

t.test('the answer: text, function calls, finish reasons and usage', async (t) => {
  const { url } = await setup(t);
  const text = await postJson(url, chat('gemini/gemini-2.0-flash', 'hello gemini'));
  t.match(text.json, {
    id: 'resp-fake1',
    object: 'chat.completion',
    model: 'gemini-2.0-flash',
    choices: [{ index: 0, message: { role: 'assistant', content: 'upstream says: hello gemini' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
  });
  const tool = await postJson(url, chat('gemini/tool', 'weather?', { tools: [weatherTool] }));
  t.same(tool.json.choices[0].message, {
    role: 'assistant',
    content: 'Let me check.',
    tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(WEATHER_ARGS) } }],
  });
  t.equal(tool.json.choices[0].finish_reason, 'tool_calls');
});

t.test('streaming: streamGenerateContent with alt=sse becomes chunks', async (t) => {
  const { up, url } = await setup(t);
  const res = await postJson(url, chat('gemini/gemini-2.0-flash', 'stream from gemini', { stream: true }));
  t.equal(up.seen[0]?.url, '/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse');
  const data = sseData(res.text);
  t.equal(data.at(-1), '[DONE]');
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  t.equal(chunks[0].choices[0].delta.role, 'assistant');
  t.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'upstream says: stream from gemini');
  t.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  t.match(chunks.at(-1).usage, { prompt_tokens: 3, completion_tokens: 4 });

  const tool = sseData((await postJson(url, chat('gemini/tool', 'weather?', { stream: true, tools: [weatherTool] }))).text);
  const toolChunks = tool.slice(0, -1).map((d) => JSON.parse(d));
  const calls = toolChunks.flatMap((c) => c.choices[0].delta.tool_calls ?? []);
  t.same(calls, [{ index: 0, id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(WEATHER_ARGS) } }]);
  t.equal(toolChunks.at(-1).choices[0].finish_reason, 'tool_calls');
});

t.test('embeddings: batchEmbedContents, numbers or base64 as asked', async (t) => {
  const { up, gw } = await setup(t);
  const res = await postJson(`${gw.url}/v1/embeddings`, { model: 'gemini/text-embedding-004', input: ['a', 'b'], dimensions: 3 });
  t.equal(res.status, 200);
  t.equal(up.seen[0]?.url, '/v1beta/models/text-embedding-004:batchEmbedContents');
  t.same(up.seen[0]?.json, {
    requests: [
      { model: 'models/text-embedding-004', content: { parts: [{ text: 'a' }] }, outputDimensionality: 3 },
      { model: 'models/text-embedding-004', content: { parts: [{ text: 'b' }] }, outputDimensionality: 3 },
    ],
  });
  t.match(res.json, { object: 'list', model: 'text-embedding-004', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2, 0.3] }, { index: 1 }] });

  const sdk = new OpenAI({ baseURL: `${gw.url}/openai/v1`, apiKey: 'x', maxRetries: 0 });
  const viaSdk = await sdk.embeddings.create({ model: 'gemini/text-embedding-004', input: 'c' });
  t.ok(Math.abs((viaSdk.data[0]?.embedding[1] ?? 0) - 0.2) < 1e-6, 'the openai client decodes the base64 the gateway encoded');

  const tokens = await postJson(`${gw.url}/v1/embeddings`, { model: 'gemini/text-embedding-004', input: [[1, 2, 3]] });
  t.equal(tokens.status, 400);
  t.equal(tokens.json.error.code, 'HEIMDALL_ERR_PROVIDER_UNSUPPORTED');
});

t.test('failures: statuses, mid-stream errors, a stream cut before it finished', async (t) => {
  const { up, url } = await setup(t, { retries: { max_retries: 1, initial_backoff_ms: 10 } });
  up.queue({ status: 503 });
  t.equal((await postJson(url, chat('gemini/g'))).status, 200, 'a 503 is retried');

  up.queue({ status: 400, message: 'API key not valid' });
  const bad = await postJson(url, chat('gemini/g'));
  t.equal(bad.status, 400);
  t.match(bad.json.error.message, /API key not valid/);

  up.queue({ streamError: true });
  const errored = sseData((await postJson(url, chat('gemini/g', 'a b c', { stream: true }))).text);
  t.match(JSON.parse(errored.at(-1) as string).error, { code: 'UNAVAILABLE', type: 'server_error', heimdall_code: 'HEIMDALL_ERR_UPSTREAM_STATUS', message: /Overloaded/ });

  up.queue({ reset: 'mid-stream' });
  const cut = sseData((await postJson(url, chat('gemini/g', 'a b c', { stream: true }))).text);
  t.equal(JSON.parse(cut.at(-1) as string).error.code, 'HEIMDALL_ERR_UPSTREAM_CONNECT');

  up.queue({ malformed: true });
  const garbage = await postJson(url, chat('gemini/g'));
  t.equal(garbage.status, 502);
  t.equal(garbage.json.error.code, 'HEIMDALL_ERR_UPSTREAM_BAD_RESPONSE');
});
