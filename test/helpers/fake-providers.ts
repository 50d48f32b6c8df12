/**
 * Loopback servers that speak each provider's wire format (OpenAI, Azure OpenAI, Anthropic Messages, Gemini), for
 * chat, streaming and embeddings, with fault injection. Every request is recorded with the key it carried, the
 * model it asked for, when it arrived, and whether the gateway hung up before the answer was complete.
 *
 * What a request gets, first match wins:
 *   1. the next fault queued with `queue(...)` (one per request);
 *   2. a fault set for its key in `keyFaults`, or for its model in `modelFaults`;
 *   3. by model name: "tool" answers with a get_weather tool call; "slow-stream" streams a word every 50 ms;
 *      anything else answers "upstream says: <the last user text>".
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Wire = 'openai' | 'azure' | 'anthropic' | 'gemini';

export type Fault =
  /** An error answer in the wire's own error shape. */
  | { status: number; retryAfter?: string; message?: string }
  /** The normal answer, this much later. */
  | { slowMs: number }
  /** The connection is destroyed before any answer. */
  | { reset: 'before' }
  /** A stream sends its first event, then the connection is destroyed. */
  | { reset: 'mid-stream' }
  /** A stream sends its first event, then nothing, forever. */
  | { stall: 'mid-stream' }
  /** A stream sends its first event, then an error event in the wire's own shape. */
  | { streamError: true }
  /** 200 with a body that is not JSON (when streaming: an event whose data is not JSON, first). */
  | { malformed: true };

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
  key: string | undefined;
  model: string;
  stream: boolean;
  operation: 'chat' | 'embeddings' | 'other';
  /** ms since the server started */
  at: number;
  /** Order of arrival across every fake provider of the process, for fallback order across upstreams. */
  seq: number;
  /** The gateway hung up before the answer was complete. */
  aborted: boolean;
}

export interface FakeProvider {
  wire: Wire;
  /** What the provider's base_url should be. */
  baseUrl: string;
  seen: SeenRequest[];
  queue(...faults: Fault[]): void;
  keyFaults: Map<string, Fault>;
  modelFaults: Map<string, Fault>;
  close(): Promise<void>;
}

export const WEATHER_ARGS = { city: 'Paris', unit: 'celsius' };

let arrivals = 0;

export async function startFakeProvider(t: { teardown(fn: () => unknown): void }, wire: Wire): Promise<FakeProvider> {
  const seen: SeenRequest[] = [];
  const queued: Fault[] = [];
  const keyFaults = new Map<string, Fault>();
  const modelFaults = new Map<string, Fault>();
  const started = Date.now();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      let json: any;
      try {
        json = body ? JSON.parse(body) : {};
      } catch {
        json = undefined;
      }
      const entry: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, json, ...describe(wire, req, json), at: Date.now() - started, seq: ++arrivals, aborted: false };
      seen.push(entry);
      res.on('close', () => {
        if (!res.writableFinished) entry.aborted = true;
      });
      const fault = queued.shift() ?? (entry.key !== undefined ? keyFaults.get(entry.key) : undefined) ?? modelFaults.get(entry.model);
      serve(wire, entry, fault, res, later);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  const baseUrl = wire === 'openai' ? `${origin}/v1` : wire === 'gemini' ? `${origin}/v1beta` : origin;
  const close = () =>
    new Promise<void>((resolve) => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.teardown(close);
  return { wire, baseUrl, seen, queue: (...faults) => queued.push(...faults), keyFaults, modelFaults, close };
}

// --- reading requests ------------------------------------------------------------------------------------------

function describe(wire: Wire, req: http.IncomingMessage, json: any): Pick<SeenRequest, 'key' | 'model' | 'stream' | 'operation'> {
  const url = new URL(req.url ?? '/', 'http://x');
  const header = (name: string) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  switch (wire) {
    case 'openai':
      return {
        key: header('authorization')?.replace(/^Bearer /, ''),
        model: json?.model ?? '',
        stream: json?.stream === true,
        operation: url.pathname.endsWith('/embeddings') ? 'embeddings' : url.pathname.endsWith('/chat/completions') ? 'chat' : 'other',
      };
    case 'azure': {
      const m = /\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(url.pathname);
      return {
        key: header('api-key'),
        model: m ? decodeURIComponent(m[1] as string) : '',
        stream: json?.stream === true,
        operation: m?.[2] === 'embeddings' ? 'embeddings' : m ? 'chat' : 'other',
      };
    }
    case 'anthropic':
      return { key: header('x-api-key'), model: json?.model ?? '', stream: json?.stream === true, operation: url.pathname === '/v1/messages' ? 'chat' : 'other' };
    case 'gemini': {
      const m = /\/models\/([^:]+):(\w+)$/.exec(url.pathname);
      const method = m?.[2] ?? '';
      return {
        key: header('x-goog-api-key'),
        model: m ? decodeURIComponent(m[1] as string) : '',
        stream: method === 'streamGenerateContent',
        operation: method.includes('mbed') ? 'embeddings' : method.includes('enerateContent') ? 'chat' : 'other',
      };
    }
  }
}

function lastUserText(wire: Wire, json: any): string {
  if (wire === 'gemini') {
    const user = [...(json?.contents ?? [])].reverse().find((c: any) => c.role === 'user');
    return (user?.parts ?? []).map((p: any) => p.text ?? '').join(' ').trim();
  }
  const user = [...(json?.messages ?? [])].reverse().find((m: any) => m.role === 'user');
  if (typeof user?.content === 'string') return user.content;
  return (user?.content ?? []).filter((p: any) => p.type === 'text').map((p: any) => p.text).join(' ');
}

// --- answering -------------------------------------------------------------------------------------------------

type Later = (ms: number, fn: () => void) => void;

function serve(wire: Wire, req: SeenRequest, fault: Fault | undefined, res: http.ServerResponse, later: Later): void {
  if (fault !== undefined && 'slowMs' in fault) {
    later(fault.slowMs, () => serve(wire, req, undefined, res, later));
    return;
  }
  if (fault !== undefined && 'status' in fault) return sendError(wire, res, fault);
  if (fault !== undefined && 'reset' in fault && fault.reset === 'before') {
    res.socket?.destroy();
    return;
  }
  if (fault !== undefined && 'malformed' in fault && !req.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"id": "broken", "choices": [');
    return;
  }
  if (req.operation === 'embeddings') return sendJson(res, 200, embeddings(wire, req));
  if (req.operation !== 'chat') return sendJson(res, 404, { error: { message: `no route ${req.method} ${req.url}` } });

  const tool = req.model === 'tool';
  const text = `upstream says: ${lastUserText(wire, req.json)}`;
  if (!req.stream) return sendJson(res, 200, completion(wire, req.model, text, tool));

  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const events = streamEvents(wire, req.model, text, tool);
  if (fault !== undefined && 'malformed' in fault) events.unshift({ data: '{"choices": [ not json' });
  const first = events.shift();
  if (first !== undefined) res.write(frame(first));
  if (fault !== undefined && 'reset' in fault) {
    later(20, () => res.socket?.destroy());
    return;
  }
  if (fault !== undefined && 'stall' in fault) return;
  if (fault !== undefined && 'streamError' in fault) {
    res.end(frame(streamErrorEvent(wire)));
    return;
  }
  const gap = req.model === 'slow-stream' ? 50 : 0;
  const next = () => {
    if (res.destroyed) return;
    const event = events.shift();
    if (event === undefined) return void res.end();
    res.write(frame(event));
    if (gap > 0) later(gap, next);
    else next();
  };
  next();
}

interface SseFrame {
  event?: string;
  data: string;
}

function frame(e: SseFrame): string {
  return (e.event !== undefined ? `event: ${e.event}\n` : '') + `data: ${e.data}\n\n`;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function sendError(wire: Wire, res: http.ServerResponse, fault: { status: number; retryAfter?: string; message?: string }): void {
  const message = fault.message ?? `injected ${fault.status}`;
  const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {};
  switch (wire) {
    case 'anthropic':
      return sendJson(res, fault.status, { type: 'error', error: { type: fault.status === 429 ? 'rate_limit_error' : 'api_error', message } }, headers);
    case 'gemini':
      return sendJson(res, fault.status, { error: { code: fault.status, message, status: fault.status === 429 ? 'RESOURCE_EXHAUSTED' : 'UNAVAILABLE' } }, headers);
    default:
      return sendJson(res, fault.status, { error: { message, type: fault.status === 429 ? 'rate_limit_error' : 'server_error', code: null } }, headers);
  }
}

function streamErrorEvent(wire: Wire): SseFrame {
  switch (wire) {
    case 'anthropic':
      return { event: 'error', data: JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }) };
    case 'gemini':
      return { data: JSON.stringify({ error: { code: 503, message: 'Overloaded', status: 'UNAVAILABLE' } }) };
    default:
      return { data: JSON.stringify({ error: { message: 'Overloaded', type: 'server_error' } }) };
  }
}

function embeddings(wire: Wire, req: SeenRequest): unknown {
  const vector = (i: number) => [0.1 * (i + 1), 0.2, 0.3];
  if (wire === 'gemini') {
    const requests: unknown[] = req.json?.requests ?? [req.json];
    return { embeddings: requests.map((_, i) => ({ values: vector(i) })) };
  }
  const input = req.json?.input;
  const inputs = Array.isArray(input) ? input : [input];
  return {
    object: 'list',
    data: inputs.map((_, i) => ({ object: 'embedding', index: i, embedding: req.json?.encoding_format === 'base64' ? base64Floats(vector(i)) : vector(i) })),
    model: req.model,
    usage: { prompt_tokens: 5, total_tokens: 5 },
  };
}

function base64Floats(values: number[]): string {
  return Buffer.from(Float32Array.from(values).buffer).toString('base64');
}

function completion(wire: Wire, model: string, text: string, tool: boolean): unknown {
  switch (wire) {
    case 'anthropic':
      return {
        id: 'msg_fake1',
        type: 'message',
        role: 'assistant',
        model,
        content: tool
          ? [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: WEATHER_ARGS }]
          : [{ type: 'text', text }],
        stop_reason: tool ? 'tool_use' : 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: 3, output_tokens: 4, cache_read_input_tokens: 2 },
      };
    case 'gemini':
      return {
        candidates: [
          {
            content: { role: 'model', parts: tool ? [{ text: 'Let me check.' }, { functionCall: { name: 'get_weather', args: WEATHER_ARGS } }] : [{ text }] },
            finishReason: 'STOP',
            index: 0,
          },
        ],
        usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 4, totalTokenCount: 7 },
        modelVersion: model,
        responseId: 'resp-fake1',
      };
    default:
      return {
        id: 'chatcmpl-fake1',
        object: 'chat.completion',
        created: 1,
        model,
        choices: [
          {
            index: 0,
            message: tool
              ? { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(WEATHER_ARGS) } }] }
              : { role: 'assistant', content: text },
            finish_reason: tool ? 'tool_calls' : 'stop',
          },
        ],
        usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
      };
  }
}

function streamEvents(wire: Wire, model: string, text: string, tool: boolean): SseFrame[] {
  const words = text.match(/\S+\s*/g) ?? [];
  const args = JSON.stringify(WEATHER_ARGS);
  const argPieces = [args.slice(0, 10), args.slice(10)];
  switch (wire) {
    case 'anthropic': {
      const ev = (type: string, body: object): SseFrame => ({ event: type, data: JSON.stringify({ type, ...body }) });
      const out: SseFrame[] = [
        ev('message_start', { message: { id: 'msg_fake1', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } } }),
        ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
        ev('ping', {}),
      ];
      for (const w of tool ? ['Let me check.'] : words) out.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: w } }));
      out.push(ev('content_block_stop', { index: 0 }));
      if (tool) {
        out.push(ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} } }));
        for (const p of argPieces) out.push(ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: p } }));
        out.push(ev('content_block_stop', { index: 1 }));
      }
      out.push(ev('message_delta', { delta: { stop_reason: tool ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: 4 } }));
      out.push(ev('message_stop', {}));
      return out;
    }
    case 'gemini': {
      const chunk = (parts: object[], last: boolean) => ({
        data: JSON.stringify({
          candidates: [{ content: { role: 'model', parts }, index: 0, ...(last ? { finishReason: 'STOP' } : {}) }],
          ...(last ? { usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 4, totalTokenCount: 7 } } : {}),
          modelVersion: model,
          responseId: 'resp-fake1',
        }),
      });
      if (tool) return [chunk([{ text: 'Let me check.' }], false), chunk([{ functionCall: { name: 'get_weather', args: WEATHER_ARGS } }], true)];
      return words.map((w, i) => chunk([{ text: w }], i === words.length - 1));
    }
    default: {
      const chunk = (delta: object, finish: string | null) => ({
        data: JSON.stringify({ id: 'chatcmpl-fake1', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta, finish_reason: finish }] }),
      });
      const out = [chunk({ role: 'assistant', content: '' }, null)];
      if (tool) {
        out.push(chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } }] }, null));
        for (const p of argPieces) out.push(chunk({ tool_calls: [{ index: 0, function: { arguments: p } }] }, null));
        out.push(chunk({}, 'tool_calls'));
      } else {
        for (const w of words) out.push(chunk({ content: w }, null));
        out.push(chunk({}, 'stop'));
      }
      out.push({ data: '[DONE]' });
      return out;
    }
  }
}
