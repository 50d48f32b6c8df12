/**
 * What the primary and its workers say to each other over cluster IPC (docs/workers.md). Few messages, none of them
 * on a request's path: the config at start, a heartbeat on a timer, and the order to drain.
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
  | { type: 'beat' };

export type PrimaryMessage =
  /**
   * The config the primary read and validated at start: every worker, a replacement too, runs that one, not what the
   * file says later. `beatMs` 0: no heartbeats (the watchdog is off).
   */
  | { type: 'start'; loaded: LoadedConfig; host: string; port: number; beatMs: number }
  /** Drain as a single gateway does on SIGTERM; `timeoutMs` 0: close every connection now. */
  | { type: 'shutdown'; timeoutMs?: number };

export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}
