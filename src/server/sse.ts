/**
 * Server-sent events in the OpenAI streaming format: `data: <json>` per chunk (the chunk's text as it is, never
 * re-serialised), `data: [DONE]` at the end, and an `{"error": ...}` event when the stream fails part-way.
 */
import type { ServerResponse } from 'node:http';
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
  // Iterate to the end even after the last event is sent: the pipeline's PostHooks run when the iteration finishes.
  for await (const event of events) {
    if (res.destroyed) break;
    if (res.writableEnded) continue;
    switch (event.kind) {
      case 'chunk':
        // Respect backpressure: a slow client slows the upstream read instead of growing memory.
        if (!res.write(`data: ${event.chunk.text}\n\n`)) await drained(res);
        break;
      case 'done':
        res.end('data: [DONE]\n\n');
        break;
      case 'error':
        res.end(`data: ${JSON.stringify(errorBody(event.error))}\n\n`);
        break;
    }
  }
  if (!res.writableEnded) res.end();
}

/** Resolves when the client can take more, or is gone (a closed socket never drains). */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
