/**
 * Server-sent events in the OpenAI streaming format: `data: <json>` per chunk, `data: [DONE]` at the end, and an
 * `{"error": ...}` event when the stream fails part-way.
 */
import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import { errorBody } from '../errors.js';
import type { StreamEvent } from '../pipeline/pipeline.js';

export async function writeEventStream(
  res: ServerResponse,
  headers: Record<string, string>,
  events: AsyncIterable<StreamEvent>,
): Promise<void> {
  res.writeHead(200, {
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  for await (const event of events) {
    if (res.destroyed) break;
    if (event.error !== undefined) {
      res.end(`data: ${JSON.stringify(errorBody(event.error))}\n\n`);
      return;
    }
    // Respect backpressure: a slow client slows the upstream read instead of growing memory.
    if (!res.write(`data: ${event.data}\n\n`)) await once(res, 'drain');
  }
  if (!res.destroyed) res.end('data: [DONE]\n\n');
}
