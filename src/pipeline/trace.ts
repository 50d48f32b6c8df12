/**
 * The request inspector's recorder: for each of the last N requests, what every hook decided and how long it took,
 * each provider attempt (the model that answered, the fallbacks tried) and the chunk hooks of a stream.
 *
 * It sits in the request path, so it records only while someone looks: from a read of the dashboard's data until
 * WATCH_MS after the last one (or always, when configured so). Otherwise a request costs one property check. While
 * it records, a request costs a microsecond or a few (two clock reads and a small object per hook call);
 * nothing is serialised, copied or logged until someone reads the ring. The ring
 * holds at most `size` traces (a hard cap of MAX_TRACES), each with at most MAX_EVENTS events; a stream's chunk
 * hooks fold into one event per plugin, however long it runs. Bodies are kept only when log.bodies is on, as the
 * redacted text a log line would carry, cut to BODY_PREVIEW characters.
 */
import { pino } from 'pino';
import { REDACT_PATHS } from '../logger.js';
import type { Json } from '../plugins/plugin.js';

export type Decision = 'continue' | 'modified' | 'short-circuit' | 'error';
export type TracedHook = 'TransportInterceptor' | 'PreHook' | 'PostHook';

/** One step of a request's timeline; `at_ms` is its start, from the request's. */
export type TraceEvent =
  | { kind: 'hook'; hook: TracedHook; plugin: string; decision: Decision; at_ms: number; ms: number; attempt: number; message?: string }
  | { kind: 'provider'; model: string; at_ms: number; ms: number; attempt: number; outcome: 'ok' | 'error'; error?: string }
  | { kind: 'chunks'; plugin: string; at_ms: number; ms: number; calls: number; modified: number; dropped: number; errors: number };

/** One request in the list. */
export interface TraceSummary {
  id: string;
  /** When the request arrived (ISO 8601). */
  at: string;
  route: string;
  /** "provider/model" of the last attempt, once known. */
  model: string | null;
  stream: boolean;
  /** The HTTP status sent, once the answer is complete; null while it runs. */
  status: number | null;
  ms: number | null;
  /** The provider/model whose call answered (null: none did, or a plugin answered first). */
  served_by: string | null;
  /** The plugin whose hook answered instead of the provider, if one did. */
  short_circuit: string | null;
  /** Hook calls that failed. */
  hook_errors: number;
  /** Provider attempts, the first included. */
  attempts: number;
}

export interface TraceDetail extends TraceSummary {
  events: TraceEvent[];
  /** True when events past MAX_EVENTS were left out. */
  truncated: boolean;
  /** Present only when log.bodies is on: redacted as in the "bodies" log line, cut to BODY_PREVIEW characters. */
  bodies?: { request?: string; response?: string; error?: string };
}

export const DEFAULT_TRACES = 200;
export const MAX_TRACES = 5000;
const MAX_EVENTS = 200;
const MAX_MESSAGE = 300;
export const BODY_PREVIEW = 4096;
/** How long the recorder keeps recording after the dashboard last read its data (the page reads every 2 s). */
export const WATCH_MS = 15 * 60_000;

/** Turns the request and its answer into the text a "bodies" log line carries (the logger's redaction applied). */
export type BodyRedactor = (entry: { request?: Json; response?: Json; error?: Json }) => { request?: string; response?: string; error?: string };

export class Trace {
  readonly started = performance.now();
  private readonly at = Date.now();
  model: string | null = null;
  stream = false;
  private status: number | null = null;
  private ms: number | null = null;
  private servedBy: string | null = null;
  private shortCircuit: string | null = null;
  private hookErrors = 0;
  private attempt = 0;
  private readonly events: TraceEvent[] = [];
  private truncated = false;
  private chunkEvents: Map<string, Extract<TraceEvent, { kind: 'chunks' }>> | undefined;
  private bodies: TraceDetail['bodies'];

  constructor(
    readonly id: string,
    private readonly route: string,
    /** Set when log.bodies is on. */
    readonly redact: BodyRedactor | undefined,
  ) {}

  /** A TransportInterceptor, PreHook or PostHook call that began at `start` (performance.now()) has returned. */
  hook(hook: TracedHook, plugin: string, decision: Decision, start: number, message?: string): void {
    if (decision === 'error') this.hookErrors++;
    if (decision === 'short-circuit' && hook !== 'PostHook') this.shortCircuit = plugin;
    const event: TraceEvent = { kind: 'hook', hook, plugin, decision, at_ms: start - this.started, ms: performance.now() - start, attempt: this.attempt };
    if (message !== undefined) event.message = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}...` : message;
    this.push(event);
  }

  /** A new attempt (the primary, then each fallback) is about to run its PreHooks. */
  nextAttempt(model: string): void {
    this.attempt++;
    this.model = model;
  }

  /** The provider call of the current attempt, begun at `start`, answered (or failed with `error`, a code). */
  provider(model: string, start: number, error?: string): void {
    const event: TraceEvent = { kind: 'provider', model, at_ms: start - this.started, ms: performance.now() - start, attempt: this.attempt, outcome: error === undefined ? 'ok' : 'error' };
    if (error !== undefined) event.error = error;
    else this.servedBy = model;
    this.model = model;
    this.push(event);
  }

  /** One StreamChunkHook call: folded into one event per plugin. */
  chunk(plugin: string, start: number, result: 'continue' | 'modified' | 'dropped' | 'error'): void {
    const map = (this.chunkEvents ??= new Map());
    let event = map.get(plugin);
    if (event === undefined) {
      event = { kind: 'chunks', plugin, at_ms: start - this.started, ms: 0, calls: 0, modified: 0, dropped: 0, errors: 0 };
      map.set(plugin, event);
      this.push(event);
    }
    event.calls++;
    event.ms += performance.now() - start;
    if (result === 'modified') event.modified++;
    else if (result === 'dropped') event.dropped++;
    else if (result === 'error') {
      event.errors++;
      this.hookErrors++;
    }
  }

  /** The request and its answer, when log.bodies is on (the caller checks `redact` first: nothing is built otherwise). */
  recordBodies(request: Json | undefined, response: Json | undefined, error: Json | undefined): void {
    if (this.redact === undefined) return;
    const text = this.redact({ request, response, error });
    this.bodies = { ...this.bodies, ...cut(text) };
  }

  /** The answer is complete (stream included). */
  finish(status: number): void {
    if (this.status !== null) return;
    this.status = status;
    this.ms = performance.now() - this.started;
  }

  summary(): TraceSummary {
    return {
      id: this.id,
      at: new Date(this.at).toISOString(),
      route: this.route,
      model: this.model,
      stream: this.stream,
      status: this.status,
      ms: this.ms,
      served_by: this.servedBy,
      short_circuit: this.shortCircuit,
      hook_errors: this.hookErrors,
      attempts: this.attempt,
    };
  }

  detail(): TraceDetail {
    const detail: TraceDetail = { ...this.summary(), events: this.events.map((e) => ({ ...e })), truncated: this.truncated };
    if (this.bodies !== undefined) detail.bodies = { ...this.bodies };
    return detail;
  }

  private push(event: TraceEvent): void {
    if (this.events.length < MAX_EVENTS) this.events.push(event);
    else this.truncated = true;
  }
}

/** The last `size` requests' traces, newest last; a new one overwrites the oldest. */
export class TraceRecorder {
  private readonly ring: (Trace | undefined)[];
  private next = 0;
  private recording: boolean;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    size: number = DEFAULT_TRACES,
    private readonly redact?: BodyRedactor,
    /** Record every request, not only while someone looks. */
    private readonly always = false,
  ) {
    this.ring = new Array<Trace | undefined>(Math.max(1, Math.min(MAX_TRACES, Math.floor(size)))).fill(undefined);
    this.recording = always;
  }

  /** Whether requests are being recorded now. */
  get active(): boolean {
    return this.recording;
  }

  /** Someone reads the dashboard: record the requests of the next WATCH_MS. */
  watch(): void {
    if (this.always) return;
    this.recording = true;
    if (this.timer !== undefined) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(() => {
      this.recording = false;
      this.timer = undefined;
    }, WATCH_MS);
    this.timer.unref();
  }

  get size(): number {
    return this.ring.length;
  }

  /** Starts recording a request (listed at once, while it runs); undefined while nobody looks. */
  start(id: string, route: string): Trace | undefined {
    if (!this.recording) return undefined;
    const trace = new Trace(id, route, this.redact);
    this.ring[this.next] = trace;
    this.next = (this.next + 1) % this.ring.length;
    return trace;
  }

  /** Newest first, at most `limit`. */
  list(limit = this.ring.length): TraceSummary[] {
    const out: TraceSummary[] = [];
    for (let i = 1; i <= this.ring.length && out.length < limit; i++) {
      const trace = this.ring[(this.next - i + this.ring.length) % this.ring.length];
      if (trace !== undefined) out.push(trace.summary());
    }
    return out;
  }

  /** The newest trace with this request id (a client may reuse an x-request-id). */
  get(id: string): TraceDetail | undefined {
    for (let i = 1; i <= this.ring.length; i++) {
      const trace = this.ring[(this.next - i + this.ring.length) % this.ring.length];
      if (trace?.id === id) return trace.detail();
    }
    return undefined;
  }
}

function cut(text: { request?: string; response?: string; error?: string }): { request?: string; response?: string; error?: string } {
  const out: { request?: string; response?: string; error?: string } = {};
  for (const key of ['request', 'response', 'error'] as const) {
    const value = text[key];
    if (value !== undefined) out[key] = value.length > BODY_PREVIEW ? `${value.slice(0, BODY_PREVIEW)}... (${value.length - BODY_PREVIEW} more characters)` : value;
  }
  return out;
}

/**
 * The bodies as the "bodies" log line writes them: through a pino logger with the gateway's redaction, into a string
 * instead of a stream, so the inspector never shows what the logs would hide.
 */
export function logRedactor(): BodyRedactor {
  let line = '';
  const sink = { write: (text: string) => void (line = text) };
  const log = pino({ level: 'info', base: null, timestamp: false, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  return (entry) => {
    log.info(entry);
    const written = JSON.parse(line) as Record<string, Json>;
    const out: { request?: string; response?: string; error?: string } = {};
    for (const key of ['request', 'response', 'error'] as const) if (written[key] !== undefined) out[key] = JSON.stringify(written[key], null, 1);
    return out;
  };
}
