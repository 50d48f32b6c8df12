/**
 * A provider's concurrency limit: at most `maxInFlight` upstream calls at once, and at most `maxQueue` more waiting
 * for a slot, first come first served. Beyond that a call is refused at once (429) rather than left to hang.
 */
import type { CancelSignal } from '../../cancel.js';
import { Errors } from '../../errors.js';

export type Release = () => void;

interface Waiter {
  resolve: (release: Release) => void;
  reject: (err: unknown) => void;
  signal: CancelSignal;
  onAbort: () => void;
}

export class ConcurrencyLimiter {
  private inFlight = 0;
  private readonly waiting: Waiter[] = [];

  constructor(
    private readonly provider: string,
    private readonly maxInFlight: number,
    private readonly maxQueue: number,
  ) {}

  /**
   * A free slot at once, without a promise (the common case, and on the hot path), or undefined: then acquire()
   * waits in the queue or refuses.
   */
  tryAcquire(signal: CancelSignal): Release | undefined {
    if (signal.aborted || this.inFlight >= this.maxInFlight) return undefined;
    this.inFlight += 1;
    return this.releaser();
  }

  /** Resolves to the function that gives the slot back (calling it twice is harmless). */
  acquire(signal: CancelSignal): Promise<Release> {
    if (signal.aborted) return Promise.reject(Errors.CLIENT_CLOSED());
    if (this.inFlight < this.maxInFlight) {
      this.inFlight += 1;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxQueue) {
      const err = Errors.PROVIDER_QUEUE_FULL(this.provider, this.inFlight, this.waiting.length);
      err.retryAfter = 1;
      return Promise.reject(err);
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const at = this.waiting.indexOf(waiter);
          if (at !== -1) this.waiting.splice(at, 1);
          reject(Errors.CLIENT_CLOSED());
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  get stats(): { inFlight: number; queued: number } {
    return { inFlight: this.inFlight, queued: this.waiting.length };
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next === undefined) {
        this.inFlight -= 1;
        return;
      }
      // The slot passes straight to the next waiter: inFlight stays the same.
      next.signal.removeEventListener('abort', next.onAbort);
      next.resolve(this.releaser());
    };
  }
}

/**
 * One slot held by several parties, given back when the last lets go: a non-streamed call holds its slot, and each of
 * its exchanges holds it too until undici has let go of the request (see requestWhole), so a request given up on
 * while undici still queues it counts against the limit until it is gone.
 */
export class SharedSlot {
  private holders = 1;

  constructor(private readonly release: Release) {}

  enter(): void {
    this.holders += 1;
  }

  readonly leave = (): void => {
    if (--this.holders === 0) this.release();
  };
}
