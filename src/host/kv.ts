/**
 * The shared key-value store (ABI 1.2 kv_*): the interface both backends implement, and the memory backend, which
 * is exact and atomic within one process and shares nothing with any other (docs/host-services.md).
 *
 * Keys arrive already namespaced by plugin (services.ts): a Buffer of bytes, kept here as a latin1 string (one char
 * per byte, so any bytes round-trip).
 */
import { HostStatus, INT64_MAX, INT64_MIN, parseInteger, type Count, type Read } from './status.js';

export interface KvStore {
  get(key: string): Read;
  /** value null deletes. ttlMs 0: no expiry of its own. */
  set(key: string, value: Buffer | null, ttlMs: number): HostStatus;
  incr(key: string, delta: bigint, ttlMs: number): Count;
  /** expected null: only when the key does not exist. */
  cas(key: string, expected: Buffer | null, value: Buffer, ttlMs: number): HostStatus;
  close(): Promise<void>;
}

interface Entry {
  value: Buffer;
  /** performance.now() when it expires; Infinity when never. */
  expiresAt: number;
}

/** Keys looked at for expiry per sweep (once a second): expired keys also go when they are read. */
const SWEEP_KEYS = 1000;

/**
 * A bounded map with expiry. Past maxKeys, the least recently written key goes (and its value with it): the store
 * is a cache, and an operator who keeps counters in it sizes host.kv.max_keys for them.
 */
export class ExpiringMap {
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly maxKeys: number) {
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now = performance.now()): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** Writes (a fresh copy is the caller's business); moves the key to the young end. */
  put(key: string, value: Buffer, expiresAt: number): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxKeys) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { value, expiresAt });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.entries.clear();
  }

  private sweep(): void {
    const now = performance.now();
    let looked = 0;
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt <= now) this.entries.delete(key);
      if (++looked >= SWEEP_KEYS) break;
    }
  }
}

export function expiry(ttlMs: number, now = performance.now()): number {
  return ttlMs > 0 ? now + ttlMs : Infinity;
}

/** The sum of a stored value and a delta, or the status that refuses it. */
export function added(current: Buffer | undefined, delta: bigint): bigint | HostStatus {
  const base = current === undefined ? 0n : parseInteger(current);
  if (base === undefined) return HostStatus.E_INVALID;
  const sum = base + delta;
  if (sum > INT64_MAX || sum < INT64_MIN) return HostStatus.E_LIMIT;
  return sum;
}

export class MemoryKv implements KvStore {
  private readonly map: ExpiringMap;

  constructor(maxKeys: number) {
    this.map = new ExpiringMap(maxKeys);
  }

  get(key: string): Read {
    const entry = this.map.get(key);
    return entry === undefined ? { status: HostStatus.NOT_FOUND } : { status: HostStatus.OK, value: entry.value };
  }

  set(key: string, value: Buffer | null, ttlMs: number): HostStatus {
    if (value === null) this.map.delete(key);
    else this.map.put(key, Buffer.from(value), expiry(ttlMs));
    return HostStatus.OK;
  }

  incr(key: string, delta: bigint, ttlMs: number): Count {
    const now = performance.now();
    const entry = this.map.get(key, now);
    const sum = added(entry?.value, delta);
    if (typeof sum !== 'bigint') return { status: sum, value: 0n };
    // An existing key keeps its expiry: a fixed window.
    this.map.put(key, Buffer.from(sum.toString(), 'latin1'), entry?.expiresAt ?? expiry(ttlMs, now));
    return { status: HostStatus.OK, value: sum };
  }

  cas(key: string, expected: Buffer | null, value: Buffer, ttlMs: number): HostStatus {
    const entry = this.map.get(key);
    const matches = expected === null ? entry === undefined : entry !== undefined && entry.value.equals(expected);
    if (!matches) return HostStatus.CONFLICT;
    this.map.put(key, Buffer.from(value), expiry(ttlMs));
    return HostStatus.OK;
  }

  async close(): Promise<void> {
    this.map.close();
  }
}
