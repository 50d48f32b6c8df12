/**
 * The gemini provider loses nothing quietly: every request field is translated (structured output, logprobs,
 * seed, thinking, files, audio, thought signatures...), passed (stream_options) or refused by name (a 400, or with
 * drop_unsupported left out and listed in x-heimdall-dropped); Gemini's logprobs, thoughts, signatures and token
 * details come back in OpenAI's shape. A loopback Gemini server records exactly what the gateway sent it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { postJson, sseData, startGateway } from './helpers/gateway.js';

process.env.HEIMDALL_TEST_GEMINI_FIDELITY_KEY = 'k';
t.teardown(() => delete process.env.HEIMDALL_TEST_GEMINI_FIDELITY_KEY);

interface FakeGemini {
  baseUrl: string;
  /** Each request body the server received, parsed, with its path. */
  seen: { url: string; json: any }[];
  /** The next answers: a generateContent body, or the events of a stream. */
  answers: (object | object[])[];
}

const TEXT_ANSWER = {
  candidates: [{ content: { role: 'model', parts: [{ text: 'ok' }] }, finishReason: 'STOP', index: 0 }],
  usageMetadata: { promptTokenCount: 1, candidatesTokenCount: 1, totalTokenCount: 2 },
  modelVersion: 'gemini-2.5-flash',
  responseId: 'r1',
};

type Test = Parameters<typeof startGateway>[0];

async function fakeGemini(t: Test): Promise<FakeGemini> {
  const fake: FakeGemini = { baseUrl: '', seen: [], answers: [] };
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      fake.seen.push({ url: req.url ?? '', json: JSON.parse(Buffer.concat(parts).toString('utf8')) });
      const answer = fake.answers.shift() ?? TEXT_ANSWER;
      if (Array.isArray(answer)) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(answer.map((e) => `data: ${JSON.stringify(e)}\r\n\r\n`).join(''));
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1beta`;
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return fake;
}

async function setup(t: Test, provider: Record<string, unknown> = {}) {
  const up = await fakeGemini(t);
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { gemini: { base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_GEMINI_FIDELITY_KEY', ...provider } } });
  return { up, url: `${gw.url}/v1/chat/completions` };
}

const user = (content: unknown) => ({ role: 'user', content });

t.test('request: structured output, logprobs, seed, n, penalties, thinking and passed fields', async (t) => {
  const { up, url } = await setup(t);
  const schema = { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties: { a: { $ref: '#/$defs/n' } }, required: ['a'], additionalProperties: false, $defs: { n: { type: 'integer' } } };
  const res = await postJson(url, {
    model: 'gemini/gemini-2.5-flash',
    messages: [user('hi')],
    response_format: { type: 'json_schema', json_schema: { name: 'answer', description: 'The answer', strict: true, schema } },
    logprobs: true,
    top_logprobs: 3,
    seed: 42,
    n: 2,
    presence_penalty: 0.5,
    frequency_penalty: 0.25,
    top_k: 20,
    max_completion_tokens: 100,
    reasoning_effort: 'medium',
    stream_options: null,
    service_tier: 'auto',
    store: false,
    logit_bias: {},
    modalities: ['text'],
    parallel_tool_calls: true,
  });
  t.equal(res.status, 200, res.text);
  t.same(up.seen[0]?.json.generationConfig, {
    topK: 20,
    maxOutputTokens: 100,
    candidateCount: 2,
    presencePenalty: 0.5,
    frequencyPenalty: 0.25,
    seed: 42,
    responseLogprobs: true,
    logprobs: 3,
    responseMimeType: 'application/json',
    responseJsonSchema: { type: 'object', properties: { a: { $ref: '#/$defs/n' } }, required: ['a'], additionalProperties: false, $defs: { n: { type: 'integer' } }, description: 'The answer' },
    thinkingConfig: { thinkingBudget: 8192 },
  }, 'the schema goes whole ($defs, $ref, additionalProperties), the effort as a budget');

  await postJson(url, { model: 'gemini/gemini-3-pro-preview', messages: [user('hi')], reasoning_effort: 'low' });
  t.same(up.seen[1]?.json.generationConfig, { thinkingConfig: { thinkingLevel: 'low' } }, 'Gemini 3 takes the effort as a level');

  await postJson(url, { model: 'gemini/gemini-2.5-flash', messages: [user('hi')], thinking: { type: 'enabled', budget_tokens: 2048 }, response_format: { type: 'json_object' } });
  t.same(up.seen[2]?.json.generationConfig, { responseMimeType: 'application/json', thinkingConfig: { thinkingBudget: 2048, includeThoughts: true } }, 'Anthropic thinking is a budget, thoughts included');

  const noLogprobs = await postJson(url, { model: 'gemini/gemini-2.5-flash', messages: [user('hi')], top_logprobs: 2 });
  t.equal(noLogprobs.status, 400);
  t.equal(noLogprobs.json.error.param, 'top_logprobs');
});

t.test('request: files, audio, multimodal and failed tool results, strict tools, thought signatures back', async (t) => {
  const { up, url } = await setup(t);
  const res = await postJson(url, {
    model: 'gemini/gemini-2.5-flash',
    messages: [
      user([
        { type: 'text', text: 'Read:' },
        { type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'x.pdf' } },
        { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } },
      ]),
      {
        role: 'assistant',
        content: 'Looking.',
        reasoning_content: 'earlier thoughts, not sent',
        extra_content: { google: { thought_signature: 'sig-text' } },
        tool_calls: [
          { id: 'c1', type: 'function', function: { name: 'look', arguments: '{"q":1}' }, extra_content: { google: { thought_signature: 'sig-call' } } },
          { id: 'c2', type: 'function', function: { name: 'look', arguments: '{"q":2}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: 'a chart:' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBO' } }] },
      { role: 'tool', tool_call_id: 'c2', content: 'not found', is_error: true },
    ],
    tools: [{ type: 'function', function: { name: 'look', strict: true, parameters: { type: 'object', properties: { q: { type: 'integer' } } } } }],
  });
  t.equal(res.status, 200, res.text);
  t.same(up.seen[0]?.json.contents, [
    { role: 'user', parts: [{ text: 'Read:' }, { inlineData: { mimeType: 'application/pdf', data: 'JVBERi0=' } }, { inlineData: { mimeType: 'audio/wav', data: 'UklGRg==' } }] },
    { role: 'model', parts: [
      { text: 'Looking.', thoughtSignature: 'sig-text' },
      { functionCall: { name: 'look', args: { q: 1 } }, thoughtSignature: 'sig-call' },
      { functionCall: { name: 'look', args: { q: 2 } } },
    ] },
    { role: 'user', parts: [
      { functionResponse: { name: 'look', response: { content: 'a chart:' } } },
      { inlineData: { mimeType: 'image/png', data: 'iVBO' } },
      { functionResponse: { name: 'look', response: { error: 'not found' } } },
    ] },
  ]);
  t.same(up.seen[0]?.json.toolConfig, { functionCallingConfig: { mode: 'VALIDATED' } }, 'a strict tool has its calls validated');
  const strictTool = { type: 'function', function: { name: 'look', strict: true, parameters: { type: 'object' } } };
  await postJson(url, { model: 'gemini/gemini-2.5-flash', messages: [user('a')], tools: [strictTool], tool_choice: 'auto' });
  t.same(up.seen.at(-1)?.json.toolConfig, { functionCallingConfig: { mode: 'VALIDATED' } }, 'auto with a strict tool is VALIDATED too');
  await postJson(url, { model: 'gemini/gemini-2.5-flash', messages: [user('a')], tools: [{ type: 'function', function: { name: 'look' } }], tool_choice: 'auto' });
  t.same(up.seen.at(-1)?.json.toolConfig, { functionCallingConfig: { mode: 'AUTO' } });

  // A signature with no text to sit on gets an empty text part, where Gemini put it.
  await postJson(url, { model: 'gemini/gemini-2.5-flash', messages: [user('a'), { role: 'assistant', content: '', extra_content: { google: { thought_signature: 's' } } }, user('b')] });
  t.same(up.seen.at(-1)?.json.contents[1], { role: 'model', parts: [{ text: '', thoughtSignature: 's' }] });
});

/** A request with one of each field Gemini can't express, and where each is named. */
const UNEXPRESSIBLE = {
  model: 'gemini/gemini-2.5-flash',
  messages: [
    { role: 'system', content: [{ type: 'text', text: 'sys', cache_control: { type: 'ephemeral' } }] },
    { role: 'user', name: 'ann', content: 'hi' },
    { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://e.com/a.png', detail: 'high' } }] },
    { role: 'assistant', content: 'x', thinking_blocks: [{ type: 'thinking', thinking: 't', signature: 'anthropic-sig' }] },
    { role: 'user', content: [{ type: 'file', file: { file_id: 'file-abc' } }] },
    { role: 'user', content: [{ type: 'text', text: 'c', cache_control: { type: 'ephemeral' } }] },
  ],
  tools: [
    { type: 'function', function: { name: 'f', parameters: { type: 'object' } }, cache_control: { type: 'ephemeral' } },
    { type: 'web_search_20250305', name: 'web_search' },
  ],
  parallel_tool_calls: false,
  logit_bias: { '50256': -100 },
  user: 'u-1',
  safety_identifier: 'sid',
  prompt_cache_key: 'pck',
  metadata: { team: 'a' },
  store: true,
  service_tier: 'priority',
  modalities: ['text', 'audio'],
  audio: { voice: 'alloy', format: 'wav' },
  prediction: { type: 'content', content: 'x' },
  web_search_options: {},
  verbosity: 'low',
  container: 'anthropic-only',
};

const UNEXPRESSIBLE_NAMES = [
  'messages[0].content[0].cache_control',
  'messages[1].name',
  'messages[2].content[0].image_url.detail',
  'messages[3].thinking_blocks',
  'messages[4].content[0].file.file_id',
  'messages[5].content[0].cache_control',
  'tools[0].cache_control',
  'tools[1]',
  'parallel_tool_calls',
  'logit_bias',
  'user',
  'safety_identifier',
  'prompt_cache_key',
  'metadata',
  'store',
  'service_tier',
  'modalities',
  'audio',
  'prediction',
  'web_search_options',
  'verbosity',
  'container',
];

t.test('refused by default: a 400 naming the field, and nothing sent upstream', async (t) => {
  const { up, url } = await setup(t);
  for (const name of UNEXPRESSIBLE_NAMES) {
    const res = await postJson(url, only(name));
    t.equal(res.status, 400, name);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_FIELD_UNSUPPORTED', name);
    t.equal(res.json.error.param, name, name);
  }
  t.equal(up.seen.length, 0);
});

/** UNEXPRESSIBLE with only the named field's unexpressible part kept. */
function only(name: string): Record<string, unknown> {
  const plain: any = {
    model: UNEXPRESSIBLE.model,
    messages: [{ role: 'system', content: 'sys' }, user('hi'), user('more'), { role: 'assistant', content: 'x' }, user('more'), user('more')],
  };
  const req: any = structuredClone(UNEXPRESSIBLE);
  const top = /^(\w+)/.exec(name)?.[1] as string;
  if (top === 'messages') {
    const i = Number(/^messages\[(\d)\]/.exec(name)?.[1]);
    plain.messages[i] = req.messages[i];
  } else if (top === 'tools') {
    plain.tools = [req.tools[Number(/^tools\[(\d)\]/.exec(name)?.[1])]];
    if (name === 'tools[1]') return { ...plain, tools: [{ type: 'function', function: { name: 'f' } }, req.tools[1]] };
  } else plain[top] = req[top];
  return plain;
}

t.test('drop_unsupported: the same fields left out, named in x-heimdall-dropped', async (t) => {
  const { up, url } = await setup(t, { drop_unsupported: true });
  const res = await postJson(url, UNEXPRESSIBLE);
  t.equal(res.status, 200, res.text);
  const kinds = [...new Set(UNEXPRESSIBLE_NAMES.map((n) => n.replace(/\[\d+\]/g, '[*]')))].sort();
  t.same(res.headers.get('x-heimdall-dropped')?.split(', ').sort(), kinds, 'one name per kind of field');
  const sent = up.seen[0]?.json;
  t.same(sent.contents, [
    { role: 'user', parts: [{ text: 'hi' }, { fileData: { mimeType: 'image/png', fileUri: 'https://e.com/a.png' } }] },
    { role: 'model', parts: [{ text: 'x' }] },
    { role: 'user', parts: [{ text: 'c' }] },
  ], 'a message with nothing left leaves no turn');
  t.same(sent.tools, [{ functionDeclarations: [{ name: 'f', parametersJsonSchema: { type: 'object' } }] }]);
  t.same(Object.keys(sent).sort(), ['contents', 'systemInstruction', 'tools']);
});

t.test('answer: thoughts, signatures, logprobs, several candidates, token details', async (t) => {
  const { up, url } = await setup(t);
  up.answers.push({
    candidates: [
      {
        content: { role: 'model', parts: [
          { text: 'Thinking it over.', thought: true },
          { text: 'Let me look.' },
          { functionCall: { name: 'look', args: { q: 1 } }, thoughtSignature: 'sig-call' },
          { functionCall: { name: 'look', args: { q: 2 } } },
        ] },
        finishReason: 'STOP',
        index: 0,
      },
      {
        content: { role: 'model', parts: [{ text: 'Hé' }, { text: '', thoughtSignature: 'sig-text' }] },
        finishReason: 'MAX_TOKENS',
        index: 1,
        logprobsResult: {
          chosenCandidates: [{ token: 'Hé', tokenId: 5, logProbability: -0.5 }],
          topCandidates: [{ candidates: [{ token: 'Hé', logProbability: -0.5 }, { token: 'Hi', logProbability: -1.5 }] }],
        },
      },
    ],
    usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 5, thoughtsTokenCount: 7, cachedContentTokenCount: 4, totalTokenCount: 22 },
    responseId: 'r2',
  });
  const res = await postJson(url, { model: 'gemini/gemini-2.5-flash', messages: [user('hi')], n: 2, logprobs: true, top_logprobs: 2 });
  t.equal(res.status, 200, res.text);
  const [first, second] = res.json.choices;
  t.same(first, {
    index: 0,
    message: {
      role: 'assistant',
      content: 'Let me look.',
      reasoning_content: 'Thinking it over.',
      tool_calls: [
        { id: 'call_0', type: 'function', function: { name: 'look', arguments: '{"q":1}' }, extra_content: { google: { thought_signature: 'sig-call' } } },
        { id: 'call_1', type: 'function', function: { name: 'look', arguments: '{"q":2}' } },
      ],
    },
    finish_reason: 'tool_calls',
    logprobs: null,
  });
  t.same(second, {
    index: 1,
    message: { role: 'assistant', content: 'Hé', extra_content: { google: { thought_signature: 'sig-text' } } },
    finish_reason: 'length',
    logprobs: {
      content: [{ token: 'Hé', logprob: -0.5, bytes: [72, 195, 169], top_logprobs: [{ token: 'Hé', logprob: -0.5, bytes: [72, 195, 169] }, { token: 'Hi', logprob: -1.5, bytes: [72, 105] }] }],
      refusal: null,
    },
  });
  t.same(res.json.usage, {
    prompt_tokens: 10,
    completion_tokens: 12,
    total_tokens: 22,
    prompt_tokens_details: { cached_tokens: 4 },
    completion_tokens_details: { reasoning_tokens: 7 },
  });

  // The answer's message, sent back as it came, carries its signatures to Gemini.
  await postJson(url, {
    model: 'gemini/gemini-2.5-flash',
    messages: [user('hi'), first.message, { role: 'tool', tool_call_id: 'call_0', content: '{"r":1}' }, { role: 'tool', tool_call_id: 'call_1', content: '{"r":2}' }],
  });
  t.same(up.seen[1]?.json.contents.slice(1), [
    { role: 'model', parts: [
      { text: 'Let me look.' },
      { functionCall: { name: 'look', args: { q: 1 } }, thoughtSignature: 'sig-call' },
      { functionCall: { name: 'look', args: { q: 2 } } },
    ] },
    { role: 'user', parts: [{ functionResponse: { name: 'look', response: { r: 1 } } }, { functionResponse: { name: 'look', response: { r: 2 } } }] },
  ], 'reasoning_content is not sent back; the signature is');
});

t.test('stream: reasoning_content deltas, the signature on the call that starts, logprobs, usage details', async (t) => {
  const { up, url } = await setup(t);
  const event = (parts: object[], extra: object = {}) => ({ candidates: [{ content: { role: 'model', parts }, index: 0, ...extra }], responseId: 'r3' });
  up.answers.push([
    event([{ text: 'Hmm.', thought: true }]),
    event([{ text: 'Ok', thoughtSignature: 'sig-t' }], { logprobsResult: { chosenCandidates: [{ token: 'Ok', logProbability: -0.1 }], topCandidates: [{ candidates: [{ token: 'Ok', logProbability: -0.1 }] }] } }),
    {
      ...event([{ functionCall: { name: 'look', args: {} }, thoughtSignature: 'sig-s' }], { finishReason: 'STOP' }),
      usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 2, thoughtsTokenCount: 4, cachedContentTokenCount: 1, totalTokenCount: 9 },
    },
  ]);
  const res = await postJson(url, { model: 'gemini/gemini-2.5-flash', messages: [user('hi')], stream: true, stream_options: { include_usage: true } });
  const data = sseData(res.text);
  t.equal(data.at(-1), '[DONE]');
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  t.same(chunks.map((c) => c.choices[0].delta), [
    { role: 'assistant', reasoning_content: 'Hmm.' },
    { content: 'Ok', extra_content: { google: { thought_signature: 'sig-t' } } },
    { tool_calls: [{ index: 0, id: 'call_0', type: 'function', function: { name: 'look', arguments: '{}' }, extra_content: { google: { thought_signature: 'sig-s' } } }] },
  ]);
  t.same(chunks[1].choices[0].logprobs, { content: [{ token: 'Ok', logprob: -0.1, bytes: [79, 107], top_logprobs: [{ token: 'Ok', logprob: -0.1, bytes: [79, 107] }] }], refusal: null });
  t.equal(chunks[2].choices[0].finish_reason, 'tool_calls');
  t.same(chunks[2].usage, { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9, prompt_tokens_details: { cached_tokens: 1 }, completion_tokens_details: { reasoning_tokens: 4 } });

  // Two candidates: each choice's first delta has the role, each counts its own tool calls.
  up.answers.push([
    { candidates: [{ content: { parts: [{ text: 'a' }] }, index: 0 }, { content: { parts: [{ functionCall: { name: 'look', args: {} } }] }, index: 1 }] },
    { candidates: [{ content: { parts: [{ functionCall: { name: 'look', args: {} } }] }, index: 0, finishReason: 'STOP' }, { content: { parts: [] }, index: 1, finishReason: 'STOP' }] },
  ]);
  const two = sseData((await postJson(url, { model: 'gemini/gemini-2.5-flash', messages: [user('hi')], stream: true, n: 2 })).text).slice(0, -1).map((d) => JSON.parse(d));
  t.same(two[0].choices.map((c: any) => c.delta.role), ['assistant', 'assistant']);
  t.same(two.flatMap((c) => c.choices.flatMap((ch: any) => (ch.delta.tool_calls ?? []).map((tc: any) => [ch.index, tc.index, tc.id]))), [[1, 0, 'call_0'], [0, 0, 'call_1']]);
  t.same(two[1].choices.map((c: any) => c.finish_reason), ['tool_calls', 'tool_calls']);
});
