/**
 * What the primary and its workers say to each other over cluster IPC (docs/workers.md). Few messages, none of them
 * on a chat request's path: the config at start, a heartbeat on a timer, the order to drain, for a scrape of
 * /metrics or a look at /health a gathering of every worker's own report, and the two steps of a plugin change
 * made through the admin API (prepare everywhere, then commit everywhere or abort everywhere).
 */
import type { LoadedConfig } from '../config/load.js';
import type { ChangeResult, PluginChange } from '../plugins/changes.js';
import type { PluginConfig } from '../config/schema.js';

/** The environment variable naming a worker's flight record file (metrics/flight-record.ts), set by the primary. */
export const FLIGHT_RECORD_ENV = 'HEIMDALL_FLIGHT_RECORD';

/** A plugin loaded into a worker's own process (inline or threaded): the code that can crash or stall it. */
export interface InProcessPlugin {
  name: string;
  mode: string;
}

export type WorkerMessage =
  /** The worker listens for the primary's messages and waits for its config. */
  | { type: 'hello' }
  /** The gateway listens; the watchdog is armed from now. `generation`: that of the plugin set it started with. */
  | { type: 'ready'; url: string; plugins: InProcessPlugin[]; generation: number }
  /** The event loop turned. */
  | { type: 'beat' }
  /** A client asked this worker for something the whole pool answers: the primary collects it from every worker. */
  | { type: 'gather'; id: number; what: ReportKind }
  /** This worker's own part of a gathering. */
  | { type: 'reported'; id: number; body: string | Record<string, unknown> }
  /** Change `id` is prepared here (no `error`), or this worker refused it, and why. */
  | { type: 'prepared'; id: number; error?: WireError }
  /** Change `id` is visible here: its result and the plugin list now; or committing it failed. */
  | { type: 'committed'; id: number; result?: ChangeResult; specs?: PluginConfig[]; plugins?: InProcessPlugin[]; error?: WireError };

/** A catalogue error, as it crosses the channel. */
export interface WireError {
  code: string;
  statusCode: number;
  type: string;
  message: string;
}

/**
 * What a gathering collects: each worker's metrics (Prometheus text), its /health body, its plugins' status, or its
 * answer to one of the dashboard's calls (`{value}`).
 */
export type ReportKind = 'metrics' | 'health' | 'plugins' | 'dashboard';

/** A dashboard call, as the primary asks it of every worker (see cluster/dashboard.ts). */
export type DashboardAsk =
  | { method: 'info' | 'plugins' | 'series' | 'providers' }
  | { method: 'requests'; limit: number }
  | { method: 'request'; id: string };

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
  | { type: 'start'; loaded: LoadedConfig; host: string; port: number; beatMs: number; generation: number }
  /** Drain as a single gateway does on SIGTERM; `timeoutMs` 0: close every connection now. */
  | { type: 'shutdown'; timeoutMs?: number }
  /** Send your part of gathering `id`. */
  | { type: 'report'; id: number; what: ReportKind; ask?: DashboardAsk }
  /** Gathering `id` (the asking worker's own number for it) is done: the parts that came in time, and who missed it. */
  | { type: 'gathered'; id: number; parts: ReportPart[]; missing: MissingWorker[] }
  /** Prepare change `id`: do everything that can fail, make nothing visible, and answer `prepared`. */
  | { type: 'change'; id: number; change: PluginChange }
  /** Every worker prepared change `id`: make it visible, and answer `committed`. */
  | { type: 'commit'; id: number }
  /** Some worker refused change `id`: undo its preparation. */
  | { type: 'abort'; id: number };

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
