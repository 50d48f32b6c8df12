/**
 * The worker threads that threaded plugins run on. koffi's asynchronous calls run on libuv's thread pool, which Node
 * also uses for file system, DNS look-ups, crypto and zlib. The pool is sized once, by UV_THREADPOOL_SIZE, before it
 * first starts (the `heimdall` command sets it from server.plugin_threads; see bin/heimdall.cjs), and plugins may use
 * all but Node's own 4 of it: a plugin that blocks can then wait on every thread it may have, and a file read or a
 * DNS look-up still finds a thread free.
 */
import { MAX_ASYNC_CALLS } from '../abi.js';

/** Threads kept for Node's own work: the size of its default pool. */
export const NODE_THREADS = 4;

/** The pool size this process runs with (libuv reads UV_THREADPOOL_SIZE once; 4 when unset; at most 1024). */
export function poolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : NODE_THREADS;
}

/** Something waiting for a thread: a threaded plugin with calls queued. */
export interface ThreadWaiter {
  /** Takes threads for its queued calls; returns whether it took one. */
  pump(): boolean;
}

/**
 * How many plugin calls may be on a thread at once, over every threaded plugin. A call takes a thread before it is
 * handed to koffi and gives it back when the native function returns (not when its deadline passes: the thread is
 * busy until then).
 */
export class ThreadBudget {
  private used = 0;
  private readonly waiting: ThreadWaiter[] = [];

  constructor(readonly size: number) {}

  take(): boolean {
    if (this.used >= this.size) return false;
    this.used += 1;
    return true;
  }

  give(): void {
    this.used -= 1;
    // Offered to the waiters in turn, so no plugin starves another, until one takes it: a waiter whose calls have
    // expired or gone meanwhile takes nothing, and must not keep the thread from the next.
    while (this.used < this.size) {
      const next = this.waiting.shift();
      if (next === undefined || next.pump()) return;
    }
  }

  /** Be called back (pump) when a thread is free. Waiting twice is waiting once. */
  wait(waiter: ThreadWaiter): void {
    if (!this.waiting.includes(waiter)) this.waiting.push(waiter);
  }

  /** No longer waiting (nothing queued, or closed). */
  leave(waiter: ThreadWaiter): void {
    const at = this.waiting.indexOf(waiter);
    if (at !== -1) this.waiting.splice(at, 1);
  }

  get stats(): { size: number; used: number } {
    return { size: this.size, used: this.used };
  }
}

let shared: ThreadBudget | undefined;

/**
 * The process's budget: the pool less Node's own threads. Created on first use; `wanted` (server.plugin_threads) only
 * says what the operator asked for, so that a pool too small for it is reported.
 */
export function threadBudget(wanted: number, warn: (message: string) => void): ThreadBudget {
  if (shared === undefined) {
    const available = poolSize() - NODE_THREADS;
    // At least one thread, or threaded plugins could not run at all; the warning says how to give them their own.
    const size = Math.min(Math.max(available, 1), MAX_ASYNC_CALLS);
    if (available < wanted) {
      warn(
        `threaded plugins get ${size} thread${size === 1 ? '' : 's'}, not the ${wanted} of server.plugin_threads: libuv's ` +
          `pool has ${poolSize()} (UV_THREADPOOL_SIZE), and Node keeps ${NODE_THREADS}. The heimdall command sizes it ` +
          `itself; an application that embeds the gateway sets UV_THREADPOOL_SIZE=${wanted + NODE_THREADS} before Node starts`,
      );
    }
    shared = new ThreadBudget(size);
  }
  return shared;
}
