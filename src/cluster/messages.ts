/**
 * What the primary and its workers say to each other over cluster IPC (docs/workers.md). Few messages, none of them
 * on a chat request's path: the config at start, a heartbeat on a timer, the order to drain, and, for a scrape of
 * /metrics or a look at /health, a gathering of every worker's own report.
 */
import type { LoadedConfig } from '../config/load.js';

/** A plugin loaded into a worker's own process (inline or threaded): the code that can crash or stall it. */
export interface InProcessPlugin {
  name: string;
  mode: string;
}

export type WorkerMessage =
  /** The worker listens for the primary's messages and waits for its config. */
  | { type: 'hello' }
  /** The gateway listens; the watchdog is armed from now. */
  | { type: 'ready'; url: string; plugins: InProcessPlugin[] }
  /** The event loop turned. */
  | { type: 'beat' }
  /** A client asked this worker for something the whole pool answers: the primary collects it from every worker. */
  | { type: 'gather'; id: number; what: ReportKind }
  /** This worker's own part of a gathering. */
  | { type: 'reported'; id: number; body: string | Record<string, unknown> };

/** What a gathering collects: each worker's metrics (Prometheus text) or its /health body. */
export type ReportKind = 'metrics' | 'health';

/** One worker's part of a gathering, as the primary hands them back. */
export interface ReportPart {
  worker: number;
  pid: number | undefined;
  body: string | Record<string, unknown>;
}

export type PrimaryMessage =
  /**
   * The config the primary read and validated at start: every worker, a replacement too, runs that one, not what the
   * file says later. `beatMs` 0: no heartbeats (the watchdog is off).
   */
  | { type: 'start'; loaded: LoadedConfig; host: string; port: number; beatMs: number }
  /** Drain as a single gateway does on SIGTERM; `timeoutMs` 0: close every connection now. */
  | { type: 'shutdown'; timeoutMs?: number }
  /** Send your part of gathering `id`. */
  | { type: 'report'; id: number; what: ReportKind }
  /** Gathering `id` (the asking worker's own number for it) is done: the parts that came in time, and who missed it. */
  | { type: 'gathered'; id: number; parts: ReportPart[]; missing: MissingWorker[] };

/** A slot of the pool that gave no part: why (starting, restarting, resting after a crash loop, not answering). */
export interface MissingWorker {
  slot: number;
  worker: number | undefined;
  pid: number | undefined;
  state: string;
}

export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}
