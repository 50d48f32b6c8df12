/**
 * Writing a pipeline's stream to the client as server-sent events. The loop is the same for every wire format:
 * headers, one frame per chunk with backpressure, one closing frame (the end, or the error when the stream fails
 * part-way), and iteration to the end so the pipeline's PostHooks run. Only the frames differ: an EventFraming
 * says what each event is written as.
 */
import type { ServerResponse } from 'node:http';
import { errorBody } from '../errors.js';
import type { StreamEvent } from '../pipeline/pipeline.js';
import type { AbiError } from '../plugins/plugin.js';
import type { StreamChunk } from '../providers/provider.js';

/** What each stream event is written as, in one wire format. */
export interface EventFraming {
  /** The text for one chunk; '' writes nothing. */
  chunk(chunk: StreamChunk): string;
  /** The text that ends a stream that finished. */
  done(): string;
  /** The text that ends a stream that failed part-way. */
  error(error: AbiError): string;
}

/**
 * OpenAI's streaming format: `data: <json>` per chunk (the chunk's text as it came, never re-serialised),
 * `data: [DONE]` at the end, and an `{"error": ...}` event when the stream fails part-way.
 */
export const OPENAI_FRAMING: EventFraming = {
  chunk: (chunk) => `data: ${chunk.text}\n\n`,
  done: () => 'data: [DONE]\n\n',
  error: (error) => `data: ${JSON.stringify(errorBody(error))}\n\n`,
};

export async function writeEventStream(
  res: ServerResponse,
  headers: Record<string, string>,
  events: AsyncIterable<StreamEvent>,
  framing: EventFraming = OPENAI_FRAMING,
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
      case 'chunk': {
        const out = framing.chunk(event.chunk);
        // Respect backpressure: a slow client slows the upstream read instead of growing memory.
        if (out !== '' && !res.write(out)) await drained(res);
        break;
      }
      case 'done':
        res.end(framing.done());
        break;
      case 'error':
        res.end(framing.error(event.error));
        break;
    }
  }
  if (!res.writableEnded) res.end();
}

/** Resolves when the client can take more, or is gone (a closed socket never drains). */
function drained(res: ServerResponse): Promise<void> {
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
