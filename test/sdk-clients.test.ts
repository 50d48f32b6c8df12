/**
 * The official openai and @anthropic-ai/sdk npm clients against Heimdall, with only their base URL changed: chat,
 * streaming, tool calls, embeddings, and errors surfacing as each SDK's own error classes. Behind the gateway are
 * loopback servers speaking OpenAI's and Anthropic's wire formats, so each client is also served across formats.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import t from 'tap';
import { startGateway } from './helpers/gateway.js';
import { startFakeProvider, WEATHER_ARGS, type FakeProvider } from './helpers/fake-providers.js';

const weatherSchema = { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] };

let openaiUp: FakeProvider;
let anthropicUp: FakeProvider;
let openai: OpenAI;
let anthropic: Anthropic;

t.before(async () => {
  openaiUp = await startFakeProvider(t, 'openai');
  anthropicUp = await startFakeProvider(t, 'anthropic');
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: {
      openai: { base_url: openaiUp.baseUrl },
      anthropic: { base_url: anthropicUp.baseUrl },
      mock: { type: 'mock', models: ['echo'] },
    },
  });
  // The SDKs insist on a key; the gateway uses its own configured keys upstream.
  openai = new OpenAI({ baseURL: `${gw.url}/openai/v1`, apiKey: 'sk-client-side', maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: `${gw.url}/anthropic`, apiKey: 'sk-ant-client-side', maxRetries: 0 });
});

t.test('openai client', async (t) => {
  await t.test('chat, with a bare model name going to the provider named openai', async (t) => {
    const completion = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi from the SDK' }] });
    t.equal(completion.choices[0]?.message.content, 'upstream says: hi from the SDK');
    t.equal(openaiUp.seen.at(-1)?.model, 'gpt-4o-mini');
    t.equal(openaiUp.seen.at(-1)?.headers.authorization, undefined, 'the client\'s own key never goes upstream');
  });

  await t.test('streaming', async (t) => {
    const stream = await openai.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'stream to the SDK' }] });
    let text = '';
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish ??= chunk.choices[0]?.finish_reason;
    }
    t.equal(text, 'upstream says: stream to the SDK');
    t.equal(finish, 'stop');
  });

  await t.test('tool calls, plain and streamed, from an Anthropic provider too', async (t) => {
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: weatherSchema } }];
    for (const model of ['tool', 'anthropic/tool']) {
      const completion = await openai.chat.completions.create({ model, tools, messages: [{ role: 'user', content: 'weather?' }] });
      const call = completion.choices[0]?.message.tool_calls?.[0];
      t.equal(call?.type === 'function' ? call.function.name : undefined, 'get_weather', model);
      t.same(call?.type === 'function' ? JSON.parse(call.function.arguments) : undefined, WEATHER_ARGS);
      t.equal(completion.choices[0]?.finish_reason, 'tool_calls');

      const runner = openai.chat.completions.stream({ model, tools, messages: [{ role: 'user', content: 'weather?' }] });
      const final = await runner.finalChatCompletion();
      const streamed = final.choices[0]?.message.tool_calls?.[0];
      t.same(streamed?.type === 'function' ? JSON.parse(streamed.function.arguments) : undefined, WEATHER_ARGS, `${model}: streamed`);
    }
  });

  await t.test('embeddings (the client asks for base64 and decodes it) and models', async (t) => {
    const res = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'] });
    t.equal(res.data.length, 2);
    t.equal(res.data[0]?.embedding.length, 3);
    t.ok(Math.abs((res.data[0]?.embedding[0] ?? 0) - 0.1) < 1e-6);
    const mock = await openai.embeddings.create({ model: 'mock/echo', input: 'offline' });
    t.equal(mock.data[0]?.embedding.length, 8, 'a translated provider honours base64 too');
    const models = await openai.models.list();
    t.same(models.data.map((m) => m.id), ['mock/echo']);
  });

  await t.test('errors are the SDK\'s own classes', async (t) => {
    openaiUp.modelFaults.set('limited', { status: 429, retryAfter: '3', message: 'slow down' });
    openaiUp.modelFaults.set('down', { status: 500, message: 'down' });
    openaiUp.modelFaults.set('bad', { status: 400, message: 'bad parameter' });
    const expect = async (model: string, cls: typeof OpenAI.APIError, status: number) => {
      const err = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
      t.ok(err instanceof cls, `${model}: ${cls.name}`);
      t.equal((err as OpenAI.APIError).status, status);
      return err as OpenAI.APIError;
    };
    const limited = await expect('limited', OpenAI.RateLimitError, 429);
    t.match(limited.message, /slow down/);
    t.equal(limited.headers?.get('retry-after'), '3');
    await expect('down', OpenAI.InternalServerError, 500);
    const bad = await expect('bad', OpenAI.BadRequestError, 400);
    t.equal(bad.code, 'HEIMDALL_ERR_UPSTREAM_REJECTED');
    await expect('mock/missing', OpenAI.NotFoundError, 404);
  });
});

t.test('anthropic client', async (t) => {
  await t.test('messages, served by an Anthropic provider and by an OpenAI one', async (t) => {
    const msg = await anthropic.messages.create({
      model: 'claude-sonnet-4-5',
      max_tokens: 100,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'hi claude' }],
    });
    t.equal(msg.type, 'message');
    t.equal(msg.role, 'assistant');
    t.same(msg.content, [{ type: 'text', text: 'upstream says: hi claude' }]);
    t.equal(msg.stop_reason, 'end_turn');
    t.equal(msg.usage.output_tokens, 4);
    const sent = anthropicUp.seen.at(-1)?.json;
    t.equal(sent.system, 'Be brief.');
    t.equal(sent.max_tokens, 100);

    const viaOpenAI = await anthropic.messages.create({ model: 'openai/gpt-4o', max_tokens: 50, messages: [{ role: 'user', content: 'hi gpt' }] });
    t.same(viaOpenAI.content, [{ type: 'text', text: 'upstream says: hi gpt' }]);
    t.same(viaOpenAI.usage, { input_tokens: 3, output_tokens: 4, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 });
  });

  await t.test('streaming, with the SDK\'s stream helper and raw events', async (t) => {
    for (const model of ['claude-sonnet-4-5', 'openai/gpt-4o']) {
      const stream = anthropic.messages.stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'stream for claude' }] });
      let text = '';
      stream.on('text', (delta) => (text += delta));
      const final = await stream.finalMessage();
      t.equal(text, 'upstream says: stream for claude', model);
      t.match(final.content, [{ type: 'text', text: 'upstream says: stream for claude' }], `${model}: final message`);
      t.equal(final.stop_reason, 'end_turn');
    }
    const raw = await anthropic.messages.create({ model: 'claude-x', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'a b' }] });
    const types: string[] = [];
    for await (const event of raw) types.push(event.type);
    t.equal(types[0], 'message_start');
    t.equal(types[1], 'content_block_start');
    t.ok(types.includes('content_block_delta'));
    t.same(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
  });

  await t.test('tools: definitions, tool_use answers (plain and streamed), tool results', async (t) => {
    const tools = [{ name: 'get_weather', description: 'Weather for a city', input_schema: weatherSchema }];
    for (const model of ['tool', 'openai/tool']) {
      const msg = await anthropic.messages.create({ model, max_tokens: 100, tools, tool_choice: { type: 'any' }, messages: [{ role: 'user', content: 'weather?' }] });
      const use = msg.content.find((b) => b.type === 'tool_use');
      t.same(use?.type === 'tool_use' ? [use.name, use.input] : undefined, ['get_weather', WEATHER_ARGS], model);
      t.equal(msg.stop_reason, 'tool_use');
      const streamed = await anthropic.messages.stream({ model, max_tokens: 100, tools, messages: [{ role: 'user', content: 'weather?' }] }).finalMessage();
      const streamedUse = streamed.content.find((b) => b.type === 'tool_use');
      t.same(streamedUse?.type === 'tool_use' ? streamedUse.input : undefined, WEATHER_ARGS, `${model}: input_json_delta assembled by the SDK`);
    }
    const openaiTools = openaiUp.seen.filter((s) => s.model === 'tool' && s.json.tool_choice !== undefined).at(-1)?.json;
    t.same(openaiTools.tools, [{ type: 'function', function: { name: 'get_weather', parameters: weatherSchema, description: 'Weather for a city' } }]);
    t.equal(openaiTools.tool_choice, 'required');

    await anthropic.messages.create({
      model: 'claude-x',
      max_tokens: 100,
      tools,
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: { city: 'Oslo' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_9', content: '3C' }, { type: 'text', text: 'and now?' }] },
      ],
    });
    t.same(anthropicUp.seen.at(-1)?.json.messages, [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: [{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: { city: 'Oslo' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_9', content: '3C' }, { type: 'text', text: 'and now?' }] },
    ], 'a tool round trip survives the translation both ways');
  });

  await t.test('images as base64 and as URLs', async (t) => {
    await anthropic.messages.create({
      model: 'claude-x',
      max_tokens: 10,
      messages: [{ role: 'user', content: [
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
        { type: 'image', source: { type: 'url', url: 'https://example.com/a.png' } },
        { type: 'text', text: 'describe' },
      ] }],
    });
    t.same(anthropicUp.seen.at(-1)?.json.messages[0].content, [
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/a.png' } },
      { type: 'text', text: 'describe' },
    ]);
  });

  await t.test('errors are the SDK\'s own classes, in Anthropic\'s error shape', async (t) => {
    anthropicUp.modelFaults.set('limited', { status: 429, retryAfter: '4', message: 'slow down' });
    anthropicUp.modelFaults.set('down', { status: 500, message: 'down' });
    const expect = async (params: Record<string, unknown>, cls: typeof Anthropic.APIError, status: number, type: string) => {
      const err = await anthropic.messages.create({ max_tokens: 10, messages: [{ role: 'user', content: 'x' }], ...params } as never).catch((e: unknown) => e);
      t.ok(err instanceof cls, `${JSON.stringify(params)}: ${cls.name}`);
      const e = err as Anthropic.APIError;
      t.equal(e.status, status);
      t.match(e.error, { type: 'error', error: { type } });
      return e;
    };
    const limited = await expect({ model: 'limited' }, Anthropic.RateLimitError, 429, 'rate_limit_error');
    t.equal(limited.headers?.get('retry-after'), '4');
    await expect({ model: 'down' }, Anthropic.InternalServerError, 500, 'api_error');
    // "nowhere/x" would be a bare model name of the default provider here (names like "meta-llama/x" are common).
    await expect({ model: 'mock/missing' }, Anthropic.NotFoundError, 404, 'not_found_error');
    await expect({ model: 'claude-x', max_tokens: 'lots' }, Anthropic.BadRequestError, 400, 'invalid_request_error');

    const raw = await fetch(anthropic.baseURL + '/v1/messages', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": ' });
    t.equal(raw.status, 400);
    t.match(await raw.json(), { type: 'error', error: { type: 'invalid_request_error', message: /not valid JSON/ } }, 'even a body that is not JSON');

    anthropicUp.queue({ streamError: true });
    const failing = anthropic.messages.stream({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'a b' }] });
    const streamErr = await failing.finalMessage().catch((e: unknown) => e);
    t.ok(streamErr instanceof Anthropic.APIError, 'a failure mid-stream is an error event the SDK raises');
    t.match((streamErr as Anthropic.APIError).error, { type: 'error', error: { message: /Overloaded/ } });
  });
});
