/**
 * The primary of the worker pool (docs/workers.md). It reads the config, forks the workers (node:cluster: they share
 * the port, and the primary hands each new connection to a worker that is free to take it), replaces a worker that
 * dies, kills one whose event loop stalls, and drains them all on SIGTERM/SIGINT. It serves the admin API, applying
 * each plugin change to every worker as one operation (changes.ts), and watches plugin files for the pool. It loads
 * no plugin and no provider: it only supervises and coordinates, so nothing a plugin does can take it down.
 */
import cluster, { type Worker } from 'node:cluster';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { LoadedConfig } from '../config/load.js';
import { DEFAULT_WATCHDOG_MS, type Config, type PluginConfig } from '../config/schema.js';
import { createLogger } from '../logger.js';
import { PluginWatcher } from '../plugins/watch.js';
import { createAdminApp, persistPlugins } from '../server/admin.js';
import { createFlightRecord, readFlightRecord, type RunningHook } from '../metrics/flight-record.js';
import { PoolControl } from './changes.js';
import { poolDashboard } from './dashboard.js';
import { isMessage, type DashboardAsk, type InProcessPlugin, type MissingWorker, type PrimaryMessage, type ReportKind, type ReportPart, type WorkerMessage, FLIGHT_RECORD_ENV } from './messages.js';

/** The first death of a worker is replaced at once, the next ones after this, doubling up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 10_000;
/** More deaths than this within CRASH_WINDOW_MS in one slot is a crash loop: the slot rests for COOLDOWN_MS. */
const CRASH_LOOP_DEATHS = 5;
const CRASH_WINDOW_MS = 60_000;
const COOLDOWN_MS = 60_000;
/** How often a worker beats: often enough that a missed beat or two never trips the watchdog. */
const MAX_BEAT_MS = 250;
/** Past server.shutdown_timeout_ms, what a draining worker gets to clean up its plugins before it is killed. */
const KILL_MARGIN_MS = 5000;
/** How long a gathering (a scrape of /metrics, a look at /health) waits for the workers' parts. */
const GATHER_MS = 1000;
/** Gatherings under way at once: scrapes beyond it are answered from the asking worker alone. */
const MAX_GATHERINGS = 64;

/** How long a worker may take to start (load its plugins, listen) before it is killed as stuck. */
const START_TIMEOUT_MS = 60_000;

/**
 * A message to a worker, unless its channel is closed (it is dying, or a plugin closed the descriptor): a send on
 * a closed channel is an 'error' event, which must never take the primary down.
 */
function tell(worker: Worker, message: PrimaryMessage): boolean {
  if (!worker.isConnected()) return false;
  worker.send(message, (err: Error | null) => void err); // a failure is the worker's exit, handled there
  return true;
}

/** A gathering under way: where its parts go (the worker that asked, or the primary itself), and the parts so far. */
interface Gathering {
  deliver: (parts: ReportPart[], missing: MissingWorker[]) => void;
  waiting: Set<number>;
  parts: ReportPart[];
  timer: NodeJS.Timeout;
}

/** server.workers as a number: "auto" is one per CPU; unset is 1. */
export function workerCount(server: Config['server']): number {
  const { workers } = server;
  if (workers === 'auto') return availableParallelism();
  return workers ?? 1;
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  /** When the current worker said it was ready (0: not yet); the watchdog watches only ready workers. */
  readyAt: number;
  lastBeat: number;
  plugins: InProcessPlugin[];
  /** Set when the watchdog killed the current worker: how long its event loop had been stuck. */
  stalledMs: number | undefined;
  /** Recent deaths, for the backoff and the crash-loop limit. */
  deaths: number[];
  restart: NodeJS.Timeout | undefined;
  /** When the current worker was forked: one not ready within START_TIMEOUT_MS is stuck, and killed. */
  startedAt: number;
  /** Resting after a crash loop. */
  resting: boolean;
  /** The plugin set the current worker was started with (see changes.ts). */
  generation: number;
  /** Being replaced on purpose (it was on an older plugin set): its exit is no death, and it is replaced at once. */
  retiring: boolean;
}

function slotState(s: Slot): string {
  if (s.resting) return 'resting after a crash loop';
  if (s.worker === undefined) return 'restarting';
  if (s.readyAt === 0) return 'starting';
  return 'not answering';
}

/** Run the pool until a signal stops it; resolves to the exit code. */
export async function runPrimary(loaded: LoadedConfig, count: number, host?: string, port?: number): Promise<number> {
  const { server } = loaded.config;
  const log = createLogger(loaded.config.log.level).child({ role: 'primary' });
  const watchdogMs = server.watchdog_ms ?? DEFAULT_WATCHDOG_MS;
  const beatMs = watchdogMs > 0 ? Math.max(10, Math.min(MAX_BEAT_MS, Math.floor(watchdogMs / 4))) : 0;
  const listen = { host: host ?? server.host, port: port ?? server.port };

  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({
    index, worker: undefined, readyAt: 0, lastBeat: 0, plugins: [], stalledMs: undefined, deaths: [], restart: undefined, startedAt: 0, resting: false,
    generation: 0, retiring: false,
  }));
  // The plugin set every worker starts with: config.json's, then each change the admin API or a watch made.
  let current = loaded;
  let generation = 0;
  const admin = loaded.config.admin;
  const persist = admin.enabled && admin.persist && loaded.file !== '';

  const slotOf = new Map<number, Slot>();
  // Each slot's flight record: which hooks its worker is running, readable after the worker dies.
  const records = mkdtempSync(path.join(tmpdir(), 'heimdall-pool-'));
  const recordOf = (slot: Slot) => path.join(records, `slot-${slot.index}.flight`);
  /** The in-process plugins' hooks the slot's worker was running (isolated ones can't take it down). */
  const runningIn = (slot: Slot): RunningHook[] => {
    const inProcess = new Set(slot.plugins.map((p) => p.name));
    return readFlightRecord(recordOf(slot)).filter((r) => inProcess.has(r.plugin));
  };
  const gatherings = new Map<number, Gathering>();
  let nextGathering = 1;

  // A worker's /metrics or /health speaks for the pool: every ready worker's report, or as many as answer in time.
  // Every slot without a serving worker (starting, restarting, resting after a crash loop) counts as missing.
  const unserved = (except: Set<number>) =>
    slots
      .filter((s) => s.worker === undefined || s.readyAt === 0 || !s.worker.isConnected() || except.has(s.worker.id))
      .map((s) => ({ slot: s.index, worker: s.worker?.id, pid: s.worker?.process.pid, state: slotState(s) }));
  // A worker being retired (draining on the way out) serves its last requests, but takes no part in the pool's
  // gatherings or changes: its plugin set is older, and it is shutting down.
  const serving = () =>
    slots.filter((s) => s.worker !== undefined && s.readyAt > 0 && !s.retiring && s.worker.isConnected()).map((s) => s.worker as Worker);
  const gather = (asker: Worker | undefined, deliver: Gathering['deliver'], what: ReportKind, ask?: DashboardAsk) => {
    const ready = serving();
    if (gatherings.size >= MAX_GATHERINGS) {
      // Too many at once: the asker answers for itself, and says every other slot went unheard.
      deliver([], unserved(new Set(ready.filter((w) => w !== asker).map((w) => w.id))));
      return;
    }
    const id = nextGathering++;
    const g: Gathering = { deliver, waiting: new Set(), parts: [], timer: setTimeout(() => finish(id), GATHER_MS) };
    gatherings.set(id, g);
    for (const w of ready) if (tell(w, { type: 'report', id, what, ...(ask === undefined ? {} : { ask }) })) g.waiting.add(w.id);
    if (g.waiting.size === 0) finish(id);
  };
  const finish = (id: number) => {
    const g = gatherings.get(id);
    if (g === undefined) return;
    gatherings.delete(id);
    clearTimeout(g.timer);
    const missing = unserved(g.waiting);
    g.parts.sort((a, b) => a.worker - b.worker);
    g.deliver(g.parts, missing);
  };
  const reported = (worker: Worker, id: number, body: string | Record<string, unknown>) => {
    const g = gatherings.get(id);
    if (g === undefined || !g.waiting.delete(worker.id)) return;
    g.parts.push({ worker: worker.id, pid: worker.process.pid, body });
    if (g.waiting.size === 0) finish(id);
  };

  /** Replace a worker on purpose (an older plugin set): it drains, and its slot forks a new one as it exits. */
  const retire = (slot: Slot, why: string) => {
    const { worker } = slot;
    if (worker === undefined || slot.retiring) return;
    slot.retiring = true;
    log.info({ worker: worker.id, worker_pid: worker.process.pid, slot: slot.index }, `worker ${worker.id}: ${why}; replacing it`);
    if (!tell(worker, { type: 'shutdown', timeoutMs: server.shutdown_timeout_ms })) worker.process.kill('SIGTERM');
  };
  // Made before any worker starts: a token too short or a host off loopback stops the start, as in a single process.
  const adminApp: FastifyInstance | undefined = admin.enabled
    ? createAdminApp({
        config: admin,
        control: { list: () => control.list(), apply: (c) => control.apply(c) },
        baseDir: loaded.baseDir,
        log,
        limits: server,
        dashboard: admin.dashboard.enabled ? poolDashboard((ask) => new Promise((resolve) => gather(undefined, (parts) => resolve(parts), 'dashboard', ask))) : undefined,
      })
    : undefined;
  let watcher: PluginWatcher | undefined;
  let watched: { name: string; file: string }[] = [];
  const control = new PoolControl({
    log,
    serving,
    gather: () => new Promise((resolve) => gather(undefined, (parts, missing) => resolve({ parts, missing }), 'plugins')),
    tell: (worker, message) => tell(worker, message),
    committed: (specs: PluginConfig[], participants, inProcess) => {
      generation += 1;
      current = { ...current, config: { ...current.config, plugins: specs } };
      for (const slot of slots) {
        const { worker } = slot;
        if (worker === undefined) continue;
        if (participants.has(worker)) {
          slot.generation = generation;
          slot.plugins = inProcess.get(worker) ?? slot.plugins;
        } else if (slot.generation < generation) {
          // Started before the change, or while it was under way: it would serve the older plugins.
          if (slot.readyAt > 0) retire(slot, 'it runs an older plugin set than the pool');
        }
      }
      if (persist) {
        try {
          persistPlugins(loaded.file, specs);
        } catch (err) {
          log.error({ err, file: loaded.file }, 'could not save the plugin change to the config file');
        }
      }
      void refreshWatched();
    },
    outOfStep: (worker, why) => {
      const slot = slotOf.get(worker.id);
      log.error({ worker: worker.id, worker_pid: worker.process.pid, reason: why }, `worker ${worker.id} could not make a change the others made`);
      if (slot !== undefined) retire(slot, 'it is out of step with the pool');
    },
  });
  /** The watched plugins' names and files, as the workers have them. */
  const refreshWatched = async () => {
    if (!current.config.plugins.some((p) => p.watch)) {
      watched = [];
      watcher?.sync();
      return;
    }
    try {
      watched = (await control.list())
        .filter(({ status, spec }) => spec.watch && spec.enabled && status.status !== 'unloaded')
        .map(({ status }) => ({ name: status.name, file: status.file }));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not learn which plugin files to watch');
    }
    watcher?.sync();
  };

  let phase: 'starting' | 'serving' | 'stopping' = 'starting';
  let failed = false;
  let settle: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (settle = resolve));

  const fork = (slot: Slot) => {
    slot.restart = undefined;
    slot.resting = false;
    let env: Record<string, string> = {};
    try {
      createFlightRecord(recordOf(slot));
      env = { [FLIGHT_RECORD_ENV]: recordOf(slot) };
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'no flight record for the worker: a crash will name suspects, not the hook');
    }
    const worker = cluster.fork(env);
    Object.assign(slot, { worker, readyAt: 0, lastBeat: 0, plugins: [], stalledMs: undefined, startedAt: Date.now() });
    slotOf.set(worker.id, slot);
    // A channel that closes under a send: the worker is going, and its exit says why.
    worker.on('error', (err: Error) => log.warn({ worker: worker.id, err: err.message }, `worker ${worker.id}: ${err.message}`));
    worker.on('message', (message: unknown) => {
      if (!isMessage<WorkerMessage>(message)) return;
      if (message.type === 'beat') {
        slot.lastBeat = Date.now();
      } else if (message.type === 'gather') {
        const askerId = message.id;
        gather(worker, (parts, missing) => tell(worker, { type: 'gathered', id: askerId, parts, missing }), message.what);
      } else if (message.type === 'prepared' || message.type === 'committed') {
        control.onReply(worker, message);
      } else if (message.type === 'reported') {
        reported(worker, message.id, message.body);
      } else if (message.type === 'hello') {
        slot.generation = generation;
        tell(worker, { type: 'start', loaded: current, host: listen.host, port: listen.port, beatMs, generation });
      } else if (message.type === 'ready') {
        slot.readyAt = slot.lastBeat = Date.now();
        slot.plugins = Array.isArray(message.plugins) ? message.plugins : [];
        // Port 0 stays 0 for replacements too: cluster shares the handle the first worker got by the port asked
        // for, so asking for 0 again is what lands a replacement on the same port.
        log.info({ worker: worker.id, worker_pid: worker.process.pid, slot: slot.index }, `worker ${worker.id} ready`);
        // A change was made while it started: it serves the plugin set it was given, older than the pool's.
        if (message.generation !== generation) retire(slot, 'it started on an older plugin set than the pool');
        if (phase === 'starting' && slots.every((s) => s.readyAt > 0)) {
          phase = 'serving';
          void startAdmin(message.url);
        }
      }
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    const slot = slotOf.get(worker.id);
    if (slot === undefined) return;
    slotOf.delete(worker.id);
    if (slot.worker === worker) slot.worker = undefined;
    const about = { worker: worker.id, worker_pid: worker.process.pid, slot: slot.index, code, signal };
    if (slot.retiring && phase !== 'stopping') {
      slot.retiring = false;
      log.info(about, `worker ${worker.id} replaced`);
      fork(slot);
      return;
    }
    slot.retiring = false;
    if (phase === 'stopping') {
      if (code !== 0) failed = true;
      log.info(about, `worker ${worker.id} exited`);
      if (slots.every((s) => s.worker === undefined)) settle(failed ? 1 : 0);
      return;
    }
    if (phase === 'starting' && slot.readyAt === 0) {
      // As in a single process, a config the gateway can't start with (a plugin that fails to load, a port in use)
      // stops the start; the worker has said why on stderr.
      log.error(about, `worker ${worker.id} could not start (${how(code, signal)}); stopping`);
      failed = true;
      stop(0);
      return;
    }
    const cause = describe(worker, slot, code, signal, runningIn(slot));
    log.error({ ...about, ...cause.fields }, cause.message);
    replace(slot);
  });

  const replace = (slot: Slot) => {
    const now = Date.now();
    slot.deaths = slot.deaths.filter((t) => now - t < CRASH_WINDOW_MS);
    slot.deaths.push(now);
    // The last slot with any worker is never rested: a pool with nothing listening is no gateway at all. It keeps
    // restarting at the longest backoff instead.
    const others = slots.some((s) => s !== slot && s.worker !== undefined);
    if (slot.deaths.length > CRASH_LOOP_DEATHS && !others) {
      log.error({ slot: slot.index }, `worker slot ${slot.index} is crash-looping and no other worker is serving: restarting it every ${MAX_BACKOFF_MS / 1000} s`);
      slot.restart = setTimeout(() => fork(slot), MAX_BACKOFF_MS);
      return;
    }
    if (slot.deaths.length > CRASH_LOOP_DEATHS) {
      slot.deaths = [];
      slot.resting = true;
      log.error(
        { slot: slot.index, cooldown_ms: COOLDOWN_MS },
        `worker slot ${slot.index} is crash-looping (more than ${CRASH_LOOP_DEATHS} deaths within ${CRASH_WINDOW_MS / 1000} s): ` +
          `not restarting it for ${COOLDOWN_MS / 1000} s; the other workers keep serving`,
      );
      if (slots.every((s) => s.worker === undefined)) log.error('no worker is serving: nothing listens on the port until one starts');
      slot.restart = setTimeout(() => fork(slot), COOLDOWN_MS);
      return;
    }
    const delay = slot.deaths.length === 1 ? 0 : Math.min(FIRST_BACKOFF_MS * 2 ** (slot.deaths.length - 2), MAX_BACKOFF_MS);
    if (delay === 0) fork(slot);
    else slot.restart = setTimeout(() => fork(slot), delay);
  };

  // The watchdog. A check that itself comes late (the primary was starved of CPU) is skipped: the beats waiting in
  // the pipes have not been read yet, and every worker would look stuck.
  let lastCheck = Date.now();
  const checkEvery = beatMs;
  const watchdog =
    watchdogMs > 0
      ? setInterval(() => {
          const now = Date.now();
          const late = now - lastCheck > Math.max(checkEvery * 4, watchdogMs / 2);
          lastCheck = now;
          if (late) return;
          for (const slot of slots) {
            const { worker } = slot;
            if (worker !== undefined && slot.readyAt === 0 && slot.stalledMs === undefined && now - slot.startedAt > START_TIMEOUT_MS) {
              // Stuck before it ever listened (a plugin's Init that never returns).
              slot.stalledMs = now - slot.startedAt;
              log.error({ worker: worker.id, worker_pid: worker.process.pid, slot: slot.index, starting_ms: slot.stalledMs }, `worker ${worker.id} did not start within ${START_TIMEOUT_MS / 1000} s; killing it`);
              worker.process.kill('SIGKILL');
              continue;
            }
            if (worker === undefined || slot.readyAt === 0 || slot.stalledMs !== undefined) continue;
            const stalled = now - slot.lastBeat;
            if (stalled <= watchdogMs) continue;
            slot.stalledMs = stalled;
            const running = runningIn(slot);
            log.error(
              { worker: worker.id, worker_pid: worker.process.pid, slot: slot.index, stalled_ms: stalled, watchdog_ms: watchdogMs, plugins: names(slot.plugins, 'inline'), running },
              `watchdog: worker ${worker.id}'s event loop has been stuck for ${stalled} ms (server.watchdog_ms ${watchdogMs}); killing it with SIGKILL` +
                (running.length > 0 ? ` (running: ${runningText(running)})` : suspects(slot.plugins, 'inline')),
            );
            worker.process.kill('SIGKILL');
          }
        }, checkEvery)
      : undefined;
  watchdog?.unref();

  // The admin API and the watch start once every worker serves: a change needs workers to apply it to.
  const startAdmin = async (url: string) => {
    try {
      if (adminApp !== undefined) {
        const adminUrl = await adminApp.listen({ host: admin.host, port: admin.port });
        log.warn({ url: adminUrl }, 'admin API enabled: it can load native code; keep it on loopback');
      }
      // Always there (it watches nothing until a plugin asks to be watched): the API may add a watched plugin later.
      watcher = new PluginWatcher({ watched: () => watched, reload: (name) => control.apply({ op: 'reload', name }) }, log);
      await refreshWatched();
    } catch (err) {
      // A pool without the admin API its operator asked for would be half a gateway, as in a single process.
      log.error({ err: (err as Error).message }, `the admin API could not start: ${(err as Error).message}; stopping`);
      failed = true;
      stop(0);
      return;
    }
    log.info({ workers: count, url, watchdog_ms: watchdogMs }, `${count} workers serving at ${url}`);
  };

  let killTimer: NodeJS.Timeout | undefined;
  const stop = (timeoutMs: number) => {
    phase = 'stopping';
    watcher?.close();
    void adminApp?.close();
    if (watchdog !== undefined) clearInterval(watchdog);
    for (const slot of slots) {
      if (slot.restart !== undefined) clearTimeout(slot.restart);
      slot.restart = undefined;
      const { worker } = slot;
      if (worker === undefined) continue;
      // A worker still starting has nothing in flight, and may not be listening for the order yet.
      if (slot.readyAt === 0) worker.process.kill('SIGKILL');
      else if (!tell(worker, { type: 'shutdown', timeoutMs })) worker.process.kill('SIGTERM');
    }
    if (slots.every((s) => s.worker === undefined)) settle(failed ? 1 : 0);
    killTimer = setTimeout(() => {
      for (const slot of slots) {
        if (slot.worker === undefined) continue;
        log.warn({ worker: slot.worker.id, worker_pid: slot.worker.process.pid }, `worker ${slot.worker.id} did not stop in time; killing it`);
        slot.worker.process.kill('SIGKILL');
      }
    }, timeoutMs + KILL_MARGIN_MS);
    killTimer.unref();
  };

  // The first signal drains every worker (up to server.shutdown_timeout_ms); another one kills them at once.
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signals++ === 0) {
      log.info({ signal }, 'shutting down: every worker finishes its requests, then cleans up its plugins');
      stop(server.shutdown_timeout_ms);
    } else {
      log.warn({ signal }, 'shutting down now: killing every worker');
      failed = true;
      for (const slot of slots) slot.worker?.process.kill('SIGKILL');
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  log.info({ workers: count }, `starting ${count} workers`);
  for (const slot of slots) fork(slot);
  const code = await done;
  rmSync(records, { recursive: true, force: true });
  if (killTimer !== undefined) clearTimeout(killTimer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  log.info('stopped');
  return code;
}

function how(code: number | null, signal: string | null): string {
  return signal !== null ? `signal ${signal}` : `exit code ${code}`;
}

/**
 * Why a worker died, as far as the primary can tell: the hooks its flight record says were running, else the
 * plugins loaded into it (the suspects of a native crash).
 */
function describe(
  worker: Worker,
  slot: Slot,
  code: number | null,
  signal: string | null,
  running: RunningHook[],
): { message: string; fields: Record<string, unknown> } {
  const head = `worker ${worker.id} (pid ${worker.process.pid})`;
  const inHook = running.length > 0 ? ` while running ${runningText(running)}` : '';
  if (slot.stalledMs !== undefined) {
    return {
      message: `${head} killed by the watchdog after its event loop was stuck for ${slot.stalledMs} ms${inHook}; replacing it`,
      fields: { watchdog: true, stalled_ms: slot.stalledMs, plugins: names(slot.plugins, 'inline'), running },
    };
  }
  if (signal !== null) {
    // A native crash (SIGSEGV, SIGBUS, SIGABRT...) comes from native code: the hook running then, or else the
    // plugins loaded into the worker itself, are the first suspects.
    return {
      message: `${head} died of ${signal}${inHook}; replacing it${inHook === '' ? suspects(slot.plugins) : ''}`,
      fields: { plugins: names(slot.plugins), running },
    };
  }
  return { message: `${head} exited with code ${code}${inHook}; replacing it`, fields: { running } };
}

/** "misbehave's PreHook (for 12 ms)", "slow's PreHook (3 calls, the latest for 40 ms)". */
function runningText(running: RunningHook[]): string {
  return running
    .map((r) => `${r.plugin}'s ${r.hook} (${r.calls > 1 ? `${r.calls} calls, the latest ` : ''}for ${r.for_ms} ms)`)
    .join(', ');
}

function names(plugins: InProcessPlugin[], mode?: string): string[] {
  return plugins.filter((p) => mode === undefined || p.mode === mode).map((p) => p.name);
}

function suspects(plugins: InProcessPlugin[], mode?: string): string {
  const list = plugins.filter((p) => mode === undefined || p.mode === mode);
  return list.length === 0 ? '' : ` (plugins running in it: ${list.map((p) => `${p.name} (${p.mode})`).join(', ')})`;
}
