/**
 * The gateway's side of an isolated plugin: a child process (native/plugin-host/host.c) that loads the plugin and
 * serves its hooks over a socket, one call at a time. HostProcess starts it, queues calls with their deadlines,
 * watches its memory, and when it dies (a crash, a deadline or the memory cap) fails the call it was running and
 * starts a new one, with backoff, to which the calls still waiting go; a crash loop stops the restarts for a long
 * cool-down. The rest of the gateway sees only `call()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { Errors } from '../../errors.js';
import type { CallResult } from '../abi.js';
import { PluginFailure, type HookName } from '../plugin.js';
import { hostServices } from '../../host/services.js';
import { serveHostCall } from './host-calls.js';
import {
  FLAG_CALL,
  FLAG_HOST,
  HostStatus,
  MISSING_SYMBOLS,
  Op,
  ProtocolError,
  ResponseReader,
  decodeHostCall,
  encodeHostReply,
  encodeRequest,
  encodeRequestHeader,
  outputOf,
  requestBodySize,
  type Response,
} from './protocol.js';

/** build/Release/heimdall-plugin-host, from src/plugins/isolated/ as from dist/plugins/isolated/. */
export const DEFAULT_HOST_BINARY = fileURLToPath(new URL('../../../build/Release/heimdall-plugin-host', import.meta.url));

export interface HostProcessOptions {
  /** The shared object to load (a private staged copy). */
  file: string;
  /** How messages name the plugin before its name is known: the configured file. */
  label: string;
  log: Logger;
  /** The Init config, JSON. */
  config: Buffer;
  /** Per hook call, counted from when the call is asked for (a wait in the queue counts). */
  timeoutMs: number;
  /** The child's resident set cap (enforced on Linux). */
  maxMemoryMb: number;
  maxOutputBytes: number;
  maxInputBytes: number;
  /** Calls that may wait behind the one in flight; beyond, a call fails at once. */
  maxQueue: number;
  /**
   * Backoff doubles from initialDelayMs to maxDelayMs. More than maxRestarts exits within windowMs is a crash loop:
   * no restart then for failedRetryMs (default 60 s), after which one start is tried, with the window reset.
   */
  restart: { initialDelayMs: number; maxDelayMs: number; maxRestarts: number; windowMs: number; failedRetryMs?: number };
  hostBinary?: string;
}

export interface HostInfo {
  abiVersion: number;
  name: string;
  exports: Set<string>;
  concurrency: number;
}

export interface ExitRecord {
  code: number | null;
  signal: string | null;
  /** signal, exit, memory, deadline, protocol (the child broke the protocol) or start (a restart failed). */
  reason: string;
  at: string;
}

export type HookOp = 'transport' | 'pre' | 'post' | 'chunk';

type Phase = 'starting' | 'running' | 'restarting' | 'failed' | 'closing' | 'closed';

/** Start-up (loading the plugin, Init, Cleanup) gets at least this long, whatever the hooks' deadline. */
const MIN_STARTUP_MS = 5000;
/** After Cleanup has answered, the child has this long to exit before it is killed. */
const EXIT_WAIT_MS = 2000;
const MEMORY_POLL_MS = 100;
const DEFAULT_FAILED_RETRY_MS = 60_000;
/** Lines of the child's stdout and stderr are cut to this many bytes. */
const MAX_LINE_BYTES = 4096;
/** Lines of the child's output logged per second, per plugin; the rest are dropped, and counted in one line. */
const MAX_LINES_PER_SECOND = 100;
/** Inputs larger than this go to the socket as they are, after the header (a writev), instead of being copied. */
const COPY_LIMIT = 64 * 1024;

const HOOKS: Record<HookOp, { op: Op; hook: HookName }> = {
  transport: { op: Op.TRANSPORT, hook: 'TransportInterceptor' },
  pre: { op: Op.PRE, hook: 'PreHook' },
  post: { op: Op.POST, hook: 'PostHook' },
  chunk: { op: Op.CHUNK, hook: 'StreamChunkHook' },
};

/** A request waiting for its answer: a hook call (settles as a CallResult) or a start-up step (a raw Response). */
type Pending = {
  /** For messages: "PreHook", "Init", "loading the plugin". */
  what: string;
  /** What the child was doing, for messages about its death: "running PreHook", "loading the plugin". */
  activity: string;
  limitMs: number;
  deadline: number;
  parts: Buffer[];
  reject(err: Error): void;
} & ({ hook: HookName; resolve(value: CallResult): void } | { hook: undefined; resolve(value: Response): void });

export class HostProcess {
  private phase: Phase = 'starting';
  private child: HostChild | undefined;
  private current: HostInfo | undefined;
  private name: string;
  private readonly queue: Pending[] = [];
  private inFlight: Pending | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** While no child serves hook calls, fails the calls waiting at their deadlines (at sweepAt, the first). */
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** When the child stopped, within the crash-loop window. */
  private exits: number[] = [];
  private restarts = 0;
  private lastExit: ExitRecord | undefined;
  /** What happened to the last child, for the calls that fail meanwhile. */
  private lastCause = 'is not running';
  /** In the 'failed' phase: why, for the calls refused meanwhile. */
  private failedWhy = '';
  /** The start tried after a crash loop's cool-down is under way: if it fails, the cool-down starts over. */
  private retrying = false;
  private readonly failedRetryMs: number;
  /** The output rate limit: lines logged since lineWindow (a performance.now()), lines dropped since. */
  private lineWindow = -Infinity;
  private linesLogged = 0;
  private linesDropped = 0;
  private dropTimer: NodeJS.Timeout | undefined;
  /** How a child started by a restart ended, when it died before it was running. */
  private bootExit: ExitRecord | undefined;
  private closing: Promise<void> | undefined;
  private readonly startupMs: number;
  private readonly binary: string;

  private constructor(
    private readonly opts: HostProcessOptions,
    private readonly check: (info: HostInfo) => void,
  ) {
    this.name = opts.label;
    this.startupMs = Math.max(opts.timeoutMs, MIN_STARTUP_MS);
    this.binary = opts.hostBinary ?? DEFAULT_HOST_BINARY;
    this.failedRetryMs = opts.restart.failedRetryMs ?? DEFAULT_FAILED_RETRY_MS;
  }

  /**
   * Starts the child, loads the plugin there and runs Init. `check` sees what the plugin is before Init runs (at
   * every restart too), and throws a HeimdallError to refuse it.
   */
  static async start(opts: HostProcessOptions, check: (info: HostInfo) => void): Promise<HostProcess> {
    const host = new HostProcess(opts, check);
    try {
      await host.boot();
    } catch (err) {
      host.phase = 'closed';
      throw err;
    }
    host.phase = 'running';
    return host;
  }

  get info(): HostInfo {
    return this.current!;
  }

  call(op: HookOp, bufs: (Buffer | null)[]): Promise<CallResult> {
    const { op: code, hook } = HOOKS[op];
    // While a new child starts, calls wait for it (within their deadlines); after a crash loop they fail at once.
    if (this.phase !== 'running' && this.phase !== 'restarting') return Promise.reject(new PluginFailure(this.name, hook, this.unavailable()));
    if (this.queue.length >= this.opts.maxQueue && this.blocked()) {
      return Promise.reject(new PluginFailure(this.name, hook,
        `${hook} not called: ${this.queue.length} calls are already waiting for the plugin host (max_queue)`));
    }
    const size = requestBodySize(bufs);
    if (size > this.opts.maxInputBytes) {
      return Promise.reject(new PluginFailure(this.name, hook,
        `${hook} not called: its input of ${size} bytes is over the plugin host's limit of ${this.opts.maxInputBytes}`));
    }
    const parts = size <= COPY_LIMIT ? [encodeRequest(code, bufs)] : largeRequest(code, bufs);
    const limitMs = this.opts.timeoutMs;
    return new Promise<CallResult>((resolve, reject) => {
      this.queue.push({ what: hook, activity: `running ${hook}`, hook, limitMs, deadline: performance.now() + limitMs, parts, resolve, reject });
      this.pump();
    });
  }

  state(): 'running' | 'restarting' | 'failed' | 'closed' {
    if (this.phase === 'starting') return 'restarting';
    if (this.phase === 'closing') return 'closed';
    return this.phase;
  }

  stats(): { restarts: number; lastExit?: ExitRecord } {
    return this.lastExit === undefined ? { restarts: this.restarts } : { restarts: this.restarts, lastExit: { ...this.lastExit } };
  }

  /**
   * Calls already asked for finish first (each within its deadline); then Cleanup runs in the child, which exits.
   * New calls fail at once from now on. Resolves when the child is gone (killed if it does not exit in time).
   */
  close(): Promise<void> {
    return (this.closing ??= this.shutDown());
  }

  // ---- Start-up ---------------------------------------------------------------------------------------------------

  /** Spawns a child, HELLO, check, INIT. On failure the child is killed and the error says why, naming the file. */
  private async boot(): Promise<void> {
    const child = this.spawnChild();
    try {
      const hello = await this.request(Op.HELLO, [], 'loading the plugin', 'loading the plugin', true).catch((err: Error) => {
        throw Errors.PLUGIN_HOST(this.opts.label, err.message);
      });
      const info = this.readHello(hello);
      this.check(info);
      if (this.current !== undefined && info.name !== this.current.name) {
        throw Errors.PLUGIN_NAME(this.opts.label, `GetName returned "${info.name}" after a restart, "${this.current.name}" before`);
      }
      this.name = info.name;
      const init = await this.request(Op.INIT, [this.opts.config], 'Init', 'running Init', true).catch((err: Error) => {
        throw Errors.PLUGIN_INIT(info.name, this.opts.label, err.message);
      });
      if (init.status !== 0) {
        throw Errors.PLUGIN_INIT(info.name, this.opts.label, outputOf(init) || `it returned status ${init.status}`);
      }
      this.current = info;
    } catch (err) {
      if (this.child === child) {
        this.child = undefined;
        child.kill({ reason: 'start', message: 'was stopped: it did not start' });
      }
      throw err;
    }
  }

  private readHello(hello: Response): HostInfo {
    const text = outputOf(hello) ?? '';
    if (hello.flags & FLAG_HOST || hello.status !== 0) {
      if (text.startsWith(MISSING_SYMBOLS)) throw Errors.PLUGIN_SYMBOL(this.opts.label, text.slice(MISSING_SYMBOLS.length).split(', '));
      throw Errors.PLUGIN_OPEN(this.opts.label, text || `status ${hello.status}`);
    }
    let parsed: { abi_version?: unknown; name?: unknown; exports?: unknown; concurrency?: unknown };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw Errors.PLUGIN_HOST(this.opts.label, `it answered HELLO with something other than JSON: ${text.slice(0, 200)}`);
    }
    const { abi_version: abiVersion, name, exports, concurrency } = parsed;
    if (typeof abiVersion !== 'number' || !Array.isArray(exports) || typeof concurrency !== 'number') {
      throw Errors.PLUGIN_HOST(this.opts.label, `it answered HELLO with an unexpected object: ${text.slice(0, 200)}`);
    }
    // null: GetName returned NULL. No name at all: the host did not call GetName, the plugin being of another ABI
    // major version, which `check` refuses, naming both versions.
    if (name === null) throw Errors.PLUGIN_NAME(this.opts.label, 'GetName returned NULL; it must return the plugin\'s name');
    return { abiVersion, name: typeof name === 'string' ? name : '', exports: new Set(exports.map(String)), concurrency };
  }

  private spawnChild(): HostChild {
    const { file, maxInputBytes, maxOutputBytes, maxMemoryMb } = this.opts;
    const child = new HostChild(this.binary, [file, String(maxInputBytes), String(maxOutputBytes)], {
      maxResponse: maxOutputBytes + 64,
      maxMemoryBytes: maxMemoryMb * 1024 * 1024,
      maxMemoryMb,
      onResponse: (c, r) => c === this.child && this.onResponse(r),
      onExit: (c, code, signal) => c === this.child && this.onExit(c, code, signal),
      onLine: this.onLine,
    });
    this.child = child;
    return child;
  }

  /**
   * A start-up or shut-down step, through the queue like any call: start-up steps (`first`) go before the hook calls
   * waiting for the new child, Cleanup after the calls already asked for.
   */
  private request(op: Op, bufs: Buffer[], what: string, activity: string, first: boolean): Promise<Response> {
    return new Promise<Response>((resolve: (r: Response) => void, reject) => {
      if (this.child === undefined) return reject(new Error(`plugin host ${this.lastCause}`));
      const limitMs = this.startupMs;
      const step: Pending = { what, activity, hook: undefined, limitMs, deadline: performance.now() + limitMs, parts: [encodeRequest(op, bufs)], resolve, reject };
      if (first) this.queue.unshift(step);
      else this.queue.push(step);
      this.pump();
    });
  }

  // ---- Calls ------------------------------------------------------------------------------------------------------

  /**
   * Sends the next call that is still within its deadline, if the child is free. Nothing is sent to a child that is
   * being killed, and no hook call to one that is still starting (its HELLO and INIT go first).
   */
  private pump(): void {
    const child = this.child;
    const serving = child !== undefined && child.killed === undefined && (this.phase === 'running' || this.phase === 'closing');
    if (child !== undefined && child.killed === undefined) {
      while (this.inFlight === undefined && this.queue.length > 0) {
        const next = this.queue[0]!;
        if (next.hook !== undefined && !serving) break;
        this.queue.shift();
        const left = next.deadline - performance.now();
        if (left <= 0) {
          this.fail(next, this.waitedTooLong(next));
          continue;
        }
        this.inFlight = next;
        child.hold(true);
        child.write(next.parts);
        this.deadlineTimer = setTimeout(this.onDeadline, left);
      }
    }
    if (this.queue.length === 0) {
      if (this.sweepTimer !== undefined) {
        clearTimeout(this.sweepTimer);
        this.sweepTimer = undefined;
      }
    } else if (!serving) {
      // A serving child takes the calls in order, each before its deadline (the one in flight has the earliest);
      // without one, nothing would fail them in time.
      this.armSweep();
    }
  }

  /** Whether a new call would have to wait in the queue (and so counts against max_queue). */
  private blocked(): boolean {
    return this.inFlight !== undefined || this.phase !== 'running' || this.child === undefined || this.child.killed !== undefined;
  }

  private armSweep(): void {
    let first = Infinity;
    for (const p of this.queue) if (p.deadline < first) first = p.deadline;
    if (this.sweepTimer !== undefined) {
      if (this.sweepAt <= first) return;
      clearTimeout(this.sweepTimer);
    }
    this.sweepAt = first;
    // Ref'd (unlike the restart timer): the process stays up until each waiting call has its answer.
    this.sweepTimer = setTimeout(this.sweep, Math.max(0, Math.ceil(first - performance.now())));
  }

  private readonly sweep = (): void => {
    this.sweepTimer = undefined;
    const now = performance.now();
    let kept = 0;
    for (const p of this.queue) {
      if (p.deadline <= now) this.fail(p, this.waitedTooLong(p));
      else this.queue[kept++] = p;
    }
    this.queue.length = kept;
    this.pump();
  };

  private waitedTooLong(p: Pending): string {
    const why = this.phase === 'restarting' ? `, which is restarting after it ${this.lastCause}` : '';
    return `${p.what} waited past its deadline of ${p.limitMs} ms for the plugin host${why}`;
  }

  private failQueued(message: string): void {
    for (const waiting of this.queue.splice(0)) this.fail(waiting, message);
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private onResponse(r: Response): void {
    if (r.flags & FLAG_CALL) {
      this.onHostCall(r);
      return;
    }
    const p = this.inFlight;
    if (p === undefined) {
      this.child?.kill({ reason: 'protocol', message: 'was killed: it answered a call that was not made' });
      return;
    }
    this.inFlight = undefined;
    clearTimeout(this.deadlineTimer);
    if (p.hook === undefined) p.resolve(r);
    else this.settle(p, r);
    this.pump();
    if (this.inFlight === undefined) this.child?.hold(false);
  }

  /**
   * The plugin called a host service (ABI 1.2) in the middle of a call: answered at once, from this process's
   * services; the call's deadline runs on meanwhile. A malformed one is the child breaking the protocol.
   */
  private onHostCall(r: Response): void {
    const child = this.child;
    if (child === undefined) return;
    let answer;
    let oneway;
    try {
      const call = decodeHostCall(r);
      oneway = call.oneway;
      answer = serveHostCall(hostServices().plugin(this.name), call);
    } catch (err) {
      child.kill({ reason: 'protocol', message: `was killed: it sent a malformed host call (${(err as Error).message})` });
      return;
    }
    if (!oneway) child.write([encodeHostReply(answer.status, answer.num, answer.value)]);
  }

  private settle(p: Pending & { hook: HookName }, r: Response): void {
    const hook = p.hook;
    if ((r.flags & FLAG_HOST) === 0) {
      p.resolve({ status: r.status, output: outputOf(r) });
      return;
    }
    const message = outputOf(r) ?? '';
    if (r.status === HostStatus.OUTPUT_TOO_LARGE) {
      p.resolve({ status: r.status, output: undefined, refused: `${message} (max_output_bytes)` });
    } else if (r.status === HostStatus.NOT_EXPORTED) {
      p.reject(new PluginFailure(this.name, hook, `${hook} is not exported by the plugin`));
    } else {
      p.reject(new PluginFailure(this.name, hook, `the plugin host refused ${hook}: ${message}`));
    }
  }

  private fail(p: Pending, message: string): void {
    p.reject(p.hook === undefined ? new Error(message) : new PluginFailure(this.name, p.hook, message));
  }

  /** The call in flight ran out of time: the hook may be looping, and the only way to stop it is to kill the child. */
  private readonly onDeadline = (): void => {
    const p = this.inFlight;
    if (p === undefined) return;
    this.inFlight = undefined;
    const cause = `was killed: ${p.what} ran past its deadline of ${p.limitMs} ms`;
    this.child?.kill({ reason: 'deadline', message: cause, hook: p.hook });
    this.fail(p, `plugin host ${cause}`);
    // Only that call fails: the others, never sent, wait for the next child, each within its own deadline.
    this.pump();
  };

  private unavailable(): string {
    switch (this.phase) {
      case 'restarting':
      case 'starting':
        return `plugin host is restarting after it ${this.lastCause}`;
      case 'failed':
        return `plugin host failed: ${this.failedWhy}; it is not restarted for ${this.failedRetryMs} ms (or until the ` +
          'plugin is reloaded)';
      default:
        return 'plugin is closed';
    }
  }

  // ---- Exits and restarts -----------------------------------------------------------------------------------------

  private onExit(child: HostChild, code: number | null, signal: string | null): void {
    this.child = undefined;
    clearTimeout(this.deadlineTimer);
    const running = this.inFlight;
    this.inFlight = undefined;
    const kill = child.killed;
    let cause = kill?.message ?? (signal !== null ? `exited on signal ${signal}` : `exited with code ${code}`);
    if (kill?.reason !== 'deadline' && kill?.reason !== 'start') {
      cause += running ? ` while ${running.activity}` : this.phase === 'running' ? ' while idle' : '';
    }
    this.lastCause = cause;
    if (running) this.fail(running, `plugin host ${cause}`);
    const exit = { code, signal, reason: kill?.reason ?? (signal !== null ? 'signal' : 'exit'), at: new Date().toISOString() };
    if (this.phase === 'running') {
      // The calls waiting were never sent: they wait for the next child (a crash loop fails them).
      this.crashed(cause, exit, running?.hook ?? kill?.hook, kill?.rssMb);
      this.pump();
    } else if (this.phase === 'closing') {
      this.failQueued(`plugin host ${cause}`);
      this.opts.log.debug({ plugin: this.name, code, signal }, 'plugin host exited');
    } else {
      this.bootExit = exit; // start-up handles its own child; a restart records how it ended
    }
  }

  /** The child is gone (or would not start again): restart it after the backoff, or give up on a crash loop. */
  private crashed(cause: string, exit: ExitRecord, hook: string | undefined, rssMb?: number): void {
    this.lastExit = exit;
    const now = performance.now();
    const { initialDelayMs, maxDelayMs, maxRestarts, windowMs } = this.opts.restart;
    this.exits = this.exits.filter((t) => now - t < windowMs);
    this.exits.push(now);
    const fields = { plugin: this.name, code: exit.code, signal: exit.signal, hook: hook ?? null, reason: exit.reason, ...(rssMb === undefined ? {} : { rss_mb: rssMb }) };
    if (this.exits.length > maxRestarts) {
      this.giveUp(fields, `plugin host ${cause}; it stopped ${this.exits.length} times within ${windowMs} ms, so it is ` +
        `not restarted for ${this.failedRetryMs} ms: its hooks fail at once meanwhile`,
      `it stopped ${this.exits.length} times within ${windowMs} ms (last, it ${cause})`);
      return;
    }
    const delay = Math.min(initialDelayMs * 2 ** (this.exits.length - 1), maxDelayMs);
    this.phase = 'restarting';
    this.opts.log.error(fields, `plugin host ${cause}; restarting it in ${delay} ms`);
    this.restartTimer = setTimeout(() => void this.restart(), delay).unref();
  }

  /** A crash loop: no restart (and every call fails at once) until the cool-down is over, then one start is tried. */
  private giveUp(fields: Record<string, unknown>, logged: string, why: string): void {
    this.phase = 'failed';
    this.failedWhy = why;
    this.opts.log.error(fields, logged);
    this.failQueued(`plugin host failed: ${why}`);
    this.restartTimer = setTimeout(this.retryAfterCrashLoop, this.failedRetryMs).unref();
  }

  private readonly retryAfterCrashLoop = (): void => {
    this.restartTimer = undefined;
    if (this.phase !== 'failed') return;
    this.exits = []; // a new crash-loop window
    this.retrying = true;
    this.phase = 'restarting';
    this.opts.log.warn({ plugin: this.name }, `plugin host: starting it again, ${this.failedRetryMs} ms after its crash loop`);
    void this.restart();
  };

  private async restart(): Promise<void> {
    this.restartTimer = undefined;
    if (this.phase !== 'restarting') return;
    this.restarts += 1;
    this.bootExit = undefined;
    try {
      await this.boot();
    } catch (err) {
      if (this.phase !== 'restarting') return; // closed meanwhile
      this.lastCause = `failed to start again: ${(err as Error).message}`;
      const exit = this.bootExit ?? { code: null, signal: null, reason: 'start', at: new Date().toISOString() };
      if (this.retrying) {
        this.retrying = false;
        this.lastExit = exit;
        this.giveUp({ plugin: this.name, code: exit.code, signal: exit.signal, hook: null, reason: exit.reason },
          `plugin host ${this.lastCause}; it is not restarted for another ${this.failedRetryMs} ms`,
          `it ${this.lastCause}, after a crash loop`);
        return;
      }
      this.crashed(this.lastCause, exit, undefined);
      return;
    }
    if (this.phase !== 'restarting') return;
    this.retrying = false;
    this.phase = 'running';
    this.opts.log.info({ plugin: this.name, restarts: this.restarts }, 'plugin host restarted');
    this.pump(); // the calls that waited for it
  }

  /** The child's output, to the log, at most MAX_LINES_PER_SECOND lines a second: the rest are counted, and said. */
  private readonly onLine = (stream: 'stdout' | 'stderr', line: string): void => {
    const now = performance.now();
    if (now - this.lineWindow >= 1000) {
      this.lineWindow = now;
      this.linesLogged = 0;
    }
    if (this.linesLogged >= MAX_LINES_PER_SECOND) {
      if (this.linesDropped++ === 0) this.dropTimer = setTimeout(this.reportDropped, this.lineWindow + 1000 - now).unref();
      return;
    }
    this.linesLogged += 1;
    if (stream === 'stdout') this.opts.log.info({ plugin: this.name, stream }, line);
    else this.opts.log.warn({ plugin: this.name, stream }, line);
  };

  private readonly reportDropped = (): void => {
    clearTimeout(this.dropTimer);
    this.dropTimer = undefined;
    const dropped = this.linesDropped;
    this.linesDropped = 0;
    if (dropped === 0) return;
    this.opts.log.warn({ plugin: this.name, dropped },
      `plugin output: ${dropped} lines dropped, over the limit of ${MAX_LINES_PER_SECOND} lines per second`);
  };

  private async shutDown(): Promise<void> {
    clearTimeout(this.restartTimer);
    const running = this.phase === 'running';
    this.phase = 'closing';
    // Calls waiting for a child that was not running now never get one.
    if (!running) this.failQueued('plugin is closed');
    const child = this.child;
    if (child !== undefined) {
      if (running) {
        // Cleanup queues behind the calls already asked for; if the child dies or hangs meanwhile, it is killed below.
        await this.request(Op.CLEANUP, [], 'Cleanup', 'running Cleanup', false).catch(() => undefined);
      }
      if (!(await child.exitedWithin(running ? EXIT_WAIT_MS : 0))) {
        child.kill({ reason: 'close', message: 'was killed: it did not exit when closed' });
        await child.exitedWithin(EXIT_WAIT_MS);
      }
      this.child = undefined;
    }
    this.failQueued('plugin is closed');
    this.reportDropped();
    this.phase = 'closed';
  }
}

function largeRequest(op: Op, bufs: (Buffer | null)[]): Buffer[] {
  const parts = [encodeRequestHeader(op, bufs)];
  for (const b of bufs) if (b !== null && b.length > 0) parts.push(b);
  return parts;
}

// ---- One child process ------------------------------------------------------------------------------------------

interface Kill {
  reason: 'memory' | 'deadline' | 'protocol' | 'start' | 'close';
  /** Follows "plugin host": "was killed: ..." */
  message: string;
  /** The hook whose deadline passed (its call has already been failed). */
  hook?: HookName;
  rssMb?: number;
}

interface ChildEvents {
  maxResponse: number;
  maxMemoryBytes: number;
  maxMemoryMb: number;
  onResponse(child: HostChild, r: Response): void;
  onExit(child: HostChild, code: number | null, signal: string | null): void;
  onLine(stream: 'stdout' | 'stderr', line: string): void;
}

/** If the channel closes but the process does not exit, it is killed after this long. */
const CHANNEL_GRACE_MS = 200;
const statusScratch = Buffer.alloc(4096);
/** What the child inherits of the gateway's environment (and the LC_* variables): no API keys, no secrets. */
const KEPT_ENV = new Set(['PATH', 'HOME', 'LANG', 'TZ']);

function childEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && (KEPT_ENV.has(key) || key.startsWith('LC_'))) env[key] = value;
  }
  return env;
}

/**
 * One child process: spawns it, writes requests, cuts its answers into responses and its output into lines, watches
 * its memory, and reports its end once, after every answer it wrote has been read.
 */
class HostChild {
  killed: Kill | undefined;
  private readonly proc: ChildProcess;
  private readonly channel: Socket | undefined;
  private readonly reader: ResponseReader;
  private broken = false;
  private exit: { code: number | null; signal: string | null } | undefined;
  private channelClosed = false;
  private finished = false;
  private readonly whenFinished: Promise<void>;
  private finish!: () => void;
  private memoryTimer: NodeJS.Timeout | undefined;
  private status = -1;
  private held = false;

  constructor(binary: string, args: string[], private readonly events: ChildEvents) {
    this.whenFinished = new Promise((resolve) => (this.finish = resolve));
    this.reader = new ResponseReader(events.maxResponse);
    // Its own session, and so its own process group: a Ctrl-C in the gateway's terminal is for the gateway, which then
    // closes its plugins in order; and a kill reaches whatever the plugin started, too (see killGroup).
    this.proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], detached: true, env: childEnvironment() });
    this.proc.unref();
    this.proc.on('error', (err) => {
      // Only a failed spawn matters here: a failed kill is followed by the exit anyway.
      if (this.proc.pid === undefined) this.end(null, null, `could not be started (${binary}): ${err.message}`);
    });
    this.proc.on('exit', (code, signal) => {
      // What the plugin started goes with it. The group outlives its leader only while it has members, so its id (the
      // child's pid) is not reused meanwhile; and no other child has been started since this one was reaped.
      this.killGroup();
      this.exit = { code, signal };
      // Answers written just before the end may still be in the socket: they are read first.
      if (this.channelClosed) this.done();
      else setTimeout(() => this.done(), CHANNEL_GRACE_MS).unref();
    });
    this.channel = this.proc.stdio[3] as Socket | undefined;
    if (this.channel) {
      this.channel.unref();
      this.channel.on('data', (chunk: Buffer) => this.onData(chunk));
      this.channel.on('error', () => {}); // EPIPE and the like: the exit says what happened
      this.channel.on('close', () => {
        this.channelClosed = true;
        if (this.exit !== undefined) this.done();
        else setTimeout(() => {
          if (this.exit === undefined) this.kill({ reason: 'protocol', message: 'was killed: it closed its channel to the gateway' });
        }, CHANNEL_GRACE_MS).unref();
      });
    }
    for (const stream of ['stdout', 'stderr'] as const) {
      const readable = this.proc[stream] as Socket | null;
      if (!readable) continue;
      readable.unref();
      const lines = new LineSplitter((line) => events.onLine(stream, line));
      readable.on('data', (chunk: Buffer) => lines.push(chunk));
      readable.on('end', () => lines.end());
      readable.on('error', () => {});
    }
    if (process.platform === 'linux' && this.proc.pid !== undefined) {
      this.memoryTimer = setInterval(() => this.checkMemory(), MEMORY_POLL_MS).unref();
    }
  }

  write(parts: Buffer[]): void {
    const channel = this.channel;
    if (!channel || this.finished) return;
    if (parts.length === 1) {
      channel.write(parts[0]!);
      return;
    }
    channel.cork();
    for (const part of parts) channel.write(part);
    channel.uncork();
  }

  /**
   * Whether the child keeps the gateway's event loop alive: while a call waits for it (its answer, or its exit, must
   * be seen), not while it idles, so an idle plugin never holds a process open.
   */
  hold(busy: boolean): void {
    if (busy === this.held || this.finished) return;
    this.held = busy;
    if (busy) {
      this.proc.ref();
      this.channel?.ref();
    } else {
      this.proc.unref();
      this.channel?.unref();
    }
  }

  /** SIGKILL, remembering why (the first reason wins: it is the cause, later ones are consequences). */
  kill(why: Kill): void {
    if (this.finished || this.exit !== undefined) return;
    this.killed ??= why;
    this.hold(true); // until its exit is seen, and reported
    if (!this.killGroup()) this.proc.kill('SIGKILL');
  }

  /** SIGKILL to the child's process group: the child and whatever it started (unless that left the group). */
  private killGroup(): boolean {
    const pid = this.proc.pid;
    if (pid === undefined) return false;
    try {
      process.kill(-pid, 'SIGKILL');
      return true;
    } catch {
      return false; // no such group (left empty), or not allowed
    }
  }

  /** Whether the child has exited (and its end been reported), waiting up to `ms` for it. */
  exitedWithin(ms: number): Promise<boolean> {
    if (this.finished) return Promise.resolve(true);
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      void this.whenFinished.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private onData(chunk: Buffer): void {
    if (this.broken) return;
    try {
      this.reader.push(chunk, (r) => this.events.onResponse(this, r));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.broken = true;
      this.kill({ reason: 'protocol', message: `was killed: it sent ${err.message}` });
    }
  }

  private done(): void {
    if (this.exit !== undefined) this.end(this.exit.code, this.exit.signal);
  }

  private end(code: number | null, signal: string | null, spawnError?: string): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.memoryTimer);
    if (this.status >= 0) closeSync(this.status);
    this.status = -1;
    this.channel?.destroy();
    if (spawnError !== undefined) this.killed ??= { reason: 'start', message: spawnError };
    this.events.onExit(this, code, signal);
    this.finish();
  }

  /**
   * VmRSS (in kB) from /proc/<pid>/status, opened once (after exec) and re-read in place: one read per tick, immune to
   * pid reuse, and in units the kernel states (nothing the child says is trusted).
   */
  private checkMemory(): void {
    try {
      if (this.status < 0) this.status = openSync(`/proc/${this.proc.pid}/status`, 'r');
      const n = readSync(this.status, statusScratch, 0, statusScratch.length, 0);
      const at = statusScratch.indexOf('VmRSS:', 0, 'latin1');
      if (at < 0 || at >= n) return; // none: the process is exiting
      const rss = Number.parseInt(statusScratch.toString('latin1', at + 6, Math.min(n, at + 40)), 10) * 1024;
      if (rss > this.events.maxMemoryBytes) {
        this.kill({
          reason: 'memory',
          message: `was killed: memory over max_memory_mb (${this.events.maxMemoryMb} MB)`,
          rssMb: Math.round(rss / (1024 * 1024)),
        });
      }
    } catch {
      clearInterval(this.memoryTimer); // the process is gone; its exit is on the way
    }
  }
}

/** Cuts a stream into lines for the log, holding at most MAX_LINE_BYTES: a longer line is logged in pieces. */
class LineSplitter {
  private readonly pending = Buffer.allocUnsafe(MAX_LINE_BYTES);
  private fill = 0;

  constructor(private readonly emit: (line: string) => void) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const newline = chunk.indexOf(10, at);
      const end = newline === -1 ? chunk.length : newline;
      while (at < end) {
        const n = chunk.copy(this.pending, this.fill, at, Math.min(end, at + MAX_LINE_BYTES - this.fill));
        this.fill += n;
        at += n;
        if (this.fill === MAX_LINE_BYTES) this.flush();
      }
      if (newline === -1) return;
      this.flush();
      at = newline + 1;
    }
  }

  end(): void {
    this.flush();
  }

  private flush(): void {
    let len = this.fill;
    this.fill = 0;
    if (len > 0 && this.pending[len - 1] === 13) len -= 1; // \r\n
    if (len > 0) this.emit(this.pending.toString('utf8', 0, len));
  }
}
