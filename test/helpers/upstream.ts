/**
 * A real OpenAI-compatible HTTP server on loopback, standing in for the internet's providers. It answers by the
 * requested model name, so one server covers the success and failure cases:
 *   any model          -> a chat.completion (or an SSE stream when "stream": true) echoing the last user message
 *   "fail-500"         -> 500 with an OpenAI error body
 *   "fail-429"         -> 429 with retry-after
 *   "slow"             -> answers after 2 s
 *   "garbage"          -> 200 with a body that is not JSON
 *   "break-stream"     -> streams two chunks, then resets the connection
 *   "pii"              -> answers (or streams, word by word) a text full of personal data
 * Every request it receives is recorded (headers and raw body).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Upstream {
  baseUrl: string;
  seen: Seen[];
  close(): Promise<void>;
}

export async function startUpstream(t: { teardown(fn: () => unknown): void }): Promise<Upstream> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      answer(JSON.parse(body || '{}'), res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.teardown(close);
  return { baseUrl: `http://127.0.0.1:${port}/v1`, seen, close };
}

function answer(req: { model?: string; stream?: boolean; messages?: { role: string; content: string }[] }, res: http.ServerResponse) {
  const model = req.model ?? '';
  const said = [...(req.messages ?? [])].reverse().find((m) => m.role === 'user')?.content ?? '';
  const content = model === 'pii' ? PII_TEXT : `upstream says: ${said}`;
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  switch (model) {
    case 'fail-500':
      return json(500, { error: { message: 'the model is overloaded', type: 'server_error' } });
    case 'fail-429':
      return json(429, { error: { message: 'slow down', type: 'rate_limit_error' } }, { 'retry-after': '7' });
    case 'garbage':
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"id": "chatcmpl-x", "choices": [');
    case 'slow':
      setTimeout(() => json(200, completion(model, content)), 2000).unref();
      return;
  }
  if (!req.stream) return json(200, completion(model, content));

  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const words = content.match(/\S+\s*/g) ?? [];
  const chunk = (delta: object, finish: string | null) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-up', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  res.write(chunk({ role: 'assistant', content: '' }, null));
  if (model === 'break-stream') {
    res.write(chunk({ content: words[0] ?? '' }, null));
    setTimeout(() => res.socket?.destroy(), 20).unref();
    return;
  }
  for (const w of words) res.write(chunk({ content: w }, null));
  res.write(chunk({}, 'stop'));
  res.end('data: [DONE]\n\n');
}

export const PII_TEXT = 'Write to john.doe@example.com or pay with 4111 1111 1111 1111 today';

function completion(model: string, content: string) {
  return {
    id: 'chatcmpl-up',
    object: 'chat.completion',
    created: 1,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
  };
}
