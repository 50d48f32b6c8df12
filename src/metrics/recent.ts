/**
 * The last minutes of a series, for the dashboard's live charts: calls, errors, short-circuits and a latency
 * histogram per 10-second interval, in a ring of 90 intervals (15 minutes). Prometheus keeps history for those who
 * scrape it; this is for an operator who opens the page without one.
 *
 * Recording is fed from where the metrics are (hook-stats.ts, the upstream observer) and costs a few additions: the
 * interval is read from a coarse clock that a timer moves once a second, not from a clock read per call. Percentiles
 * are estimated from the histogram, by linear interpolation inside the bucket where they fall.
 */

export const INTERVAL_MS = 10_000;
export const INTERVALS = 90;

/** The current interval's number (ms since the epoch / INTERVAL_MS), moved by an unref'd timer. */
let now = Math.floor(Date.now() / INTERVAL_MS);
setInterval(() => {
  now = Math.floor(Date.now() / INTERVAL_MS);
}, 1000).unref();

/** One series' last INTERVALS intervals, oldest first, times in milliseconds. */
export interface RecentSnapshot {
  /** The first interval's start (ms since the epoch). */
  start: number;
  interval_ms: number;
  calls: number[];
  errors: number[];
  short_circuits: number[];
  /** null where an interval had no call. */
  p50_ms: (number | null)[];
  p99_ms: (number | null)[];
}

export class RecentWindow {
  /** The interval number each slot currently holds. */
  private readonly slots = new Float64Array(INTERVALS).fill(-1);
  private readonly calls = new Float64Array(INTERVALS);
  private readonly errors = new Float64Array(INTERVALS);
  private readonly shorts = new Float64Array(INTERVALS);
  /** Per slot, observations per bucket (the last: above every bound). */
  private readonly histogram: Float64Array;
  private readonly width: number;

  constructor(
    /** Bucket upper bounds in seconds, increasing. */
    private readonly bounds: readonly number[],
  ) {
    this.width = bounds.length + 1;
    this.histogram = new Float64Array(INTERVALS * this.width);
  }

  record(seconds: number): void {
    const slot = this.slot();
    (this.calls[slot] as number)++;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > (bounds[i] as number)) i++;
    (this.histogram[slot * this.width + i] as number)++;
  }

  failed(): void {
    (this.errors[this.slot()] as number)++;
  }

  shortCircuited(): void {
    (this.shorts[this.slot()] as number)++;
  }

  snapshot(): RecentSnapshot {
    const last = now;
    const first = last - INTERVALS + 1;
    const out: RecentSnapshot = { start: first * INTERVAL_MS, interval_ms: INTERVAL_MS, calls: [], errors: [], short_circuits: [], p50_ms: [], p99_ms: [] };
    for (let n = first; n <= last; n++) {
      const slot = n % INTERVALS;
      const live = this.slots[slot] === n;
      const calls = live ? (this.calls[slot] as number) : 0;
      out.calls.push(calls);
      out.errors.push(live ? (this.errors[slot] as number) : 0);
      out.short_circuits.push(live ? (this.shorts[slot] as number) : 0);
      out.p50_ms.push(live && calls > 0 ? this.quantile(slot, calls, 0.5) : null);
      out.p99_ms.push(live && calls > 0 ? this.quantile(slot, calls, 0.99) : null);
    }
    return out;
  }

  /** The slot of the current interval, emptied first when it last held an older one. */
  private slot(): number {
    const n = now;
    const slot = n % INTERVALS;
    if (this.slots[slot] !== n) {
      this.slots[slot] = n;
      this.calls[slot] = 0;
      this.errors[slot] = 0;
      this.shorts[slot] = 0;
      this.histogram.fill(0, slot * this.width, (slot + 1) * this.width);
    }
    return slot;
  }

  private quantile(slot: number, count: number, q: number): number {
    const rank = q * count;
    let seen = 0;
    for (let i = 0; i < this.width; i++) {
      const inBucket = this.histogram[slot * this.width + i] as number;
      if (inBucket > 0 && seen + inBucket >= rank) {
        const low = i === 0 ? 0 : (this.bounds[i - 1] as number);
        const high = i < this.bounds.length ? (this.bounds[i] as number) : low;
        return (low + (high - low) * ((rank - seen) / inBucket)) * 1000;
      }
      seen += inBucket;
    }
    return (this.bounds[this.bounds.length - 1] as number) * 1000;
  }
}
