// One hook call through koffi, by request size: what the pipeline pays per plugin per hook when the plugin answers
// "unchanged", next to the JSON work that passing bytes through lets it skip.
//
//   koffi call       NativeLibrary.pre: the FFI call itself and the check of the out-slot (abi.ts)
//   hook call        NativePlugin.preHook: the above plus the status check, as the pipeline calls it
//   with metrics     the same through the metrics decorator, as the gateway runs it
//   JSON.parse       parsing the request once, what a plugin's changed request costs the gateway to decode
//   JSON.stringify   serialising it once, what handing a plugin a value (not bytes) would cost per hook
//
// And the gateway's validation of a chat request (pipeline/validate.ts), next to JSON.parse of the same body, for a
// typical request (system + 6 turns + 2 tools) and a large one (100 messages).
//
// Run by bench/run.mjs in a child process of its own; `node bench/micro.mjs <plugin.so>` prints the same JSON.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeLibrary } from '../dist/plugins/abi.js';
import { loadPlugin } from '../dist/plugins/loader.js';
import { RequestContext } from '../dist/pipeline/context.js';
import { HookMetrics } from '../dist/metrics/hook-stats.js';
import { InstrumentedPlugin } from '../dist/metrics/instrumented-plugin.js';
import { validateChatRequest } from '../dist/pipeline/validate.js';
import { chatRequest } from './request.mjs';

export const SIZES = [1024, 10 * 1024, 100 * 1024];

let sink; // results go here, so that nothing measured can be optimised away

/** Nanoseconds per call: the median of several rounds of about `roundMs` each, after a warm-up. */
export function measure(fn, roundMs = 120, rounds = 7) {
  let iterations = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) sink = fn();
    if (performance.now() - t0 > roundMs / 4) break;
    iterations *= 2;
  }
  iterations *= 4;
  const perCall = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) sink = fn();
    perCall.push(Number(process.hrtime.bigint() - t0) / iterations);
  }
  perCall.sort((a, b) => a - b);
  return perCall[Math.floor(rounds / 2)];
}

export async function runMicro(pluginFile) {
  const lib = new NativeLibrary(pluginFile);
  const plugin = await loadPlugin(pluginFile, { config: {}, takenNames: new Set() });
  const instrumented = new InstrumentedPlugin(plugin, new HookMetrics());
  const ctx = new RequestContext('0b1c6c1e-6d43-4c4e-9a59-6a3c1f0e2d11', '/v1/chat/completions', {
    host: '127.0.0.1:8080', 'content-type': 'application/json', 'user-agent': 'OpenAI/JS 4.0', accept: 'application/json',
  });
  ctx.setTarget('openai', 'gpt-4o-mini', false);
  const ctxBytes = ctx.bytes();
  const results = SIZES.map((size) => {
    const request = chatRequest(size);
    const value = JSON.parse(request.toString('utf8'));
    const row = {
      bytes: request.length,
      koffi_call_ns: measure(() => lib.pre(ctxBytes, request)),
      hook_call_ns: measure(() => plugin.preHook(ctxBytes, request)),
      hook_call_with_metrics_ns: measure(() => instrumented.preHook(ctxBytes, request)),
      json_parse_ns: measure(() => JSON.parse(request.toString('utf8'))),
      json_stringify_ns: measure(() => Buffer.from(JSON.stringify(value))),
    };
    if (lib.pre(ctxBytes, request).output !== undefined || plugin.preHook(ctxBytes, request).kind !== 'continue') {
      throw new Error('the benchmark plugin must answer "unchanged"');
    }
    return row;
  });
  plugin.close();
  return { context_bytes: ctxBytes.length, sizes: results, validation: runValidation() };
}

const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] } } },
  { type: 'function', function: { name: 'search', description: 'Search the web', parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] } } },
];

/** A system prompt, then `turns` messages: user and assistant in turn, every third exchange a tool call and its result. */
function conversation(turns) {
  const messages = [{ role: 'system', content: 'You are a helpful assistant. Answer briefly.' }];
  for (let i = 0; messages.length <= turns; i++) {
    messages.push({ role: 'user', content: `Question ${i}: what is the weather like in Paris today, and should I take an umbrella?` });
    if (i % 3 === 1) {
      messages.push({ role: 'assistant', content: null, tool_calls: [{ id: `call_${i}`, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] });
      messages.push({ role: 'tool', tool_call_id: `call_${i}`, content: '{"temperature": 18, "sky": "cloudy", "rain": 0.4}' });
    } else {
      messages.push({ role: 'assistant', content: `Answer ${i}: about 18C and cloudy; a light rain is likely in the afternoon, so yes.` });
    }
  }
  messages.length = turns + 1;
  return { model: 'openai/gpt-4o-mini', messages, tools: TOOLS, temperature: 0.2, max_tokens: 256, stream: false };
}

/** Validating a chat request, in ns, and as a share of parsing its body. */
function runValidation() {
  return [['typical', conversation(6)], ['large', conversation(100)]].map(([name, request]) => {
    const body = Buffer.from(JSON.stringify(request));
    const value = JSON.parse(body.toString('utf8'));
    validateChatRequest(value); // throws if the benchmark's own request is malformed
    const validate_ns = measure(() => validateChatRequest(value));
    const json_parse_ns = measure(() => JSON.parse(body.toString('utf8')));
    return { request: name, messages: request.messages.length, bytes: body.length, validate_ns, json_parse_ns, validate_to_parse: validate_ns / json_parse_ns };
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/micro.mjs <plugin.so>');
    process.exit(2);
  }
  const result = await runMicro(file);
  if (process.send) process.send(result);
  else console.log(JSON.stringify(result, null, 2));
}
