/**
 * A plugin's failure policy and circuit breaker, around any Plugin whatever its mode.
 *
 * on_error: "continue" (fail open) lets the request go on as if the failed hook had not run; "fail" (fail closed)
 * answers it 503, naming the plugin. A deadline, a crash and a bad output are all failures.
 *
 * The breaker: `failures` failures within `window_ms` quarantine the plugin. Its hooks are then not called: skipped
 * under "continue", refused under "fail". After `cooldown_ms` one call goes through as a probe: a success ends the
 * quarantine, a failure starts another cool-down. An operator can lift it (admin API). The breaker costs the hot
 * path one comparison per call while closed.
 */
import type { Logger } from 'pino';
import { Errors, type HeimdallError } from '../errors.js';
import {
  PluginFailure,
  type AbiError,
  type ChunkResult,
  type HookName,
  type Maybe,
  type Plugin,
  type PluginInfo,
  type PostHookResult,
  type PreHookResult,
  type RuntimeStatus,
  type TransportResult,
} from './plugin.js';

export interface FailurePolicy {
  on_error: 'continue' | 'fail';
  breaker: { failures: number; window_ms: number; cooldown_ms: number };
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface QuarantineStatus {
  state: BreakerState;
  /** When the quarantine began, and when a probe call may next go through. */
  since?: string;
  probe_at?: string;
  /** Quarantines since load; failures seen in the current window. */
  trips: number;
  recent_failures: number;
  last_failure?: { at: string; hook: string; message: string };
}

const CONTINUE = Object.freeze({ kind: 'continue' as const });

export class GuardedPlugin implements Plugin {
  readonly info: PluginInfo;
  private state: BreakerState = 'closed';
  /** Times of the failures in the current window (at most breaker.failures of them). */
  private failures: number[] = [];
  private openedAt = 0;
  private probeAt = 0;
  private probing = false;
  private trips = 0;
  private lastFailure: QuarantineStatus['last_failure'];

  constructor(
    private readonly inner: Plugin,
    private readonly policy: FailurePolicy,
    private readonly log: Logger,
    /** Told when the plugin enters or leaves quarantine (metrics, status). */
    private readonly onChange: (state: BreakerState) => void = () => {},
  ) {
    this.info = inner.info;
  }

  transportInterceptor(ctx: Buffer, http: Buffer, body: Buffer): Maybe<TransportResult> {
    // Closed: every call goes through. Otherwise only the probe does, and only its answer can close the breaker.
    const probe = this.state !== 'closed';
    if (probe && !this.admit()) return this.skipped('TransportInterceptor');
    let r: Maybe<TransportResult>;
    try {
      r = this.inner.transportInterceptor(ctx, http, body);
    } catch (err) {
      throw this.failed('TransportInterceptor', err, probe);
    }
    return this.settle('TransportInterceptor', r, probe);
  }

  preHook(ctx: Buffer, request: Buffer): Maybe<PreHookResult> {
    // Closed: every call goes through. Otherwise only the probe does, and only its answer can close the breaker.
    const probe = this.state !== 'closed';
    if (probe && !this.admit()) return this.skipped('PreHook');
    let r: Maybe<PreHookResult>;
    try {
      r = this.inner.preHook(ctx, request);
    } catch (err) {
      throw this.failed('PreHook', err, probe);
    }
    return this.settle('PreHook', r, probe);
  }

  postHook(ctx: Buffer, response: Buffer | null, error: Buffer | null): Maybe<PostHookResult> {
    // Closed: every call goes through. Otherwise only the probe does, and only its answer can close the breaker.
    const probe = this.state !== 'closed';
    if (probe && !this.admit()) return this.skipped('PostHook');
    let r: Maybe<PostHookResult>;
    try {
      r = this.inner.postHook(ctx, response, error);
    } catch (err) {
      throw this.failed('PostHook', err, probe);
    }
    return this.settle('PostHook', r, probe);
  }

  streamChunk(ctx: Buffer, chunk: Buffer): Maybe<ChunkResult> {
    // Closed: every call goes through. Otherwise only the probe does, and only its answer can close the breaker.
    const probe = this.state !== 'closed';
    if (probe && !this.admit()) return this.skipped('StreamChunkHook');
    let r: Maybe<ChunkResult>;
    try {
      r = this.inner.streamChunk(ctx, chunk);
    } catch (err) {
      throw this.failed('StreamChunkHook', err, probe);
    }
    return this.settle('StreamChunkHook', r, probe);
  }

  close(): Maybe<void> {
    return this.inner.close();
  }

  runtime(): RuntimeStatus | undefined {
    return this.inner.runtime();
  }

  /** The breaker as /health, /metrics and the admin API show it. */
  quarantine(): QuarantineStatus {
    const now = Date.now();
    const status: QuarantineStatus = {
      state: this.state,
      trips: this.trips,
      recent_failures: this.failures.filter((t) => now - t < this.policy.breaker.window_ms).length,
    };
    if (this.state !== 'closed') {
      status.since = new Date(this.openedAt).toISOString();
      status.probe_at = new Date(this.probeAt).toISOString();
    }
    if (this.lastFailure !== undefined) status.last_failure = this.lastFailure;
    return status;
  }

  /** Ends a quarantine at once (an operator's decision). Returns whether there was one. */
  lift(): boolean {
    if (this.state === 'closed') return false;
    this.log.info({ plugin: this.info.name }, `plugin ${this.info.name}: quarantine lifted by an operator`);
    this.close_();
    return true;
  }

  // --- the breaker ------------------------------------------------------------------------------------------

  /** Open or half-open: may this call go through? One probe at a time, once the cool-down is over. */
  private admit(): boolean {
    if (this.probing || Date.now() < this.probeAt) return false;
    this.probing = true;
    this.state = 'half-open';
    return true;
  }

  private settle<T>(hook: HookName, r: Maybe<T>, probe: boolean): Maybe<T> {
    if (r instanceof Promise) {
      return r.then(
        (value) => {
          if (probe) this.succeeded();
          return value;
        },
        (err: unknown) => {
          throw this.failed(hook, err, probe);
        },
      );
    }
    if (probe) this.succeeded();
    return r;
  }

  /** The probe answered: the quarantine ends (unless it ended meanwhile, lifted by an operator). */
  private succeeded(): void {
    if (!this.probing) return;
    this.log.info({ plugin: this.info.name }, `plugin ${this.info.name} answered its probe call: quarantine ended`);
    this.close_();
  }

  /** Counts the failure, maybe opens the breaker, and marks the error with the answer "fail" asks for. */
  private failed(hook: HookName, err: unknown, probe: boolean): unknown {
    const now = Date.now();
    const message = (err as Error)?.message ?? String(err);
    this.lastFailure = { at: new Date(now).toISOString(), hook, message };
    const { failures, window_ms } = this.policy.breaker;
    if (probe) {
      // Still quarantined (unless lifted meanwhile): a new cool-down, not a new quarantine.
      if (this.probing) this.reopen(now, hook, message);
    } else if (failures > 0 && this.state === 'closed') {
      this.failures.push(now);
      if (this.failures.length > failures) this.failures.shift();
      if (this.failures.length >= failures && now - (this.failures[0] as number) <= window_ms) {
        this.open(now, `${failures} failures within ${window_ms} ms; the last, in ${hook}: ${message}`);
      }
    }
    const failure = err instanceof PluginFailure ? err : new PluginFailure(this.info.name, hook, message);
    if (this.policy.on_error === 'fail') failure.answer = answerOf(Errors.PLUGIN_FAILED(this.info.name, hook));
    return failure;
  }

  private open(now: number, why: string): void {
    this.state = 'open';
    this.openedAt = now;
    this.probeAt = now + this.policy.breaker.cooldown_ms;
    this.failures = [];
    this.trips += 1;
    const then = this.policy.on_error === 'fail' ? 'requests are refused' : 'its hooks are skipped';
    this.log.error(
      { plugin: this.info.name, cooldown_ms: this.policy.breaker.cooldown_ms },
      `plugin ${this.info.name} quarantined: ${why}. Until a probe call succeeds (in ${this.policy.breaker.cooldown_ms} ms), ${then}`,
    );
    this.onChange('open');
  }

  private reopen(now: number, hook: HookName, message: string): void {
    this.probing = false;
    this.state = 'open';
    this.probeAt = now + this.policy.breaker.cooldown_ms;
    this.log.warn(
      { plugin: this.info.name, cooldown_ms: this.policy.breaker.cooldown_ms },
      `plugin ${this.info.name} stays quarantined: its probe call failed in ${hook}: ${message}`,
    );
  }

  private close_(): void {
    this.state = 'closed';
    this.probing = false;
    this.failures = [];
    this.onChange('closed');
  }

  /** A call the open breaker keeps from the plugin: skipped, or refused under on_error: fail. */
  private skipped(hook: HookName): typeof CONTINUE {
    if (this.policy.on_error === 'continue') return CONTINUE;
    const failure = new PluginFailure(this.info.name, hook, `${hook} not called: the plugin is quarantined`);
    const seconds = Math.max(0, Math.ceil((this.probeAt - Date.now()) / 1000));
    failure.answer = answerOf(Errors.PLUGIN_QUARANTINED(this.info.name, seconds));
    throw failure;
  }
}

/** The client's answer when a plugin fails closed. No fallback: another model would meet the same plugin. */
function answerOf(e: HeimdallError): AbiError {
  return { status_code: e.statusCode, message: e.message, type: e.type, code: e.code, allow_fallbacks: false };
}
