/**
 * A provider's API keys: which one a call uses (weighted random among those allowed for the model), and which one
 * it moves to when the upstream refuses a key (429, 401, 403). A refused key cools down, so later calls prefer the
 * others until it has rested. `states()` tells an operator which keys rest and why, without the keys themselves.
 */
import { Errors } from '../../errors.js';
import type { KeyState } from '../provider.js';

export interface ProviderKey {
  /** The secret itself (its env reference already resolved). */
  value: string;
  weight: number;
  /** Models this key may be used for; undefined means any. */
  models: readonly string[] | undefined;
}

/** Why and until when a key rests. */
interface Rest {
  until: number;
  /** The upstream status that refused the key: 429, 401 or 403. */
  status: number;
}

export class KeyPool {
  /** At most one entry per key: bounded by the configured keys. */
  private readonly resting = new Map<ProviderKey, Rest>();

  constructor(
    private readonly provider: string,
    private readonly keys: readonly ProviderKey[],
    private readonly random: () => number = Math.random,
    private readonly now: () => number = Date.now,
  ) {}

  /** The keys one call may use, in the order it tries them. Throws when no key allows the model. */
  rotation(model: string): KeyRotation {
    const allowed = this.keys.filter((k) => k.models === undefined || k.models.includes(model));
    if (allowed.length === 0) throw Errors.PROVIDER_NO_KEY(this.provider, model);
    return new KeyRotation(allowed, this);
  }

  /** Keep `key` out of the draw for `ms`, unless every other key is resting too; `status` is why. */
  rest(key: ProviderKey, ms: number, status: number): void {
    this.resting.set(key, { until: this.now() + ms, status });
  }

  /** Weighted random among `candidates`, preferring keys that are not resting. */
  pick(candidates: readonly ProviderKey[]): ProviderKey {
    const now = this.now();
    const awake = candidates.filter((k) => (this.resting.get(k)?.until ?? 0) <= now);
    const pool = awake.length > 0 ? awake : candidates;
    const total = pool.reduce((sum, k) => sum + k.weight, 0);
    let r = this.random() * total;
    for (const key of pool) {
      r -= key.weight;
      if (r < 0) return key;
    }
    return pool[pool.length - 1] as ProviderKey;
  }

  /**
   * Every key in the order it was given (position 1 is the first), with its weight, its models and, while it
   * rests, until when and why. Never the key's value, nor anything derived from it.
   */
  states(): KeyState[] {
    const now = this.now();
    return this.keys.map((key, i) => {
      const rest = this.resting.get(key);
      const resting = rest !== undefined && rest.until > now
        ? { until: new Date(rest.until).toISOString(), for_ms: rest.until - now, status: rest.status }
        : null;
      return { position: i + 1, weight: key.weight, models: key.models === undefined ? null : [...key.models], resting };
    });
  }
}

/** One call's walk through the keys: each is tried at most once per round. */
export class KeyRotation {
  current: ProviderKey;
  private readonly tried = new Set<ProviderKey>();

  constructor(
    private readonly allowed: readonly ProviderKey[],
    private readonly pool: KeyPool,
  ) {
    this.current = pool.pick(allowed);
    this.tried.add(this.current);
  }

  /** Move to a key not yet tried this round. False when there is none. */
  next(): boolean {
    const untried = this.allowed.filter((k) => !this.tried.has(k));
    if (untried.length === 0) return false;
    this.current = this.pool.pick(untried);
    this.tried.add(this.current);
    return true;
  }

  /** A new round (after a backoff): every allowed key may be tried again. */
  restart(): void {
    this.tried.clear();
    this.current = this.pool.pick(this.allowed);
    this.tried.add(this.current);
  }
}
