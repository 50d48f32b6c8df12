/**
 * The redis backend of the shared store: every worker and every gateway pointing at the same Redis shares the
 * values. A plugin's call never waits on the network (an inline hook runs on the event loop): each call answers from
 * this process's local view, and Redis is brought in step in the background. docs/host-services.md states what that
 * gives, call by call; in short:
 *
 *   get   the local view. Another instance's write arrives by pub/sub (SET and PUBLISH are one script, so every view
 *         sees writes in Redis's order). A key this process has never seen misses once, and is fetched meanwhile.
 *   set   the local view at once; Redis write-behind (coalesced per key while Redis is away, up to max_pending).
 *   incr  counted from units leased from Redis in blocks of `lease` (INCRBY): each unit is handed out once across
 *         every instance, so a limit holds exactly while leases last. Without one (the first calls of an instance,
 *         Redis slow or away) up to `lease` increments per key are counted locally on the last total seen
 *         (HEIMDALL_OK), then HEIMDALL_E_UNAVAILABLE with the estimate; the units go to Redis with the next lease.
 *   cas   decided on the local view (atomic in this process), then checked again by Redis in a script: when another
 *         instance got there first, Redis keeps its value and this view takes it.
 *
 * The client is node-redis (the `redis` package), with its offline queue off: a command sent while Redis is away
 * fails at once instead of waiting, and the backlog here is the only one, bounded.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { createClient, RESP_TYPES } from 'redis';
import { ENV_REF, type HostConfig } from '../config/schema.js';
import { Errors } from '../errors.js';
import { added, expiry, ExpiringMap, type KvStore } from './kv.js';
import { HostStatus, type Count, type Read } from './status.js';

type KvConfig = HostConfig['kv'];
type Client = ReturnType<typeof createClient>;

/** After a get missed in Redis too, the key is not fetched again for this long (a plugin polling a missing key). */
const MISS_TTL_MS = 1000;
/** Reconnection backoff, from 50 ms up to this. */
const MAX_RECONNECT_MS = 1000;

/** SET (or DEL) and PUBLISH in one step: every view sees the writes in the order Redis applied them. */
const SET_SCRIPT = `
if ARGV[2] == '' then redis.call('DEL', KEYS[1])
elseif tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else redis.call('SET', KEYS[1], ARGV[2]) end
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1`;
/** A lease: INCRBY, the TTL set when the key has none, the new total and the time left. */
const LEASE_SCRIPT = `
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {total, redis.call('PTTL', KEYS[1])}`;
/** Compare-and-set; on a mismatch, what the key holds (for the view) and its time left. */
const CAS_SCRIPT = `
local now = redis.call('GET', KEYS[1])
if (ARGV[4] == '1' and now ~= false) or (ARGV[4] == '0' and now ~= ARGV[2]) then
  return {0, now or '', redis.call('PTTL', KEYS[1])}
end
if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[5]) else redis.call('SET', KEYS[1], ARGV[3]) end
redis.call('PUBLISH', KEYS[2], ARGV[1])
return {1}`;
const GET_SCRIPT = `return {redis.call('GET', KEYS[1]) or false, redis.call('PTTL', KEYS[1])}`;

interface Range {
  next: bigint;
  end: bigint;
}

interface Counter {
  /** Leased units not handed out yet, in order. */
  ranges: Range[];
  /** The total Redis last reported (after our own INCRBY). */
  known: bigint;
  /** Increments counted here with no lease, not yet sent to Redis. */
  unleased: bigint;
  leasing: boolean;
  /** When the key expires (from Redis's PTTL); leases die with it. */
  expiresAt: number;
  /** The TTL the key is created with (again, after a Redis that lost it). */
  ttlMs: number;
}

/** What a view update says: the key, the value (null: deleted) and its time left (-1: none). */
interface Change {
  o: string;
  k: string;
  v: string | null;
  t: number;
}

export class RedisKv implements KvStore {
  private readonly view: ExpiringMap;
  private readonly missed: ExpiringMap;
  private readonly counters = new Map<string, Counter>();
  /** Writes waiting for Redis to come back, the last per key. */
  private readonly backlog = new Map<string, () => Promise<unknown>>();
  private readonly fetching = new Set<string>();
  private inFlight = 0;
  private flushing = false;
  private casSlots = 0;
  private up = false;
  private closed = false;
  private reportedDown = false;
  private readonly origin = randomUUID();
  private readonly channel: string;
  private readonly lease: bigint;

  private constructor(
    private readonly config: KvConfig,
    private readonly log: Logger,
    private readonly client: Client,
    private readonly subscriber: Client,
  ) {
    this.view = new ExpiringMap(config.max_keys);
    this.missed = new ExpiringMap(config.max_keys);
    this.channel = `${config.redis.key_prefix}kv-changes`;
    this.lease = BigInt(config.redis.lease);
  }

  /** Connects (waiting at most connect_timeout_ms); an unreachable Redis is reported, and retried in the background. */
  static async connect(config: KvConfig, log: Logger): Promise<RedisKv> {
    const { connect_timeout_ms: connectTimeout } = config.redis;
    // A URL with a password stays out of config.json: "env.REDIS_URL" reads it from the environment.
    const ref = ENV_REF.exec(config.redis.url);
    const url = ref === null ? config.redis.url : process.env[ref[1] as string];
    if (url === undefined || url === '') throw Errors.HOST_REDIS_CONFIG(`url is ${config.redis.url}, and that variable is not set`);
    const options = {
      url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 5), MAX_RECONNECT_MS),
      },
      commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } },
    };
    let client: Client;
    let subscriber: Client;
    try {
      client = createClient(options) as unknown as Client;
      subscriber = createClient(options) as unknown as Client;
    } catch (err) {
      throw Errors.HOST_REDIS_CONFIG(`cannot use ${JSON.stringify(url)}: ${(err as Error).message}`);
    }
    const kv = new RedisKv(config, log, client, subscriber);
    await kv.start(connectTimeout);
    return kv;
  }

  private async start(timeoutMs: number): Promise<void> {
    const down = (err: Error): void => this.down(err.message);
    this.client.on('error', down);
    this.subscriber.on('error', down);
    this.client.on('ready', () => this.ready());
    // Changes published while the subscriber was away were missed: the view starts over when it is back.
    this.subscriber.on('ready', () => {
      this.view.clear();
      this.missed.clear();
    });
    this.client.on('end', () => (this.up = false));
    const connected = Promise.all([
      this.client.connect(),
      this.subscriber.connect().then(() =>
        this.subscriber.subscribe(this.channel, (message: Buffer) => this.onChange(message), true)),
    ]).catch((err: Error) => this.down(err.message));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([connected, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    if (!this.up) this.down(`not connected within ${timeoutMs} ms`);
  }

  get connected(): boolean {
    return this.up;
  }

  // ---- The calls: from the view, never waiting -------------------------------------------------------------------

  get(key: string): Read {
    const entry = this.view.get(key);
    if (entry !== undefined) return { status: HostStatus.OK, value: entry.value };
    this.fetch(key);
    return { status: HostStatus.NOT_FOUND };
  }

  set(key: string, value: Buffer | null, ttlMs: number): HostStatus {
    if (!this.room(key)) return HostStatus.E_UNAVAILABLE;
    if (value === null) this.view.delete(key);
    else this.view.put(key, Buffer.from(value), expiry(ttlMs));
    this.missed.delete(key);
    const change: Change = { o: this.origin, k: key, v: value === null ? null : value.toString('base64'), t: value === null ? -1 : ttlMs > 0 ? ttlMs : -1 };
    this.write(key, () => this.client.eval(SET_SCRIPT, {
      keys: [this.redisKey(key), this.channel],
      arguments: [JSON.stringify(change), value ?? '', String(ttlMs)],
    }));
    return HostStatus.OK;
  }

  incr(key: string, delta: bigint, ttlMs: number): Count {
    const now = performance.now();
    let c = this.counters.get(key);
    if (c !== undefined && c.expiresAt <= now) {
      this.counters.delete(key);
      c = undefined;
    }
    if (c === undefined) {
      // A counter this process knows nothing of yet starts from the view (a value fetched or published).
      const seen = this.view.get(key, now);
      const base = added(seen?.value, 0n);
      if (typeof base !== 'bigint') return { status: base, value: 0n };
      c = { ranges: [], known: base, unleased: 0n, leasing: false, expiresAt: seen?.expiresAt ?? expiry(ttlMs, now), ttlMs };
      if (this.counters.size >= this.config.max_keys) this.counters.delete(this.counters.keys().next().value as string);
      this.counters.set(key, c);
    }
    let value: bigint | undefined;
    const first = c.ranges[0];
    if (delta > 0n && first !== undefined && first.end - first.next + 1n >= delta) {
      value = first.next + delta - 1n;
      first.next += delta;
      if (first.next > first.end) c.ranges.shift();
    }
    let status: HostStatus = HostStatus.OK;
    if (value === undefined) {
      c.unleased += delta;
      value = this.estimate(c);
      if (c.unleased > this.lease) status = HostStatus.E_UNAVAILABLE;
    }
    this.view.put(key, Buffer.from(value.toString(), 'latin1'), c.expiresAt);
    if (!c.leasing && (c.unleased !== 0n || this.left(c) * 2n < this.lease)) this.takeLease(key, c);
    return { status, value };
  }

  cas(key: string, expected: Buffer | null, value: Buffer, ttlMs: number): HostStatus {
    const entry = this.view.get(key);
    const matches = expected === null ? entry === undefined : entry !== undefined && entry.value.equals(expected);
    if (!matches) {
      if (entry === undefined) this.fetch(key); // a retry then decides on what Redis holds
      return HostStatus.CONFLICT;
    }
    if (!this.room(key)) return HostStatus.E_UNAVAILABLE;
    const copy = Buffer.from(value);
    this.view.put(key, copy, expiry(ttlMs));
    this.missed.delete(key);
    const change: Change = { o: this.origin, k: key, v: copy.toString('base64'), t: ttlMs > 0 ? ttlMs : -1 };
    this.write(`${key}\u0000cas${this.casSlots++}`, async () => {
      const r = (await this.client.eval(CAS_SCRIPT, {
        keys: [this.redisKey(key), this.channel],
        arguments: [JSON.stringify(change), expected ?? '', copy, expected === null ? '1' : '0', String(ttlMs)],
      })) as [number, Buffer?, number?];
      if (r[0] === 1) return;
      // Another instance got there first: Redis keeps its value, and so does this view.
      const now = r[1] as Buffer;
      if (now.length === 0) this.view.delete(key);
      else this.view.put(key, now, (r[2] ?? -1) > 0 ? expiry(r[2] as number) : Infinity);
      this.log.warn({ key: printable(key) }, 'host kv: a compare-and-set accepted here lost to another instance\'s write in Redis; the local view now holds Redis\'s value');
    });
    return HostStatus.OK;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.view.close();
    this.missed.close();
    const quit = async (client: Client): Promise<void> => {
      try {
        if (client.isOpen) await Promise.race([client.close(), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
      } catch {
        // closing anyway
      }
      try {
        client.destroy();
      } catch {
        // already closed
      }
    };
    await Promise.all([quit(this.client), quit(this.subscriber)]);
  }

  // ---- Keeping in step ------------------------------------------------------------------------------------------

  private redisKey(key: string): Buffer {
    return Buffer.from(`${this.config.redis.key_prefix}kv:${key}`, 'latin1');
  }

  private left(c: Counter): bigint {
    let n = 0n;
    for (const r of c.ranges) n += r.end - r.next + 1n;
    return n;
  }

  /** The total as this process can best tell: the highest seen or leased, plus what it counted without a lease. */
  private estimate(c: Counter): bigint {
    let top = c.known;
    for (const r of c.ranges) if (r.end > top) top = r.end;
    return top + c.unleased;
  }

  /** Whether one more Redis operation fits (a write for a key already waiting replaces it). */
  private room(key: string): boolean {
    return this.inFlight + this.backlog.size < this.config.redis.max_pending || this.backlog.has(key);
  }

  /**
   * Write-behind: the writes of one event-loop turn go out together after it, the last per key (a key written 100
   * times in a hook is one write). A slot moves to the end when written again, so Redis applies writes in the order
   * of their last change; a compare-and-set has a slot of its own (its check must not be merged away).
   */
  private write(slot: string, send: () => Promise<unknown>): void {
    this.backlog.delete(slot);
    this.backlog.set(slot, send);
    if (this.up && !this.flushing) {
      this.flushing = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushing = false;
    if (!this.up || this.closed) return;
    const waiting = [...this.backlog.entries()];
    this.backlog.clear();
    for (const [slot, send] of waiting) this.run(send, slot);
  };

  /** Sends one write; one that fails because Redis went away meanwhile waits for it again (unless newer did). */
  private run(send: () => Promise<unknown>, slot?: string): void {
    this.inFlight++;
    send()
      .catch((err: Error) => {
        this.down(err.message);
        if (slot !== undefined && !this.up && !this.backlog.has(slot)) this.backlog.set(slot, send);
      })
      .finally(() => this.inFlight--);
  }

  private fetch(key: string): void {
    if (!this.up || this.closed || this.fetching.has(key) || this.missed.get(key) !== undefined) return;
    if (this.inFlight + this.backlog.size >= this.config.redis.max_pending) return;
    this.fetching.add(key);
    this.inFlight++;
    (this.client.eval(GET_SCRIPT, { keys: [this.redisKey(key)] }) as Promise<[Buffer | null, number]>)
      .then(([value, pttl]) => {
        // A write of ours since the fetch was sent is newer than what it read.
        if (this.view.get(key) !== undefined) return;
        if (value === null) this.missed.put(key, Buffer.alloc(0), expiry(MISS_TTL_MS));
        else this.view.put(key, value, pttl > 0 ? expiry(pttl) : Infinity);
      })
      .catch((err: Error) => this.down(err.message))
      .finally(() => {
        this.fetching.delete(key);
        this.inFlight--;
      });
  }

  private takeLease(key: string, c: Counter): void {
    if (!this.up || this.closed) return;
    const owed = c.unleased;
    // Units counted without a lease are paid for first; a lease is only taken for increments.
    const amount = owed + (owed >= 0n ? this.lease : 0n);
    if (amount === 0n) return;
    c.leasing = true;
    this.inFlight++;
    (this.client.eval(LEASE_SCRIPT, { keys: [this.redisKey(key)], arguments: [amount.toString(), String(c.ttlMs)] }) as Promise<[number, number]>)
      .then(([total, pttl]) => {
        if (this.counters.get(key) !== c) return; // expired meanwhile: the units die with the window
        const t = BigInt(total);
        c.unleased -= owed;
        c.known = t;
        if (owed >= 0n) c.ranges.push({ next: t - this.lease + 1n, end: t });
        if (pttl > 0) c.expiresAt = expiry(pttl);
        this.view.put(key, Buffer.from(this.estimate(c).toString(), 'latin1'), c.expiresAt);
      })
      .catch((err: Error) => this.down(err.message))
      .finally(() => {
        c.leasing = false;
        this.inFlight--;
      });
  }

  private onChange(message: Buffer): void {
    let change: Change;
    try {
      change = JSON.parse(message.toString('utf8')) as Change;
    } catch {
      return;
    }
    if (change.o === this.origin || typeof change.k !== 'string') return;
    this.missed.delete(change.k);
    if (change.v === null) this.view.delete(change.k);
    else this.view.put(change.k, Buffer.from(change.v, 'base64'), change.t > 0 ? expiry(change.t) : Infinity);
  }

  private ready(): void {
    const wasDown = this.reportedDown;
    this.up = true;
    this.reportedDown = false;
    if (wasDown) this.log.info({ url: redacted(this.config.redis.url) }, 'host kv: Redis is back; the local view starts over from it');
    // What changed while this process could not hear of it is unknown: the view starts over (local writes waiting
    // in the backlog stay, and are sent now).
    this.view.clear();
    this.missed.clear();
    this.flush();
    for (const [key, c] of this.counters) if (c.unleased !== 0n && !c.leasing) this.takeLease(key, c);
  }

  private down(cause: string): void {
    if (this.closed) return;
    if (this.client.isReady) {
      // Redis answered, with an error: not an outage.
      this.log.warn({ cause }, 'host kv: a Redis command failed');
      return;
    }
    this.up = false;
    if (this.reportedDown) return;
    this.reportedDown = true;
    const err = Errors.HOST_REDIS_DOWN(redacted(this.config.redis.url), cause);
    this.log.warn({ code: err.code }, err.message);
  }
}

/** A URL without its password, for logs. */
function redacted(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

function printable(key: string): string {
  return key.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}
