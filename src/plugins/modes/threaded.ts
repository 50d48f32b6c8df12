/**
 * The threaded mode: each hook is a koffi asynchronous call on a worker thread, so the event loop goes on while the
 * plugin works (blocking I/O included). A call waits for a free slot of its plugin (one, unless the plugin declares
 * more: heimdall_plugin_concurrency) and a thread of the shared budget, in a bounded queue; it has a deadline counted
 * from when it was asked for. A call past its deadline fails at once, but its thread stays busy until the native
 * function returns: no thread can be stopped from outside. The isolated mode is the one that can stop a runaway.
 */
import type { Logger } from 'pino';
import type { CallResult, NativeLibrary } from '../abi.js';
import type { HookCaller } from '../native-plugin.js';
import { PluginFailure, type HookName, type RuntimeStatus } from '../plugin.js';
import type { ThreadBudget, ThreadWaiter } from './threads.js';

export interface ThreadedOptions {
  name: string;
  /** Calls that may run at once: min(declared, configured). */
  concurrency: number;
  timeoutMs: number;
  /** Calls that may wait for a slot; beyond, a call fails at once. */
  maxQueue: number;
  /** How long close() waits for running calls before leaving Cleanup to the last of them. */
  closeTimeoutMs: number;
  /** Whether dlclose is safe after Cleanup (C only). */
  unloadable: boolean;
  log: Logger;
}

type Start = (done: (r: CallResult | Error) => void) => void;

interface Call {
  hook: HookName;
  start: Start;
  resolve: (r: CallResult) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  /** Settled already (deadline, or close): whatever the native call returns later is dropped (its output freed). */
  settled: boolean;
}

export class ThreadedCaller implements HookCaller, ThreadWaiter {
  private running = 0;
  private readonly queue: Call[] = [];
  private closing = false;
  private drained: (() => void) | undefined;

  constructor(
    private readonly lib: NativeLibrary,
    private readonly budget: ThreadBudget,
    private readonly options: ThreadedOptions,
  ) {}

  transport(ctx: Buffer, http: Buffer, body: Buffer): Promise<CallResult> {
    return this.call('TransportInterceptor', (done) => this.lib.transportAsync(ctx, http, body, done));
  }

  pre(ctx: Buffer, request: Buffer): Promise<CallResult> {
    return this.call('PreHook', (done) => this.lib.preAsync(ctx, request, done));
  }

  post(ctx: Buffer, response: Buffer | null, error: Buffer | null): Promise<CallResult> {
    return this.call('PostHook', (done) => this.lib.postAsync(ctx, response, error, done));
  }

  chunk(ctx: Buffer, chunk: Buffer): Promise<CallResult> {
    return this.call('StreamChunkHook', (done) => this.lib.chunkAsync(ctx, chunk, done));
  }

  /** Calls running or waiting right now. */
  runtime(): RuntimeStatus {
    return { running: this.running, queued: this.queue.length, concurrency: this.options.concurrency };
  }

  /**
   * Fails what still waits, lets running calls finish (Cleanup must never run beside a hook), then Cleanup and, for
   * C, dlclose. A call that does not return within closeTimeoutMs (a hung plugin) is left to finish on its own; the
   * library is then cleaned up when it does, and never if it never does.
   */
  async close(): Promise<void> {
    this.closing = true;
    for (const call of this.queue.splice(0)) this.fail(call, `${call.hook} was not run: the plugin is being unloaded`);
    this.budget.leave(this);
    if (this.running > 0) {
      const drained = new Promise<void>((resolve) => (this.drained = resolve));
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = await Promise.race([
        drained.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(resolve, this.options.closeTimeoutMs, true))),
      ]);
      clearTimeout(timer);
      if (gaveUp) {
        this.options.log.warn(
          { plugin: this.options.name, running: this.running },
          `plugin ${this.options.name} still has ${this.running} call(s) running after ${this.options.closeTimeoutMs} ms; ` +
            'its Cleanup will run when they return',
        );
        void drained.then(() => {
          try {
            this.release();
            this.options.log.info({ plugin: this.options.name }, 'plugin cleaned up after its last call returned');
          } catch (err) {
            this.options.log.error({ plugin: this.options.name, err }, 'plugin cleanup failed');
          }
        });
        return;
      }
    }
    this.release();
  }

  pump(): boolean {
    let took = false;
    while (this.queue.length > 0 && this.running < this.options.concurrency) {
      if (!this.budget.take()) {
        this.budget.wait(this);
        return took;
      }
      took = true;
      this.dispatch(this.queue.shift() as Call);
    }
    if (this.queue.length === 0) this.budget.leave(this);
    return took;
  }

  private call(hook: HookName, start: Start): Promise<CallResult> {
    if (this.closing) return Promise.reject(this.failure(hook, `${hook} was not run: the plugin is being unloaded`));
    return new Promise<CallResult>((resolve, reject) => {
      const call: Call = { hook, start, resolve, reject, timer: undefined as unknown as NodeJS.Timeout, settled: false };
      call.timer = setTimeout(() => this.expire(call), this.options.timeoutMs);
      if (this.running < this.options.concurrency && this.queue.length === 0 && this.budget.take()) {
        this.dispatch(call);
        return;
      }
      if (this.queue.length >= this.options.maxQueue) {
        this.fail(call, `${hook} was not run: ${this.queue.length} calls already wait for this plugin (max_queue)`);
        return;
      }
      this.queue.push(call);
      if (this.running < this.options.concurrency) this.budget.wait(this);
    });
  }

  private dispatch(call: Call): void {
    this.running += 1;
    try {
      call.start((r) => this.finished(call, r));
    } catch (err) {
      this.finished(call, err as Error); // koffi refused the call (too many asynchronous calls at once)
    }
  }

  private finished(call: Call, r: CallResult | Error): void {
    this.running -= 1;
    this.budget.give();
    if (!call.settled) {
      call.settled = true;
      clearTimeout(call.timer);
      if (r instanceof Error) call.reject(this.failure(call.hook, `${call.hook} could not be called: ${r.message}`));
      else call.resolve(r);
    }
    if (this.running === 0 && this.drained !== undefined) this.drained();
    else this.pump();
  }

  private expire(call: Call): void {
    if (call.settled) return;
    const at = this.queue.indexOf(call);
    if (at !== -1) {
      this.queue.splice(at, 1);
      if (this.queue.length === 0) this.budget.leave(this);
      this.fail(call, `${call.hook} waited ${this.options.timeoutMs} ms for a free slot (timeout_ms); the plugin is busy`);
      return;
    }
    this.fail(call, `${call.hook} ran past its deadline of ${this.options.timeoutMs} ms (timeout_ms)`);
  }

  private fail(call: Call, message: string): void {
    if (call.settled) return;
    call.settled = true;
    clearTimeout(call.timer);
    call.reject(this.failure(call.hook, message));
  }

  private failure(hook: HookName, message: string): PluginFailure {
    return new PluginFailure(this.options.name, hook, message);
  }

  private release(): void {
    try {
      this.lib.cleanup();
    } finally {
      if (this.options.unloadable) this.lib.unload();
    }
  }
}
