/**
 * A real OpenAI-compatible server on loopback that answers by the API key a request carries (its bearer token): a
 * key can be made to answer 429 with a retry-after, or 401, and any other key gets a chat.completion. It records
 * which key each request carried, in order.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KeyAnswer {
  status: number;
  headers?: Record<string, string>;
}

export interface KeyedUpstream {
  baseUrl: string;
  /** The key of each request received, in order. */
  keysSeen: string[];
  close(): Promise<void>;
}

/** `answers`: key -> the refusal it gets (read at each request, so a test may change it); other keys get a 200. */
export async function startKeyedUpstream(t: { teardown(fn: () => unknown): void }, answers: Record<string, KeyAnswer>): Promise<KeyedUpstream> {
  const keysSeen: string[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const key = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      keysSeen.push(key);
      const refusal = answers[key];
      const [status, body] = refusal === undefined
        ? [200, completion()]
        : [refusal.status, { error: { message: refusal.status === 429 ? 'slow down' : 'invalid api key', type: refusal.status === 429 ? 'rate_limit_error' : 'authentication_error' } }];
      res.writeHead(status, { 'content-type': 'application/json', ...refusal?.headers });
      res.end(JSON.stringify(body));
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
  return { baseUrl: `http://127.0.0.1:${port}/v1`, keysSeen, close };
}

function completion() {
  return {
    id: 'chatcmpl-keyed',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-test',
    choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
}
