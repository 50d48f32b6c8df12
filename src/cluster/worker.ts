/**
 * A worker of the pool (docs/workers.md). It runs the gateway exactly as the single-process `heimdall start` does,
 * plugins and providers included, on the config the primary hands it, and listens on the port the workers share. It
 * tells the primary when it is ready and, on a timer, that its event loop still turns. It knows nothing of the other
 * workers.
 */
import cluster from 'node:cluster';
import { createLogger } from '../logger.js';
import { FlightRecord } from '../metrics/flight-record.js';
import { createGateway } from '../server/app.js';
import type { Pool } from '../server/pool.js';
import type { Logger } from 'pino';
import { Errors, HeimdallError } from '../errors.js';
import type { PreparedChange } from '../plugins/changes.js';
import type { PluginRegistry } from '../plugins/registry.js';
import { isMessage, type InProcessPlugin, type DashboardAsk, type PrimaryMessage, type ReportKind, type ReportPart, type WireError, type WorkerMessage, FLIGHT_RECORD_ENV } from './messages.js';

/** Past the primary's own wait for the workers' parts: a primary that does not answer at all. */
const GATHERED_MS = 3000;

/**
 * The pool as this worker sees it: a gathering asked of the primary. Without an answer in time (the primary is
 * gone, or swamped), the worker answers for itself alone.
 */
function poolOf(report: (what: ReportKind, ask?: DashboardAsk) => Promise<string | Record<string, unknown>>): Pool {
  let next = 1;
  const waiting = new Map<number, (parts: Extract<PrimaryMessage, { type: 'gathered' }> | undefined) => void>();
  process.on('message', (message: unknown) => {
    if (!isMessage<PrimaryMessage>(message)) return;
    if (message.type === 'gathered') waiting.get(message.id)?.(message);
    else if (message.type === 'report') {
      report(message.what, message.ask).then(
        (body) => send({ type: 'reported', id: message.id, body }),
        () => {}, // no part: the gathering lists this worker as missing
      );
    }
  });
  return {
    gather: async (what) => {
      const id = next++;
      const answer = await new Promise<Extract<PrimaryMessage, { type: 'gathered' }> | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), GATHERED_MS);
        waiting.set(id, (m) => {
          clearTimeout(timer);
          resolve(m);
        });
        send({ type: 'gather', id, what });
      });
      waiting.delete(id);
      if (answer !== undefined && answer.parts.length > 0) return { parts: answer.parts, missing: answer.missing };
      const own: ReportPart = { worker: cluster.worker?.id ?? 0, pid: process.pid, body: await report(what) };
      // No answer at all: the rest of the pool is unknown, and said to be.
      return { parts: [own], missing: answer?.missing ?? [{ slot: -1, worker: undefined, pid: undefined, state: 'the primary did not answer' }] };
    },
  };
}

/**
 * This worker's side of a plugin change made through the admin API, which lives in the primary: prepare when told
 * (load and Init the new code here, make nothing visible), then commit or abort as the primary decides for the
 * whole pool. A change the primary never decides aborts itself (the registry's bound on a prepared change).
 */
function changesOf(registry: PluginRegistry, log: Logger, inProcess: () => InProcessPlugin[]) {
  const prepared = new Map<number, PreparedChange>();
  // Changes the primary aborted before this worker had prepared them (it answered too late): a preparation that
  // ends after its abort is undone at once. Bounded: only the latest ids matter.
  const aborted = new Set<number>();
  let stopping = false;
  process.on('message', (message: unknown) => {
    if (!isMessage<PrimaryMessage>(message)) return;
    if (message.type === 'change') {
      if (stopping) {
        send({ type: 'prepared', id: message.id, error: wireError(Errors.ADMIN_CONFLICT('this worker is shutting down; nothing more is loaded')) });
        return;
      }
      registry.prepare(message.change).then(
        (ready) => {
          if (stopping || aborted.has(message.id)) {
            void ready.abort();
            return;
          }
          prepared.set(message.id, ready);
          send({ type: 'prepared', id: message.id });
        },
        (err: unknown) => send({ type: 'prepared', id: message.id, error: wireError(err) }),
      );
    } else if (message.type === 'commit') {
      const ready = prepared.get(message.id);
      prepared.delete(message.id);
      if (ready === undefined) {
        send({ type: 'committed', id: message.id, error: wireError(Errors.ADMIN_CONFLICT(`change ${message.id} is not prepared in this worker (it aborted itself, or was never asked)`)) });
        return;
      }
      try {
        const result = ready.commit();
        send({ type: 'committed', id: message.id, result, specs: registry.specs(), plugins: inProcess() });
      } catch (err) {
        log.error({ err }, 'committing a plugin change failed');
        send({ type: 'committed', id: message.id, error: wireError(err) });
      }
    } else if (message.type === 'abort') {
      const ready = prepared.get(message.id);
      prepared.delete(message.id);
      if (ready !== undefined) {
        void ready.abort();
      } else {
        aborted.add(message.id);
        if (aborted.size > 64) aborted.delete(aborted.values().next().value as number);
      }
    }
  });
  return {
    /** On the way out: nothing prepared stays held (the registry's cleanup waits for it otherwise). */
    abortAll: () => {
      // A preparation still under way (or queued) is undone as it ends, and no new one starts.
      stopping = true;
      for (const ready of prepared.values()) void ready.abort();
      prepared.clear();
    },
  };
}

function wireError(err: unknown): WireError {
  const e = err instanceof HeimdallError ? err : Errors.INTERNAL(err instanceof Error ? err.message : String(err));
  return { code: e.code, statusCode: e.statusCode, type: e.type, message: e.message };
}

function send(message: WorkerMessage): void {
  // The channel is gone when the primary is: the worker is on its way out then (cluster ends it).
  if (process.connected) process.send?.(message);
}

/** Serve until told to stop; resolves to the exit code. */
export async function runWorker(): Promise<number> {
  const start = await new Promise<Extract<PrimaryMessage, { type: 'start' }>>((resolve) => {
    const onMessage = (message: unknown) => {
      if (!isMessage<PrimaryMessage>(message) || message.type !== 'start') return;
      process.off('message', onMessage);
      resolve(message);
    };
    process.on('message', onMessage);
    send({ type: 'hello' });
  });
  const { config } = start.loaded;
  const id = cluster.worker?.id ?? 0;
  const log = createLogger(config.log.level).child({ worker: id });

  let report: (what: ReportKind, ask?: DashboardAsk) => Promise<string | Record<string, unknown>> = () => Promise.reject(new Error('not started'));
  // The primary serves the admin API and watches plugin files, applying each change to every worker at once.
  const flightRecord = FlightRecord.open(process.env[FLIGHT_RECORD_ENV]);
  const gateway = await createGateway(start.loaded, { logger: log, pool: poolOf((what, ask) => report(what, ask)), watch: false, serveAdmin: false, flightRecord });
  report = gateway.report;
  const { url } = await gateway.listen(start.host, start.port);
  const inProcess = (): InProcessPlugin[] =>
    gateway.plugins
      .status()
      .filter((p) => p.status === 'active' && p.mode !== undefined && p.mode !== 'isolated')
      .map((p) => ({ name: p.name, mode: p.mode as string }));
  const changes = changesOf(gateway.plugins, log, inProcess);
  send({ type: 'ready', url, plugins: inProcess(), generation: start.generation });
  // A timer, not a thread: a beat that does not come means the event loop is stuck (an inline hook that never
  // returns), which is what the watchdog is for. unref'd: it never keeps a draining worker alive.
  if (start.beatMs > 0) setInterval(() => send({ type: 'beat' }), start.beatMs).unref();

  // The primary orders the drain; a signal sent to the worker itself (a terminal's Ctrl-C, systemd's control-group
  // kill: the whole process group) does the same. Whichever comes first starts the drain and the other joins it:
  // a group signal reaches this worker and the primary, whose order follows, or comes first. Only a second signal,
  // or the primary's order to stop at once, cuts the drain short, as in a single process.
  await new Promise<void>((resolve, reject) => {
    let draining = false;
    let signals = 0;
    const drain = (why: string, timeoutMs?: number) => {
      if (draining) return;
      draining = true;
      log.info({ reason: why }, 'worker shutting down: finishing requests, then cleaning up plugins');
      changes.abortAll();
      gateway.close(timeoutMs === undefined ? {} : { timeoutMs }).then(resolve, reject);
    };
    const cut = (why: string) => {
      drain(why, 0);
      void gateway.close({ timeoutMs: 0 });
    };
    process.on('message', (message: unknown) => {
      if (!isMessage<PrimaryMessage>(message) || message.type !== 'shutdown') return;
      if (message.timeoutMs === 0) cut('the primary asked to stop now');
      else drain('the primary asked', message.timeoutMs);
    });
    const onSignal = (signal: NodeJS.Signals) => {
      if (signals++ === 0) drain(signal);
      else cut(`a second ${signal}`);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  log.info('worker stopped');
  return 0;
}
