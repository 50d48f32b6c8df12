/**
 * Server-sent events from an upstream response body, decoded as UTF-8 across chunk boundaries, one event at a time
 * as the bytes arrive. Leaving the loop early (the client went away) destroys the body, which cancels the upstream.
 */
import { createParser } from 'eventsource-parser';
import type { Readable } from 'node:stream';
import type { HeimdallError } from '../../errors.js';

export interface SseEvent {
  /** The `event:` field; undefined for plain `data:` events (OpenAI, Gemini). */
  event: string | undefined;
  data: string;
}

export async function* sseEvents(body: Readable, toError: (err: unknown) => HeimdallError): AsyncGenerator<SseEvent> {
  const queue: SseEvent[] = [];
  const parser = createParser({ onEvent: (e) => queue.push({ event: e.event, data: e.data }) });
  const decoder = new TextDecoder();
  try {
    for await (const piece of body) {
      parser.feed(typeof piece === 'string' ? piece : decoder.decode(piece as Buffer, { stream: true }));
      while (queue.length > 0) yield queue.shift() as SseEvent;
    }
    parser.feed(decoder.decode());
    parser.feed('\n\n'); // a last event without its blank line still counts
    while (queue.length > 0) yield queue.shift() as SseEvent;
  } catch (err) {
    throw toError(err);
  } finally {
    if (!body.destroyed) body.destroy();
  }
}
