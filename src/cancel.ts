/**
 * Cancellation of one request, and the deadline of one upstream attempt, without AbortController.
 *
 * Every request needs a way to stop its upstream work when the client leaves, and every upstream attempt a deadline.
 * Node's AbortController costs about 2 µs to create, and its EventTarget about 2 µs more per listener added and
 * removed; with one per request, one per attempt and undici's listener on each, that was a tenth of the gateway's
 * own time per request. Worse, a signal handed to undici kept per-request objects alive across young-generation
 * collections: about half of the bytes a request had promoted to the old generation, and so the full GCs behind the
 * p99. A Cancellation is a plain object with a listener list.
 *
 * It has the shape undici, `timers/promises` and the gateway's own code read (`aborted`, `reason`,
 * `addEventListener` / `removeEventListener` for 'abort'), and that shape is `CancelSignal`, which a real
 * AbortSignal also satisfies: code that already has one (a test, an embedding application) passes it as it is.
 */

import { setTimeout as delay } from 'node:timers/promises';

export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export class Cancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  /** Created on the first listener: most requests never have one outside the upstream call. */
  private listeners: (() => void)[] | undefined;

  /** Listeners run once, on abort; one added after the abort never runs (as with an AbortSignal). */
  addEventListener(type: 'abort', listener: () => void): void {
    if (type !== 'abort' || this.aborted) return;
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(type: 'abort', listener: () => void): void {
    const listeners = this.listeners;
    if (type !== 'abort' || listeners === undefined) return;
    const at = listeners.lastIndexOf(listener);
    if (at !== -1) listeners.splice(at, 1);
  }

  /** Marks the signal aborted and runs every listener; later calls do nothing. */
  abort(reason: unknown = abortError()): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners === undefined) return;
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        // As an EventTarget does: one failing listener neither stops the others nor disappears silently.
        process.nextTick(() => {
          throw err;
        });
      }
    }
  }
}

/** Made only when something is actually aborted, which is rare: its stack trace is the expensive part. */
function abortError(): Error {
  const err = new Error('This operation was aborted');
  err.name = 'AbortError';
  return err;
}

/** `timers/promises` setTimeout under a CancelSignal: rejects with an AbortError when it aborts first. */
export function sleep(ms: number, signal: CancelSignal): Promise<void> {
  // Node checks the shape of the signal it is given, not its class: a Cancellation passes as it is.
  return delay(ms, undefined, { signal: signal as AbortSignal });
}
