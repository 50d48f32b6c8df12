/**
 * Server-sent events from an upstream response body, decoded as UTF-8 across chunk boundaries, one event at a time
 * as the bytes arrive. Leaving the loop early (the client went away) destroys the body, which cancels the upstream.
 *
 * The parser holds an unfinished line, and an unfinished event, until its end arrives: without a limit, a line that
 * never ends would grow until V8's string limit. So the bytes are measured before the parser sees them, and a line or
 * an event longer than `maxEventBytes` ends the stream with EventTooLarge; the parser never holds more than that.
 */
import { createParser } from 'eventsource-parser';
import type { Readable } from 'node:stream';
import type { HeimdallError } from '../../errors.js';

export interface SseEvent {
  /** The `event:` field; undefined for plain `data:` events (OpenAI, Gemini). */
  event: string | undefined;
  data: string;
}

/** What the stream fails with (passed to `toError`) when a line or an event is longer than the limit. */
export class EventTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`a stream line or event is larger than ${limit} bytes`);
    this.name = 'EventTooLarge';
  }
}

export async function* sseEvents(
  body: Readable,
  toError: (err: unknown) => HeimdallError,
  maxEventBytes = Infinity,
): AsyncGenerator<SseEvent> {
  const queue: SseEvent[] = [];
  const parser = createParser({ onEvent: (e) => queue.push({ event: e.event, data: e.data }) });
  const decoder = new TextDecoder();
  const sizes = new EventSizes(maxEventBytes);
  try {
    for await (const piece of body) {
      const bytes = typeof piece === 'string' ? Buffer.from(piece) : (piece as Buffer);
      sizes.measure(bytes);
      parser.feed(decoder.decode(bytes, { stream: true }));
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

const LF = 0x0a;
const CR = 0x0d;

/**
 * The length of the current line and of the current event (its lines so far, without their ends), across chunks.
 * SSE ends a line with \n, \r or \r\n, and an event with an empty line.
 */
class EventSizes {
  private line = 0;
  private event = 0;
  /** The last byte seen ended a line with \r: a \n straight after it belongs to the same line end. */
  private afterCR = false;

  constructor(private readonly limit: number) {}

  /** Throws EventTooLarge once the current line or event is longer than the limit. */
  measure(chunk: Buffer): void {
    let start = 0;
    let lf = chunk.indexOf(LF);
    let cr = chunk.indexOf(CR);
    while (lf !== -1 || cr !== -1) {
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (this.afterCR && end === start && chunk[end] === LF && this.line === 0) {
        this.afterCR = false; // the \n of a \r\n
      } else {
        const length = this.line + (end - start);
        this.event = length === 0 ? 0 : this.event + length; // an empty line ends the event
        this.line = 0;
        this.afterCR = chunk[end] === CR;
        if (this.event > this.limit) throw new EventTooLarge(this.limit);
      }
      start = end + 1;
      if (lf !== -1 && lf < start) lf = chunk.indexOf(LF, start);
      if (cr !== -1 && cr < start) cr = chunk.indexOf(CR, start);
    }
    if (start < chunk.length) {
      this.line += chunk.length - start;
      this.afterCR = false;
      if (this.event + this.line > this.limit) throw new EventTooLarge(this.limit);
    }
  }
}
