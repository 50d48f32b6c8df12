/**
 * Calling one provider's upstream over HTTP, reliably: every wire format (OpenAI, Azure, Anthropic, Gemini) sends
 * its requests through this, so keys, retries, timeouts and the concurrency limit work the same everywhere.
 *
 *   concurrency slot -> key (weighted random) -> request with a deadline
 *     -> 429/401/403: the next key, at once
 *     -> network error, timeout, 408, 429, 5xx: backoff with jitter (or the upstream's retry-after), then again
 *     -> anything else: the catalogued error
 *
 * A wire format supplies only `build(key)`: the request, with the key placed where its API wants it.
 *
 * Nothing the upstream sends is held without a bound: a whole answer larger than `maxResponseBytes` is refused
 * (on its content-length, or as soon as the bytes read pass the limit, when the request is aborted), and a stream's
 * line or event larger than `maxEventBytes` ends the stream. Neither is retried: the same upstream would send the
 * same again. The upstream's own text in an error passes through `redact` (see redact.ts).
 */
import { Pool, errors as undiciErrors } from 'undici';
import type { Dispatcher } from 'undici';
import { Cancellation, sleep, type CancelSignal } from '../../cancel.js';
import { Errors, HeimdallError } from '../../errors.js';
import { backoffDelay, isRetryableStatus, retryAfterMs, type RetryPolicy } from './backoff.js';
import { KeyPool, type KeyRotation, type ProviderKey } from './keys.js';
import { ConcurrencyLimiter, SharedSlot, type Release } from './limiter.js';
import { redactor, upstreamSecrets, type Redact } from './redact.js';
import { EventTooLarge, sseEvents, type SseEvent } from './sse.js';
import { relayedHeaders } from './relay.js';
import { statusError } from './status.js';
import { DeadlineExceeded, requestWhole, ResponseTooLarge } from './whole.js';
import type { KeyState, UpstreamMeta } from '../provider.js';

export interface UpstreamRequest {
  method?: 'GET' | 'POST';
  /** Path and query, appended to the origin. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface UpstreamSettings {
  provider: string;
  /** Where requests go; only its origin is used, paths come from `build`. */
  origin: string;
  keys: readonly ProviderKey[];
  /** Sent with every request, before the wire format's own headers. */
  headers: Record<string, string>;
  timeoutMs: number;
  streamIdleTimeoutMs: number;
  connections: number;
  retries: RetryPolicy;
  maxInFlight: number;
  maxQueue: number;
  /** The largest whole answer read (any status), in bytes. */
  maxResponseBytes: number;
  /** The largest line, and event, of a stream, in bytes. */
  maxEventBytes: number;
  /** A request field the wire format can't express is left out (and named in x-heimdall-dropped), not refused. */
  dropUnsupported: boolean;
}

export interface UpstreamCall {
  /** The upstream model name: it selects which keys may be used. */
  model: string;
  signal: CancelSignal;
  /** Receives the relayed headers of the last attempt's answer (see relayedHeaders). */
  meta?: UpstreamMeta | undefined;
}

/** Builds the request for one attempt; `key` is undefined for a provider without keys (a local server). */
export type BuildRequest = (key: string | undefined) => UpstreamRequest;

/** A key that was refused for its credentials rests this long before calls pick it again. */
const REFUSED_KEY_REST_MS = 60_000;
/** A rate-limited key without a retry-after rests this long. */
const LIMITED_KEY_REST_MS = 1_000;
const ROTATE_ON = new Set([401, 403, 429]);
/** Failures without an upstream status that another attempt would only repeat. */
const NOT_RETRIED = new Set([Errors.UPSTREAM_BAD_RESPONSE.code, Errors.UPSTREAM_TOO_LARGE.code]);

type Attempt =
  | { ok: true; body: Buffer; stream: undefined }
  | { ok: true; body: undefined; stream: Dispatcher.ResponseData['body'] }
  | { ok: false; error: HeimdallError; status: number | undefined; retryAfterMs: number | undefined };

export class UpstreamClient {
  private readonly pool: Pool;
  private readonly keys: KeyPool | undefined;
  private readonly limiter: ConcurrencyLimiter;
  /** Hides this provider's secrets, and anything credential-shaped, in upstream text bound for an error. */
  readonly redact: Redact;

  constructor(
    private readonly settings: UpstreamSettings,
    private readonly random: () => number = Math.random,
  ) {
    this.pool = new Pool(settings.origin, { connections: settings.connections });
    this.keys = settings.keys.length > 0 ? new KeyPool(settings.provider, settings.keys, random) : undefined;
    this.limiter = new ConcurrencyLimiter(settings.provider, settings.maxInFlight, settings.maxQueue);
    this.redact = redactor(upstreamSecrets(settings.keys, settings.headers));
  }

  /** A non-streamed call: the 2xx answer's body. */
  async json(call: UpstreamCall, build: BuildRequest): Promise<Buffer> {
    const slot = new SharedSlot(this.limiter.tryAcquire(call.signal) ?? (await this.limiter.acquire(call.signal)));
    try {
      const done = await this.withRetries(call, build, slot);
      return done.body as Buffer;
    } finally {
      slot.leave();
    }
  }

  /**
   * A streamed call: resolves once the upstream answered 2xx (so failures before that are retried, and then
   * rejected), to its events. The concurrency slot is held until the body is finished or destroyed.
   */
  async stream(call: UpstreamCall, build: BuildRequest): Promise<AsyncIterable<SseEvent>> {
    const release = this.limiter.tryAcquire(call.signal) ?? (await this.limiter.acquire(call.signal));
    let body: Dispatcher.ResponseData['body'];
    try {
      body = (await this.withRetries(call, build, undefined)).stream as Dispatcher.ResponseData['body'];
    } catch (err) {
      release();
      throw err;
    }
    holdUntilClosed(body, release);
    return sseEvents(body, (err) => this.midStreamError(err, call.signal), this.settings.maxEventBytes);
  }

  /** The keys' states, without the keys (see KeyPool.states); [] for a provider without keys. */
  keyStates(): KeyState[] {
    return this.keys?.states() ?? [];
  }

  get concurrency(): { inFlight: number; queued: number } {
    return this.limiter.stats;
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /** Attempts until one answers 2xx or the policy gives up: whole answers when `slot` is given, else a stream. */
  private async withRetries(call: UpstreamCall, build: BuildRequest, slot: SharedSlot | undefined): Promise<Extract<Attempt, { ok: true }>> {
    const policy = this.settings.retries;
    const rotation: KeyRotation | undefined = this.keys?.rotation(call.model);
    for (let retries = 0; ; ) {
      const key = rotation?.current;
      const request = build(key?.value);
      const attempt = await (slot === undefined ? this.streamAttempt(call, request) : this.wholeAttempt(call, request, slot));
      if (attempt.ok) return attempt;
      const { error, status } = attempt;
      if (call.signal.aborted) throw Errors.CLIENT_CLOSED();

      // Credentials and rate limits belong to the key: another key may work straight away.
      if (rotation !== undefined && key !== undefined && status !== undefined && ROTATE_ON.has(status)) {
        (this.keys as KeyPool).rest(key, status === 429 ? (attempt.retryAfterMs ?? LIMITED_KEY_REST_MS) : REFUSED_KEY_REST_MS, status);
        if (rotation.next()) continue;
      }
      const retryable = status === undefined ? !NOT_RETRIED.has(error.code) : isRetryableStatus(status);
      if (!retryable || retries >= policy.maxRetries) throw error;
      let delay = backoffDelay(retries, policy, this.random);
      if (attempt.retryAfterMs !== undefined) {
        if (attempt.retryAfterMs > policy.maxRetryAfterMs) throw error;
        delay = attempt.retryAfterMs;
      }
      retries += 1;
      try {
        await sleep(delay, call.signal);
      } catch {
        throw Errors.CLIENT_CLOSED();
      }
      rotation?.restart();
    }
  }

  /** One exchange whose answer is read whole, under a deadline. Never throws: failures come back classified. */
  private async wholeAttempt(call: UpstreamCall, request: UpstreamRequest, slot: SharedSlot): Promise<Attempt> {
    const { provider, timeoutMs, maxResponseBytes } = this.settings;
    try {
      slot.enter();
      const res = await requestWhole(this.pool, this.options(request, timeoutMs), call.signal, timeoutMs, slot.leave, maxResponseBytes);
      if (call.meta !== undefined) call.meta.headers = relayedHeaders(res.headers, this.redact);
      if (res.statusCode >= 200 && res.statusCode <= 299) return { ok: true, body: res.body, stream: undefined };
      const wait = retryAfterMs(res.headers);
      return failed(statusError(provider, res.statusCode, res.body, this.redact, wait), res.statusCode, wait);
    } catch (err) {
      return failed(this.classify(err, call.signal, err instanceof DeadlineExceeded));
    }
  }

  /**
   * One exchange whose answer is streamed, with a deadline until its headers (after them, the idle timeout between
   * chunks applies). Never throws: failures come back classified.
   */
  private async streamAttempt(call: UpstreamCall, request: UpstreamRequest): Promise<Attempt> {
    const { provider, timeoutMs, streamIdleTimeoutMs } = this.settings;
    // The attempt's own signal, aborted by its deadline or by the request's: a plain Cancellation rather than an
    // AbortController (see cancel.ts). The link to the request lasts until the body closes.
    const deadline = new Cancellation();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    const forward = () => deadline.abort();
    if (call.signal.aborted) deadline.abort();
    else call.signal.addEventListener('abort', forward, { once: true });
    const unlink = () => call.signal.removeEventListener('abort', forward);
    let linkedToBody = false;
    try {
      // undici reads only the signal's shape (see cancel.ts)
      const res = await this.pool.request({ ...this.options(request, streamIdleTimeoutMs), signal: deadline as unknown as AbortSignal });
      if (call.meta !== undefined) call.meta.headers = relayedHeaders(res.headers, this.redact);
      if (res.statusCode < 200 || res.statusCode > 299) {
        const wait = retryAfterMs(res.headers);
        const body = await readCapped(res, this.settings.maxResponseBytes);
        return failed(statusError(provider, res.statusCode, body, this.redact, wait), res.statusCode, wait);
      }
      linkedToBody = true;
      if (res.body.destroyed || res.body.closed) unlink();
      else res.body.once('close', unlink);
      return { ok: true, body: undefined, stream: res.body };
    } catch (err) {
      return failed(this.classify(err, call.signal, deadline.aborted));
    } finally {
      clearTimeout(timer);
      if (!linkedToBody) unlink();
    }
  }

  private options(request: UpstreamRequest, bodyTimeout: number): Dispatcher.DispatchOptions {
    return {
      method: request.method ?? 'POST',
      path: request.path,
      headers: { 'content-type': 'application/json', ...this.settings.headers, ...request.headers },
      body: request.body ?? null,
      headersTimeout: this.settings.timeoutMs,
      bodyTimeout,
    };
  }

  /** A failed exchange as a catalogued error: the client left, the deadline passed, or the upstream was unreachable. */
  private classify(err: unknown, signal: CancelSignal, timedOut: boolean): HeimdallError {
    const { provider, timeoutMs } = this.settings;
    if (signal.aborted) return Errors.CLIENT_CLOSED();
    if (err instanceof ResponseTooLarge) return Errors.UPSTREAM_TOO_LARGE(provider, err.limit);
    if (timedOut || err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
      return Errors.UPSTREAM_TIMEOUT(provider, timeoutMs);
    }
    return connectError(provider, err, this.redact);
  }

  private midStreamError(err: unknown, signal: CancelSignal): HeimdallError {
    if (err instanceof HeimdallError) return err;
    if (signal.aborted) return Errors.CLIENT_CLOSED();
    if (err instanceof EventTooLarge) return Errors.UPSTREAM_EVENT_TOO_LARGE(this.settings.provider, err.limit);
    if (err instanceof undiciErrors.BodyTimeoutError) return Errors.UPSTREAM_STREAM_IDLE(this.settings.provider, this.settings.streamIdleTimeoutMs);
    return connectError(this.settings.provider, err, this.redact);
  }
}

function failed(error: HeimdallError, status?: number, retryAfterMs?: number): Attempt {
  return { ok: false, error, status, retryAfterMs };
}

function connectError(provider: string, err: unknown, redact: Redact): HeimdallError {
  const e = err as NodeJS.ErrnoException;
  return Errors.UPSTREAM_CONNECT(provider, redact(e.code ? `${e.code} ${e.message}` : String(e?.message ?? err)));
}

/**
 * A streamed call's error answer, read whole but no larger than `limit` (its content-length checked first): past
 * that the body is destroyed, which aborts the request, and ResponseTooLarge is thrown.
 */
async function readCapped(res: Dispatcher.ResponseData, limit: number): Promise<Buffer> {
  if (Number(res.headers['content-length']) > limit) {
    res.body.destroy();
    throw new ResponseTooLarge(limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      res.body.destroy();
      throw new ResponseTooLarge(limit);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function holdUntilClosed(body: Dispatcher.ResponseData['body'], release: Release): void {
  if (body.destroyed || body.closed) release();
  else body.once('close', release);
}
