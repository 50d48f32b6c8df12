/**
 * The canonical chat request is validated before any plugin or provider sees it: each malformed request is a 400
 * HEIMDALL_ERR_BAD_REQUEST whose `param` names the offending field; valid but unusual requests (multimodal parts,
 * legacy fields, the canonical extensions, fields the gateway does not know) pass.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { probePlugins } from './helpers/fixtures.js';
import { postJson, startGateway } from './helpers/gateway.js';

const MODEL = 'mock/echo';
const USER = { role: 'user', content: 'hi' };
const CALL = { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } };
const TOOL = { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAAABJRU5ErkJggg==';

/** A request with one user message and these fields. */
const params = (extra: Record<string, unknown>) => ({ model: MODEL, messages: [USER], ...extra });
/** A request with these messages. */
const messages = (...list: unknown[]) => ({ model: MODEL, messages: list });
/** A user message with these content parts. */
const parts = (...list: unknown[]) => messages({ role: 'user', content: list });
/** An assistant turn with these fields, between two user turns. */
const assistant = (fields: Record<string, unknown>) => messages(USER, { role: 'assistant', ...fields }, USER);
/** A tool-calling turn, then a tool message with these fields. */
const toolMessage = (fields: Record<string, unknown>) => messages(USER, { role: 'assistant', content: null, tool_calls: [CALL] }, { role: 'tool', ...fields });
/** A request with one tool. */
const tool = (t: unknown) => params({ tools: [t] });
const fn = (f: Record<string, unknown>) => tool({ type: 'function', function: f });
/** `levels` arrays inside one another, as JSON text. */
const nested = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
/** An object `levels` deep: {"a": {"a": ... {}}}. */
const deepObject = (levels: number): unknown => JSON.parse('{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1));

/** [what, request (an object, or the body's exact text), the expected param]. */
const malformed: [string, unknown, string][] = [
  // messages
  ['no messages', { model: MODEL }, 'messages'],
  ['messages a string', { model: MODEL, messages: 'hi' }, 'messages'],
  ['messages empty', messages(), 'messages'],
  ['messages an object', { model: MODEL, messages: USER }, 'messages'],
  ['a message that is a string', messages('hi'), 'messages[0]'],
  ['a message that is null', messages(null), 'messages[0]'],
  ['a message that is an array', messages([USER]), 'messages[0]'],
  ['a message that is a number, later', messages(USER, 42), 'messages[1]'],
  ['no role', messages({ content: 'hi' }), 'messages[0].role'],
  ['an unknown role', messages({ role: 'robot', content: 'hi' }), 'messages[0].role'],
  ['a role in the wrong case', messages({ role: 'User', content: 'hi' }), 'messages[0].role'],
  ['a numeric role', messages({ role: 1, content: 'hi' }), 'messages[0].role'],
  ['user content a number', messages({ role: 'user', content: 42 }), 'messages[0].content'],
  ['user content null', messages({ role: 'user', content: null }), 'messages[0].content'],
  ['user content missing', messages({ role: 'user' }), 'messages[0].content'],
  ['user content an object', messages({ role: 'user', content: { type: 'text', text: 'hi' } }), 'messages[0].content'],
  ['user content an empty array', messages({ role: 'user', content: [] }), 'messages[0].content'],
  ['a part that is a string', parts('hi'), 'messages[0].content[0]'],
  ['a part that is an array', parts([{ type: 'text', text: 'hi' }]), 'messages[0].content[0]'],
  ['a text part without text', parts({ type: 'text' }), 'messages[0].content[0].text'],
  ['a text part with numeric text', parts({ type: 'text', text: 'a' }, { type: 'text', text: 5 }), 'messages[0].content[1].text'],
  ['a part without a type', parts({ text: 'hi' }), 'messages[0].content[0].type'],
  ['an Anthropic image block', parts({ type: 'image', source: { type: 'url', url: 'https://x/y.png' } }), 'messages[0].content[0].type'],
  ['a Responses API part', parts({ type: 'input_text', text: 'hi' }), 'messages[0].content[0].type'],
  ['image_url as a bare string', parts({ type: 'image_url', image_url: 'https://x/y.png' }), 'messages[0].content[0].image_url'],
  ['image_url without url', parts({ type: 'image_url', image_url: {} }), 'messages[0].content[0].image_url.url'],
  ['image_url with a numeric url', parts({ type: 'text', text: 'see' }, { type: 'image_url', image_url: { url: 42 } }), 'messages[0].content[1].image_url.url'],
  ['image_url with an empty url', parts({ type: 'image_url', image_url: { url: '' } }), 'messages[0].content[0].image_url.url'],
  ['image_url with an unknown detail', parts({ type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'ultra' } }), 'messages[0].content[0].image_url.detail'],
  ['input_audio missing', parts({ type: 'input_audio' }), 'messages[0].content[0].input_audio'],
  ['input_audio without data', parts({ type: 'input_audio', input_audio: { format: 'wav' } }), 'messages[0].content[0].input_audio.data'],
  ['input_audio of an unknown format', parts({ type: 'input_audio', input_audio: { data: 'AAAA', format: 'ogg' } }), 'messages[0].content[0].input_audio.format'],
  ['a file with neither data nor id', parts({ type: 'file', file: { filename: 'a.pdf' } }), 'messages[0].content[0].file'],
  ['a file with a numeric id', parts({ type: 'file', file: { file_id: 7 } }), 'messages[0].content[0].file.file_id'],
  ['a part with a string cache_control', parts({ type: 'text', text: 'x', cache_control: 'yes' }), 'messages[0].content[0].cache_control'],
  ['an image in a system message', messages({ role: 'system', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }, USER), 'messages[0].content[0].type'],
  ['system content a number', messages({ role: 'system', content: 5 }, USER), 'messages[0].content'],
  ['developer content null', messages({ role: 'developer', content: null }, USER), 'messages[0].content'],
  ['assistant content null without tool_calls', assistant({ content: null }), 'messages[1].content'],
  ['an image in an assistant message', assistant({ content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }), 'messages[1].content[0].type'],
  ['a refusal part in a user message', parts({ type: 'refusal', refusal: 'no' }), 'messages[0].content[0].type'],
  ['a refusal part without its text', assistant({ content: [{ type: 'refusal', refusal: 1 }] }), 'messages[1].content[0].refusal'],
  ['tool_calls an object', assistant({ content: null, tool_calls: CALL }), 'messages[1].tool_calls'],
  ['a tool call that is a string', assistant({ content: null, tool_calls: ['get_weather'] }), 'messages[1].tool_calls[0]'],
  ['a tool call without id', assistant({ content: null, tool_calls: [{ type: 'function', function: CALL.function }] }), 'messages[1].tool_calls[0].id'],
  ['a tool call of an unknown type', assistant({ content: null, tool_calls: [CALL, { ...CALL, type: 'fn' }] }), 'messages[1].tool_calls[1].type'],
  ['a tool call without function', assistant({ content: null, tool_calls: [{ id: 'c', type: 'function' }] }), 'messages[1].tool_calls[0].function'],
  ['a tool call without a name', assistant({ content: null, tool_calls: [{ ...CALL, function: { arguments: '{}' } }] }), 'messages[1].tool_calls[0].function.name'],
  ['tool call arguments as an object', assistant({ content: null, tool_calls: [{ ...CALL, function: { name: 'f', arguments: { city: 'Paris' } } }] }), 'messages[1].tool_calls[0].function.arguments'],
  ['a string extra_content', assistant({ content: null, tool_calls: [{ ...CALL, extra_content: 'x' }] }), 'messages[1].tool_calls[0].extra_content'],
  ['numeric reasoning_content', assistant({ content: 'ok', reasoning_content: 5 }), 'messages[1].reasoning_content'],
  ['thinking_blocks a string', assistant({ content: 'ok', thinking_blocks: 'hmm' }), 'messages[1].thinking_blocks'],
  ['a thinking block that is a string', assistant({ content: 'ok', thinking_blocks: ['hmm'] }), 'messages[1].thinking_blocks[0]'],
  ['a tool message without tool_call_id', toolMessage({ content: '18C' }), 'messages[2].tool_call_id'],
  ['a numeric tool_call_id', toolMessage({ tool_call_id: 1, content: '18C' }), 'messages[2].tool_call_id'],
  ['audio in a tool message', toolMessage({ tool_call_id: 'call_1', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }), 'messages[2].content[0].type'],
  ['a tool call with a string cache_control', assistant({ content: null, tool_calls: [{ ...CALL, cache_control: 'x' }] }), 'messages[1].tool_calls[0].cache_control'],
  ['a tool message with a string cache_control', toolMessage({ tool_call_id: 'call_1', content: 'x', cache_control: true }), 'messages[2].cache_control'],
  ['a string is_error', toolMessage({ tool_call_id: 'call_1', content: 'down', is_error: 'yes' }), 'messages[2].is_error'],
  ['a function message without name', messages(USER, { role: 'function', content: '18C' }), 'messages[1].name'],
  ['a numeric name', messages({ role: 'user', content: 'hi', name: 5 }), 'messages[0].name'],

  // parameters
  ['a numeric model', { model: 42, messages: [USER] }, 'model'],
  ['stream a string', params({ stream: 'yes' }), 'stream'],
  ['stream_options a string', params({ stream: true, stream_options: 'usage' }), 'stream_options'],
  ['include_usage a string', params({ stream: true, stream_options: { include_usage: 'yes' } }), 'stream_options.include_usage'],
  ['temperature a string', params({ temperature: '0.5' }), 'temperature'],
  ['temperature above 2', params({ temperature: 3 }), 'temperature'],
  ['temperature below 0', params({ temperature: -0.1 }), 'temperature'],
  ['top_p above 1', params({ top_p: 1.5 }), 'top_p'],
  ['n zero', params({ n: 0 }), 'n'],
  ['n a fraction', params({ n: 1.5 }), 'n'],
  ['n above 128', params({ n: 200 }), 'n'],
  ['max_tokens zero', params({ max_tokens: 0 }), 'max_tokens'],
  ['max_tokens negative', params({ max_tokens: -5 }), 'max_tokens'],
  ['max_tokens a fraction', params({ max_tokens: 10.5 }), 'max_tokens'],
  ['max_tokens a string', params({ max_tokens: '100' }), 'max_tokens'],
  ['max_completion_tokens zero', params({ max_completion_tokens: 0 }), 'max_completion_tokens'],
  ['presence_penalty above 2', params({ presence_penalty: 3 }), 'presence_penalty'],
  ['frequency_penalty below -2', params({ frequency_penalty: -2.5 }), 'frequency_penalty'],
  ['logprobs a string', params({ logprobs: 'true' }), 'logprobs'],
  ['top_logprobs above 20', params({ logprobs: true, top_logprobs: 21 }), 'top_logprobs'],
  ['seed a fraction', params({ seed: 1.5 }), 'seed'],
  ['seed a string', params({ seed: 'abc' }), 'seed'],
  ['top_k a string', params({ top_k: 'forty' }), 'top_k'],
  ['logit_bias an array', params({ logit_bias: [] }), 'logit_bias'],
  ['a logit bias above 100', params({ logit_bias: { 50256: 200 } }), 'logit_bias.50256'],
  ['a logit bias that is a string', params({ logit_bias: { 1: 5, 42: 'x' } }), 'logit_bias.42'],
  ['stop a number', params({ stop: 5 }), 'stop'],
  ['65 stop sequences', params({ stop: Array.from({ length: 65 }, (_, i) => `s${i}`) }), 'stop'],
  ['a numeric stop sequence', params({ stop: ['a', 1] }), 'stop[1]'],
  ['tools an object', params({ tools: TOOL }), 'tools'],
  ['a tool that is a string', params({ tools: ['get_weather'] }), 'tools[0]'],
  ['a tool without type', params({ tools: [TOOL, { function: TOOL.function }] }), 'tools[1].type'],
  ['a tool of an unknown type', tool({ type: 'retrieval' }), 'tools[0].type'],
  ['a function tool without function', tool({ type: 'function' }), 'tools[0].function'],
  ['a tool without a name', fn({ parameters: {} }), 'tools[0].function.name'],
  ['a tool name with a space', fn({ name: 'get weather' }), 'tools[0].function.name'],
  ['a tool name of 65 characters', fn({ name: 'x'.repeat(65) }), 'tools[0].function.name'],
  ['a numeric tool description', fn({ name: 'f', description: 5 }), 'tools[0].function.description'],
  ['tool parameters a string', fn({ name: 'f', parameters: '{"type":"object"}' }), 'tools[0].function.parameters'],
  ['tool parameters an array', fn({ name: 'f', parameters: [] }), 'tools[0].function.parameters'],
  ['tool strict a string', fn({ name: 'f', strict: 'yes' }), 'tools[0].function.strict'],
  ['a tool with a string cache_control', tool({ ...TOOL, cache_control: 'ephemeral' }), 'tools[0].cache_control'],
  ['tool_choice an unknown string', params({ tools: [TOOL], tool_choice: 'always' }), 'tool_choice'],
  ['tool_choice without function', params({ tools: [TOOL], tool_choice: { type: 'function' } }), 'tool_choice.function'],
  ['tool_choice without a name', params({ tools: [TOOL], tool_choice: { type: 'function', function: {} } }), 'tool_choice.function.name'],
  ['tool_choice in Anthropic\'s shape', params({ tools: [TOOL], tool_choice: { type: 'tool', name: 'get_weather' } }), 'tool_choice.type'],
  ['parallel_tool_calls a string', params({ parallel_tool_calls: 'no' }), 'parallel_tool_calls'],
  ['response_format a string', params({ response_format: 'json' }), 'response_format'],
  ['response_format of an unknown type', params({ response_format: { type: 'xml' } }), 'response_format.type'],
  ['json_schema missing', params({ response_format: { type: 'json_schema' } }), 'response_format.json_schema'],
  ['json_schema without a name', params({ response_format: { type: 'json_schema', json_schema: { schema: {} } } }), 'response_format.json_schema.name'],
  ['json_schema with a bad name', params({ response_format: { type: 'json_schema', json_schema: { name: 'my schema' } } }), 'response_format.json_schema.name'],
  ['json_schema schema a string', params({ response_format: { type: 'json_schema', json_schema: { name: 's', schema: 'object' } } }), 'response_format.json_schema.schema'],
  ['json_schema strict a string', params({ response_format: { type: 'json_schema', json_schema: { name: 's', strict: 'true' } } }), 'response_format.json_schema.strict'],
  ['user a number', params({ user: 5 }), 'user'],
  ['reasoning_effort a number', params({ reasoning_effort: 5 }), 'reasoning_effort'],
  ['thinking a string', params({ thinking: 'on' }), 'thinking'],
  ['fallbacks a string', params({ fallbacks: 'mock/echo' }), 'fallbacks'],
  ['a numeric fallback', params({ fallbacks: [1] }), 'fallbacks[0]'],
  ['functions a string', params({ functions: 'f' }), 'functions'],
  ['function_call an unknown string', params({ function_call: 'always' }), 'function_call'],

  // nesting
  ['an unknown field nested 100 deep', params({ x_extension: deepObject(100) }), 'x_extension'],
  ['a message\'s unknown field nested 100 deep', messages({ role: 'user', content: 'hi', meta: deepObject(100) }), 'messages[0]'],
  ['tool parameters nested 100 deep', fn({ name: 'f', parameters: deepObject(100) }), 'tools'],
  ['a body nested 200,000 deep', `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"x":${nested(200_000)}}`, 'x'],
  ['content nested 200,000 deep', `{"model":"${MODEL}","messages":[{"role":"user","content":${nested(200_000)}}]}`, 'messages[0].content[0]'],
];

/** [what, request]: unusual, but valid. */
const valid: [string, unknown][] = [
  ['a whole tool-calling conversation', messages(
    { role: 'system', content: 'Be brief.' },
    { role: 'developer', content: 'Use tools.' },
    USER,
    { role: 'assistant', content: null, tool_calls: [CALL] },
    { role: 'tool', tool_call_id: 'call_1', content: '18C' },
    { role: 'assistant', content: 'It is 18C.', name: 'bot' },
  )],
  ['multimodal user parts', parts(
    { type: 'text', text: 'what are these?' },
    { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}`, detail: 'high' } },
    { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'auto' } },
    { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } },
    { type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'a.pdf' } },
    { type: 'file', file: { file_id: 'file-abc' } },
  )],
  ['cache_control on parts and tools', {
    model: MODEL,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'long prefix', cache_control: { type: 'ephemeral', ttl: '1h' } }, { type: 'image_url', image_url: { url: 'https://x/y.png' }, cache_control: { type: 'ephemeral' } }] }],
    tools: [{ ...TOOL, cache_control: { type: 'ephemeral' } }],
  }],
  ['thinking, top_k and Anthropic server tools', params({ thinking: { type: 'enabled', budget_tokens: 2048 }, top_k: 40, tools: [TOOL, { type: 'web_search_20250305', name: 'web_search', max_uses: 3 }] })],
  ['an assistant turn with its thinking', assistant({
    content: [{ type: 'text', text: 'Looking.' }],
    reasoning_content: 'Let me think.',
    thinking_blocks: [{ type: 'thinking', thinking: 'Let me think.', signature: 'sig' }, { type: 'redacted_thinking', data: 'x' }],
  })],
  ['a turn of only thinking', assistant({ content: [], thinking_blocks: [{ type: 'redacted_thinking', data: 'x' }] })],
  ['tool results with parts, is_error and extra_content', messages(
    USER,
    { role: 'assistant', content: '', tool_calls: [{ ...CALL, extra_content: { google: { thought_signature: 'abc' } } }, { ...CALL, id: 'call_2' }] },
    { role: 'tool', tool_call_id: 'call_1', content: [{ type: 'text', text: 'here' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }], is_error: false },
    { role: 'tool', tool_call_id: 'call_2', content: 'service down', is_error: true, cache_control: { type: 'ephemeral' } },
  )],
  ['system and developer content as text parts', messages(
    { role: 'system', content: [{ type: 'text', text: 'One.' }, { type: 'text', text: 'Two.', cache_control: { type: 'ephemeral' } }] },
    { role: 'developer', content: [{ type: 'text', text: 'Three.' }] },
    USER,
  )],
  ['fallbacks', params({ fallbacks: ['mock/echo', 'mock/other'] })],
  ['the legacy function calling', {
    model: MODEL,
    messages: [USER, { role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '{}' } }, { role: 'function', name: 'get_weather', content: '18C' }],
    functions: [{ name: 'get_weather', description: 'Weather', parameters: { type: 'object' } }],
    function_call: { name: 'get_weather' },
  }],
  ['fields the gateway does not know, everywhere', {
    model: MODEL,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'hi', x_part: [1, { a: null }] }], x_message: { anything: true } }],
    metadata: { team: 'search' },
    store: false,
    modalities: ['text'],
    service_tier: 'auto',
    x_vendor: { deeply: { nested: { but: ['within', { the: 'limit' }] } } },
  }],
  ['null for every optional parameter', params({
    temperature: null, top_p: null, n: null, max_tokens: null, stop: null, tools: null, tool_choice: null, response_format: null,
    stream: null, stream_options: null, seed: null, logit_bias: null, user: null, fallbacks: null,
  })],
  ['every number at its edge', params({
    temperature: 2, top_p: 0, n: 128, max_tokens: 1, max_completion_tokens: 100000, presence_penalty: -2, frequency_penalty: 2,
    logprobs: true, top_logprobs: 20, seed: -42, logit_bias: { 50256: -100, 13: 100 }, top_k: 0,
  })],
  ['response formats', params({ response_format: { type: 'json_schema', json_schema: { name: 'weather-v1', description: 'A report', schema: { type: 'object' }, strict: true } } })],
  ['json_object', params({ response_format: { type: 'json_object' } })],
  ['tool choice as an object, strict tools', params({ tools: [{ ...TOOL, function: { ...TOOL.function, strict: true } }], tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false })],
  ['stream with usage', params({ stream: true, stream_options: { include_usage: true } })],
  ['an assistant refusal part', assistant({ content: [{ type: 'refusal', refusal: 'I can\'t.' }], refusal: 'I can\'t.' })],
  ['Anthropic blocks the Anthropic route carries', messages(
    { role: 'user', content: [{ type: 'search_result', source: 'https://x', title: 'X', content: [{ type: 'text', text: 'found' }] }] },
    { role: 'assistant', content: [{ type: 'server_tool_use', id: 'srv_1', name: 'web_search', input: { query: 'x' } }, { type: 'web_search_tool_result', tool_use_id: 'srv_1', content: [] }] },
    USER,
  )],
  ['a file part carrying an Anthropic document', parts({ type: 'file', file: {}, anthropic_document: { type: 'document', source: { type: 'url', url: 'https://x/p.pdf' } } })],
  ['stop as a string, and as four', params({ stop: 'END' })],
  ['four stop sequences', params({ stop: ['a', 'b', 'c', 'd'] })],
  ['user, reasoning_effort, an empty string content', { model: MODEL, messages: [{ role: 'user', content: '' }], user: 'u-1', reasoning_effort: 'low' }],
  ['an extension nested 60 deep', params({ x_extension: deepObject(60) })],
];

t.test('malformed requests are refused with the field they got wrong', async (t) => {
  t.ok(malformed.length >= 60, `${malformed.length} malformed requests`);
  const gw = await startGateway(t, { log: { level: 'error' }, providers: { mock: { type: 'mock' } } });
  for (const [what, body, param] of malformed) {
    const res = await postJson(`${gw.url}/v1/chat/completions`, body);
    t.equal(res.status, 400, `${what}: 400`);
    t.equal(res.json?.error?.code, 'HEIMDALL_ERR_BAD_REQUEST', `${what}: the code`);
    t.equal(res.json?.error?.param, param, `${what}: param ${param} (${res.json?.error?.message})`);
  }
});

t.test('valid but unusual requests pass', async (t) => {
  t.ok(valid.length >= 15, `${valid.length} valid requests`);
  const gw = await startGateway(t, { log: { level: 'error' }, providers: { mock: { type: 'mock' } } });
  for (const [what, body] of valid) {
    const res = await postJson(`${gw.url}/v1/chat/completions`, body);
    t.equal(res.status, 200, `${what}: 200 ${res.status === 200 ? '' : res.text}`);
  }
  const drop = await postJson(`${gw.url}/openai/v1/chat/completions`, { model: 'mock/echo', messages: [USER], temperature: 1 });
  t.equal(drop.status, 200, 'the drop-in OpenAI route too');
});

t.test('the refusal says what it expected and what came', async (t) => {
  const gw = await startGateway(t, { log: { level: 'error' }, providers: { mock: { type: 'mock' } } });
  const wrong = await postJson(`${gw.url}/v1/chat/completions`, parts({ type: 'text', text: 'see' }, { type: 'image_url', image_url: { url: 42 } }));
  t.same(wrong.json.error, {
    message: '"messages[0].content[1].image_url.url" must be a non-empty string (an http(s) or data: URL), got 42',
    type: 'invalid_request_error',
    param: 'messages[0].content[1].image_url.url',
    code: 'HEIMDALL_ERR_BAD_REQUEST',
  });
  const missing = await postJson(`${gw.url}/v1/chat/completions`, messages({ content: 'hi' }));
  t.match(missing.json.error.message, /^"messages\[0\]\.role" is missing: expected one of "system", "developer", "user"/);
  const role = await postJson(`${gw.url}/v1/chat/completions`, messages({ role: 'robot', content: 'hi' }));
  t.match(role.json.error.message, /got "robot"$/);
  const streamed = await postJson(`${gw.url}/v1/chat/completions`, params({ stream: true, temperature: 9 }));
  t.equal(streamed.status, 400, 'a streamed request is refused before its stream starts');
  t.equal(streamed.json.error.param, 'temperature');
});

t.test('the Anthropic route\'s requests still pass, extensions and all', async (t) => {
  const gw = await startGateway(t, { log: { level: 'error' }, providers: { mock: { type: 'mock' } } });
  const res = await postJson(`${gw.url}/anthropic/v1/messages`, {
    model: MODEL,
    max_tokens: 1024,
    system: [{ type: 'text', text: 'You are careful.' }, { type: 'text', text: 'A long manual...', cache_control: { type: 'ephemeral', ttl: '1h' } }],
    thinking: { type: 'enabled', budget_tokens: 512 },
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'Look it up.', signature: 'sig' },
          { type: 'text', text: 'Looking.' },
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: '18C' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }], is_error: false },
          { type: 'text', text: 'And these?', cache_control: { type: 'ephemeral' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
          { type: 'document', source: { type: 'url', url: 'https://example.com/paper.pdf' }, title: 'paper' },
          { type: 'search_result', source: 'https://x', title: 'X', content: [{ type: 'text', text: 'found' }] },
        ],
      },
    ],
    tools: [
      { name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } }, cache_control: { type: 'ephemeral' } },
      { type: 'web_search_20250305', name: 'web_search', max_uses: 2 },
    ],
    tool_choice: { type: 'auto', disable_parallel_tool_use: true },
    stop_sequences: ['END'],
    top_k: 40,
    metadata: { user_id: 'u-1' },
  });
  t.equal(res.status, 200, res.text);
  t.equal(res.json?.type, 'message');

  const plain = await postJson(`${gw.url}/anthropic/v1/messages`, { model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
  t.equal(plain.status, 200);
  const bad = await postJson(`${gw.url}/anthropic/v1/messages`, { model: MODEL, max_tokens: 10, temperature: 5, messages: [{ role: 'user', content: 'hi' }] });
  t.equal(bad.status, 400, 'an out-of-range parameter is refused there too');
  t.equal(bad.json?.error?.type, 'invalid_request_error');
});

t.test('a plugin never sees a malformed request', async (t) => {
  const probes = await probePlugins();
  const trace = path.join(mkdtempSync(path.join(tmpdir(), 'heimdall-validation-')), 'trace.jsonl');
  const read = (): any[] => (existsSync(trace) ? readFileSync(trace, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
  const gw = await startGateway(t, { log: { level: 'error' }, providers: { mock: { type: 'mock' } }, plugins: [{ path: probes.p1, config: { trace } }] });

  const refused = await postJson(`${gw.url}/v1/chat/completions`, messages(USER, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: { a: 1 } } }] }));
  t.equal(refused.status, 400);
  t.equal(refused.json.error.param, 'messages[1].tool_calls[0].function.arguments');
  t.same(read().filter((l) => l.hook === 'pre' || l.hook === 'post'), [], 'neither PreHook nor PostHook ran');

  const ok = await postJson(`${gw.url}/v1/chat/completions`, params({}));
  t.equal(ok.status, 200);
  t.equal(read().filter((l) => l.hook === 'pre').length, 1, 'a valid request reaches the plugin');
});
