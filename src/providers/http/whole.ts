/**
 * One upstream exchange whose answer is read whole (every non-streamed call): undici's `dispatch` with a handler
 * that only gathers the bytes.
 *
 * `pool.request()` wraps each answer in a Readable stream, with its own handler object, buffers and promises, which
 * a JSON answer read in one piece never needs: measured on loopback, that machinery is about a quarter of the CPU
 * an upstream call costs the gateway (7 of 25 µs). Streamed answers keep `pool.request()`, whose Readable the SSE
 * parser reads as it arrives.
 */
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { CancelSignal } from '../../cancel.js';

export interface WholeResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** What requestWhole rejects with when the answer is larger than its limit (announced, or as it arrives). */
export class ResponseTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the answer is larger than ${limit} bytes`);
    this.name = 'ResponseTooLarge';
  }
}

/** What requestWhole rejects with when its deadline passes first. */
export class DeadlineExceeded extends Error {
  constructor(readonly ms: number) {
    super(`no complete answer within ${ms} ms`);
    this.name = 'DeadlineExceeded';
  }
}

/**
 * Sends `options` through `dispatcher` and resolves to the whole answer, whatever its status, if it is complete
 * within `deadlineMs` and no larger than `maxBytes`. Rejects with undici's error, with DeadlineExceeded, with
 * ResponseTooLarge, or with the signal's reason once it aborts; all but the first at once, even while the request
 * still waits for a connection. An answer too large is refused on its content-length, or else as soon as the bytes
 * read pass the limit: the request is aborted then, so no more than the limit (and one chunk) is ever held.
 *
 * undici cannot take a request back out of its queue: one given up on while queued stays there until it reaches a
 * connection, and is dropped then without being sent. `released`, when given, is called once undici has let go of
 * the request (answered, failed, or dropped), which may be after the promise settled: a concurrency limit that
 * counts what the upstream is asked to carry must hold its slot until then.
 */
export function requestWhole(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  signal: CancelSignal,
  deadlineMs: number,
  released?: () => void,
  maxBytes = Infinity,
): Promise<WholeResponse> {
  return new Promise((resolve, reject) => {
    const gather = new Gather(resolve, reject, signal, released, maxBytes);
    if (signal.aborted) {
      gather.cancel();
      gather.letGo();
      return;
    }
    signal.addEventListener('abort', gather.cancel);
    gather.timer = setTimeout(gather.expire, deadlineMs, deadlineMs);
    try {
      dispatcher.dispatch(options, gather);
    } catch (err) {
      // undici reports its failures through onResponseError; this is for anything that throws regardless.
      gather.onResponseError(undefined, err as Error);
    }
  });
}

class Gather implements Dispatcher.DispatchHandler {
  private statusCode = 0;
  private headers: IncomingHttpHeaders = {};
  private chunks: Buffer[] = [];
  private size = 0;
  private controller: Dispatcher.DispatchController | undefined;
  private settled = false;
  /** Why the exchange was stopped before its end (signal, deadline or size), once it was. */
  private reason: Error | undefined;
  timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly resolve: (response: WholeResponse) => void,
    private readonly reject: (err: unknown) => void,
    private readonly signal: CancelSignal,
    private released: (() => void) | undefined,
    private readonly maxBytes: number,
  ) {}

  /** The signal's listener. */
  readonly cancel = (): void => {
    this.stop(this.signal.reason instanceof Error ? this.signal.reason : new Error('the upstream request was cancelled'));
  };

  /** The deadline's timer. */
  readonly expire = (ms: number): void => {
    this.stop(new DeadlineExceeded(ms));
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Given up on while it was queued. Throwing here (rather than controller.abort()) makes undici drop the request
    // unsent and keep the connection, which aborting would destroy: a test holds undici to that.
    if (this.reason !== undefined) throw this.reason;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // A 1xx informational answer may come first; the last start is the answer's own.
    this.statusCode = statusCode;
    this.headers = headers;
    this.chunks.length = 0;
    this.size = 0;
    if (Number(headers['content-length']) > this.maxBytes) this.stop(new ResponseTooLarge(this.maxBytes));
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    this.size += chunk.length;
    if (this.size > this.maxBytes) return this.stop(new ResponseTooLarge(this.maxBytes));
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    this.letGo();
    if (!this.settle()) return;
    const chunks = this.chunks;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    this.resolve({ statusCode: this.statusCode, headers: this.headers, body });
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    this.letGo();
    if (this.settle()) this.reject(err);
  }

  /** Once undici holds the request no more (or never did). */
  letGo(): void {
    const released = this.released;
    this.released = undefined;
    released?.();
  }

  /** Ends the exchange wherever it is, and rejects with `reason`. */
  private stop(reason: Error): void {
    if (!this.settle()) return;
    this.reason = reason;
    this.chunks = [];
    this.reject(reason);
    // In flight: undici aborts it now, and calls onResponseError. Still queued: onRequestStart drops it.
    this.controller?.abort(reason);
  }

  /** True the first time only: the promise settles once, and the timer and listener go with it. */
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.timer);
    this.signal.removeEventListener('abort', this.cancel);
    return true;
  }
}
