/**
 * The gateway's side of an isolated plugin: a child process (native/plugin-host/host.c) that loads the plugin and
 * serves its hooks over a socket, one call at a time. HostProcess starts it, queues calls with their deadlines,
 * watches its memory, and when it dies (a crash, a deadline or the memory cap) fails the calls it held and starts a
 * new one, with backoff, until it dies too often (a crash loop). The rest of the gateway sees only `call()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { Errors } from '../../errors.js';
import type { CallResult } from '../abi.js';
import { PluginFailure, type HookName } from '../plugin.js';
import {
  FLAG_HOST,
  HostStatus,
  MISSING_SYMBOLS,
  Op,
  ProtocolError,
  ResponseReader,
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
  /** Backoff doubles from initialDelayMs to maxDelayMs; more than maxRestarts exits within windowMs: give up. */
  restart: { initialDelayMs: number; maxDelayMs: number; maxRestarts: number; windowMs: number };
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
/** Lines of the child's stdout and stderr are cut to this many bytes. */
const MAX_LINE_BYTES = 4096;
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
  private restartTimer: NodeJS.Timeout | undefined;
  /** When the child stopped, within the crash-loop window. */
  private exits: number[] = [];
  private restarts = 0;
  private lastExit: ExitRecord | undefined;
  /** What happened to the last child, for the calls that fail meanwhile. */
  private lastCause = 'is not running';
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
    if (this.phase !== 'running') return Promise.reject(new PluginFailure(this.name, hook, this.unavailable()));
    if (this.inFlight !== undefined && this.queue.length >= this.opts.maxQueue) {
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
      if (this.inFlight === undefined) this.pump();
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
      const hello = await this.request(Op.HELLO, [], 'loading the plugin', 'loading the plugin').catch((err: Error) => {
        throw Errors.PLUGIN_HOST(this.opts.label, err.message);
      });
      const info = this.readHello(hello);
      this.check(info);
      if (this.current !== undefined && info.name !== this.current.name) {
        throw Errors.PLUGIN_NAME(this.opts.label, `GetName returned "${info.name}" after a restart, "${this.current.name}" before`);
      }
      this.name = info.name;
      const init = await this.request(Op.INIT, [this.opts.config], 'Init', 'running Init').catch((err: Error) => {
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
    let parsed: { abi_version?: unknown; name?: unknown; exports?: unknown; concurrency?: unknown; page_size?: unknown };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw Errors.PLUGIN_HOST(this.opts.label, `it answered HELLO with something other than JSON: ${text.slice(0, 200)}`);
    }
    const { abi_version: abiVersion, name, exports, concurrency, page_size: pageSize } = parsed;
    if (typeof abiVersion !== 'number' || !Array.isArray(exports) || typeof concurrency !== 'number') {
      throw Errors.PLUGIN_HOST(this.opts.label, `it answered HELLO with an unexpected object: ${text.slice(0, 200)}`);
    }
    // null: GetName returned NULL. No name at all: the host did not call GetName, the plugin being of another ABI
    // major version, which `check` refuses, naming both versions.
    if (name === null) throw Errors.PLUGIN_NAME(this.opts.label, 'GetName returned NULL; it must return the plugin\'s name');
    if (typeof pageSize === 'number' && this.child) this.child.pageSize = pageSize;
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
      onLine: (stream, line) => {
        if (stream === 'stdout') this.opts.log.info({ plugin: this.name, stream }, line);
        else this.opts.log.warn({ plugin: this.name, stream }, line);
      },
    });
    this.child = child;
    return child;
  }

  /** A start-up or shut-down step, through the queue like any call. */
  private request(op: Op, bufs: Buffer[], what: string, activity: string): Promise<Response> {
    return new Promise<Response>((resolve: (r: Response) => void, reject) => {
      if (this.child === undefined) return reject(new Error(`plugin host ${this.lastCause}`));
      const limitMs = this.startupMs;
      this.queue.push({ what, activity, hook: undefined, limitMs, deadline: performance.now() + limitMs, parts: [encodeRequest(op, bufs)], resolve, reject });
      if (this.inFlight === undefined) this.pump();
    });
  }

  // ---- Calls ------------------------------------------------------------------------------------------------------

  /** Sends the next call that is still within its deadline, if the child is free. */
  private pump(): void {
    const child = this.child;
    while (this.inFlight === undefined && child !== undefined && this.queue.length > 0) {
      const next = this.queue.shift()!;
      const left = next.deadline - performance.now();
      if (left <= 0) {
        this.fail(next, `${next.what} waited past its deadline of ${next.limitMs} ms for the plugin host`);
        continue;
      }
      this.inFlight = next;
      child.hold(true);
      child.write(next.parts);
      this.deadlineTimer = setTimeout(this.onDeadline, left);
    }
  }

  private onResponse(r: Response): void {
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
  };

  private unavailable(): string {
    switch (this.phase) {
      case 'restarting':
      case 'starting':
        return `plugin host is restarting after it ${this.lastCause}`;
      case 'failed':
        return `plugin host failed: it stopped ${this.exits.length} times within ${this.opts.restart.windowMs} ms ` +
          `(last, it ${this.lastCause}), and is not restarted; reload the plugin to try again`;
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
    for (const waiting of this.queue.splice(0)) this.fail(waiting, `plugin host ${cause}`);
    const exit = { code, signal, reason: kill?.reason ?? (signal !== null ? 'signal' : 'exit'), at: new Date().toISOString() };
    if (this.phase === 'running') {
      this.crashed(cause, exit, running?.hook ?? kill?.hook, kill?.rssMb);
    } else if (this.phase === 'closing') {
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
      this.phase = 'failed';
      this.opts.log.error(fields, `plugin host ${cause}; it stopped ${this.exits.length} times within ${windowMs} ms, ` +
        'so it is not restarted: its hooks fail until the plugin is reloaded');
      return;
    }
    const delay = Math.min(initialDelayMs * 2 ** (this.exits.length - 1), maxDelayMs);
    this.phase = 'restarting';
    this.opts.log.error(fields, `plugin host ${cause}; restarting it in ${delay} ms`);
    this.restartTimer = setTimeout(() => void this.restart(), delay).unref();
  }

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
      this.crashed(this.lastCause, exit, undefined);
      return;
    }
    if (this.phase !== 'restarting') return;
    this.phase = 'running';
    this.opts.log.info({ plugin: this.name, restarts: this.restarts }, 'plugin host restarted');
  }

  private async shutDown(): Promise<void> {
    clearTimeout(this.restartTimer);
    const running = this.phase === 'running';
    this.phase = 'closing';
    const child = this.child;
    if (child !== undefined) {
      if (running) {
        // Cleanup queues behind the calls already asked for; if the child dies or hangs meanwhile, it is killed below.
        await this.request(Op.CLEANUP, [], 'Cleanup', 'running Cleanup').catch(() => undefined);
      }
      if (!(await child.exitedWithin(running ? EXIT_WAIT_MS : 0))) {
        child.kill({ reason: 'close', message: 'was killed: it did not exit when closed' });
        await child.exitedWithin(EXIT_WAIT_MS);
      }
      this.child = undefined;
    }
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
const statmScratch = Buffer.alloc(256);

/**
 * One child process: spawns it, writes requests, cuts its answers into responses and its output into lines, watches
 * its memory, and reports its end once, after every answer it wrote has been read.
 */
class HostChild {
  pageSize = 4096;
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
  private statm = -1;
  private held = false;

  constructor(binary: string, args: string[], private readonly events: ChildEvents) {
    this.whenFinished = new Promise((resolve) => (this.finish = resolve));
    this.reader = new ResponseReader(events.maxResponse);
    // Its own session: a Ctrl-C in the gateway's terminal is for the gateway, which then closes its plugins in order.
    this.proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], detached: true });
    this.proc.unref();
    this.proc.on('error', (err) => {
      // Only a failed spawn matters here: a failed kill is followed by the exit anyway.
      if (this.proc.pid === undefined) this.end(null, null, `could not be started (${binary}): ${err.message}`);
    });
    this.proc.on('exit', (code, signal) => {
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
    this.proc.kill('SIGKILL');
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
    if (this.statm >= 0) closeSync(this.statm);
    this.statm = -1;
    this.channel?.destroy();
    if (spawnError !== undefined) this.killed ??= { reason: 'start', message: spawnError };
    this.events.onExit(this, code, signal);
    this.finish();
  }

  /** /proc/<pid>/statm, opened once (after exec) and re-read in place: one read per tick, and immune to pid reuse. */
  private checkMemory(): void {
    try {
      if (this.statm < 0) this.statm = openSync(`/proc/${this.proc.pid}/statm`, 'r');
      const n = readSync(this.statm, statmScratch, 0, statmScratch.length, 0);
      const fields = statmScratch.toString('latin1', 0, n).split(' ');
      const rss = Number(fields[1]) * this.pageSize;
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
