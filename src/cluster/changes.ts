/**
 * The admin API's view of a worker pool (docs/workers.md): one gateway, seen from outside. A plugin change (add,
 * reload, configure, enable, disable, unload, remove, reorder) is applied to every worker as one operation:
 *
 *   1. every serving worker prepares it (loads and Inits the new code, checks what can fail; nothing visible yet);
 *   2. if all of them did, all commit (the swap, which can't fail); if any refused or did not answer in time, all
 *      abort and keep what they had, and the API says which worker refused and why.
 *
 * Changes run one at a time. Between the first commit and the last, a request may reach a worker already switched
 * or one not yet switched, but every request runs on one version from its first hook to its last (its lease).
 * A worker that starts while a change is under way, or from before it, is replaced once the change is made, so no
 * worker is left on an older plugin set; a worker that fails to commit (it can't, short of a bug) is replaced too.
 */
import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { PluginConfig } from '../config/schema.js';
import { Errors, HeimdallError, type ErrorType } from '../errors.js';
import { describeChange, type ChangeResult, type PluginChange, type PluginControl, type PluginView } from '../plugins/changes.js';
import type { PluginStatus } from '../plugins/registry.js';
import type { InProcessPlugin, MissingWorker, ReportPart, WireError, WorkerMessage } from './messages.js';

/** How long every worker gets to prepare a change (load a library, start an isolated child, run Init). */
const PREPARE_MS = 30_000;
/** How long a worker gets to make a prepared change visible (a swap: no loading, no Init). */
const COMMIT_MS = 5_000;

export interface PoolControlDeps {
  log: Logger;
  /** The workers serving now: those a change is applied to. */
  serving(): Worker[];
  /** Every serving worker's plugin list, and the slots that did not answer. */
  gather(): Promise<{ parts: ReportPart[]; missing: MissingWorker[] }>;
  tell(worker: Worker, message: { type: 'change'; id: number; change: PluginChange } | { type: 'commit' | 'abort'; id: number }): boolean;
  /**
   * The change is visible in `participants`: the pool's plugin list is now `specs` (a worker started from now on
   * loads that), and every other worker is on an older list.
   */
  committed(specs: PluginConfig[], participants: ReadonlySet<Worker>, inProcess: ReadonlyMap<Worker, InProcessPlugin[]>): void;
  /** A worker that could not commit what the others did: it must be replaced. */
  outOfStep(worker: Worker, why: string): void;
}

type Answer =
  | { kind: 'ok'; message: Extract<WorkerMessage, { type: 'prepared' | 'committed' }> }
  | { kind: 'refused'; error: WireError }
  | { kind: 'timeout' }
  | { kind: 'gone' };

/** A plugin's status in one worker of the pool, beside the pool-wide one. */
export interface WorkerPluginStatus {
  worker: number;
  pid: number | undefined;
  status: PluginStatus['status'];
  sha256?: string;
  quarantine?: PluginStatus['quarantine'];
  runtime?: PluginStatus['runtime'];
}

export class PoolControl implements PluginControl {
  private next = 1;
  private tail: Promise<unknown> = Promise.resolve();
  /** Answers awaited, by worker id and change id. */
  private readonly waiting = new Map<string, (answer: Answer) => void>();

  constructor(private readonly deps: PoolControlDeps) {}

  /** A worker's answer to a prepare or a commit (routed here by the primary). */
  onReply(worker: Worker, message: Extract<WorkerMessage, { type: 'prepared' | 'committed' }>): void {
    const resolve = this.waiting.get(key(worker, message.id, message.type));
    if (resolve === undefined) return; // too late: that worker was counted as not answering
    resolve(message.error === undefined ? { kind: 'ok', message } : { kind: 'refused', error: message.error });
  }

  /**
   * Every plugin as the first worker to answer has it, with `workers`: each worker's own state, file hash and
   * quarantine, so a pool out of step (a quarantine in one worker only) shows.
   */
  async list(): Promise<PluginView[]> {
    const { parts } = await this.deps.gather();
    const lists = parts
      .filter((p) => typeof p.body === 'object' && Array.isArray((p.body as { plugins?: unknown }).plugins))
      .map((p) => ({ worker: p.worker, pid: p.pid, plugins: (p.body as { plugins: PluginView[] }).plugins }));
    const [first] = lists;
    if (first === undefined) throw Errors.ADMIN_POOL('no worker answered in time; try again once one is serving');
    return first.plugins.map(({ status, spec }) => {
      const workers: WorkerPluginStatus[] = [];
      for (const list of lists) {
        const own = list.plugins.find((v) => v.status.file === status.file)?.status;
        if (own === undefined) continue;
        const entry: WorkerPluginStatus = { worker: list.worker, pid: list.pid, status: own.status };
        if (own.sha256 !== undefined) entry.sha256 = own.sha256;
        if (own.quarantine !== undefined) entry.quarantine = own.quarantine;
        if (own.runtime !== undefined) entry.runtime = own.runtime;
        workers.push(entry);
      }
      // Quarantine is per worker (each has its own breaker): the pool-wide status says so when any worker has one.
      const quarantined = workers.find((w) => w.quarantine !== undefined && w.quarantine.state !== 'closed')?.quarantine;
      return { status: { ...status, ...(quarantined ? { quarantine: quarantined } : {}), workers }, spec };
    });
  }

  apply(change: PluginChange): Promise<ChangeResult> {
    const run = this.tail.then(
      () => this.applyNow(change),
      () => this.applyNow(change),
    );
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async applyNow(change: PluginChange): Promise<ChangeResult> {
    const { log } = this.deps;
    const workers = this.deps.serving();
    if (workers.length === 0) throw Errors.ADMIN_POOL('no worker is serving now; try again once one is ready');
    const id = this.next++;
    const what = describeChange(change);

    // A quarantine is each worker's own: lifting it is done wherever there is one, not all-or-nothing.
    if (change.op === 'unquarantine') return this.everywhere(workers, id, change);

    const prepares = await Promise.all(workers.map((w) => this.ask(w, id, 'prepared', { type: 'change', id, change }, PREPARE_MS)));
    const ready = workers.filter((_, i) => prepares[i]?.kind === 'ok');
    const refusals = workers
      .map((worker, i) => ({ worker, answer: prepares[i] as Answer }))
      .filter(({ answer }) => answer.kind === 'refused' || answer.kind === 'timeout');
    if (refusals.length > 0 || ready.length === 0) {
      // Every worker asked, not only those that prepared: one that did not answer in time may prepare later, and
      // must not then hold its registry for the next change.
      for (const w of workers) this.deps.tell(w, { type: 'abort', id });
      const error = refusalOf(refusals, workers.length);
      log.warn({ change: what, code: error.code, workers: refusals.map((r) => r.worker.id) }, `plugin change refused, no worker changed: ${error.message}`);
      throw error;
    }

    const commits = await Promise.all(ready.map((w) => this.ask(w, id, 'committed', { type: 'commit', id }, COMMIT_MS)));
    let result: Extract<WorkerMessage, { type: 'committed' }> | undefined;
    const participants = new Set<Worker>();
    const inProcess = new Map<Worker, InProcessPlugin[]>();
    for (const [i, worker] of ready.entries()) {
      const answer = commits[i] as Answer;
      if (answer.kind === 'ok' && answer.message.type === 'committed') {
        result ??= answer.message;
        participants.add(worker);
        if (Array.isArray(answer.message.plugins)) inProcess.set(worker, answer.message.plugins);
      } else if (answer.kind !== 'gone') {
        this.deps.outOfStep(worker, answer.kind === 'refused' ? answer.error.message : `it did not commit within ${COMMIT_MS / 1000} s`);
      }
    }
    if (result === undefined || result.specs === undefined) {
      throw Errors.ADMIN_POOL(`no worker could make the change "${what}" visible; the workers that could not are being replaced`);
    }
    this.deps.committed(result.specs, participants, inProcess);
    log.info({ change: what, workers: participants.size }, `plugin change made in ${participants.size} worker${participants.size > 1 ? 's' : ''}`);
    return result.result ?? null;
  }

  /** Prepare and commit at once in every worker; succeeds if it did in any (the others had nothing to do). */
  private async everywhere(workers: Worker[], id: number, change: PluginChange): Promise<ChangeResult> {
    const prepares = await Promise.all(workers.map((w) => this.ask(w, id, 'prepared', { type: 'change', id, change }, PREPARE_MS)));
    const ready = workers.filter((_, i) => prepares[i]?.kind === 'ok');
    // Those that did not answer in time must not go on holding what they prepare later.
    for (const [i, w] of workers.entries()) if (prepares[i]?.kind === 'timeout') this.deps.tell(w, { type: 'abort', id });
    if (ready.length === 0) {
      const refused = prepares.find((a): a is Extract<Answer, { kind: 'refused' }> => a.kind === 'refused');
      throw refused !== undefined ? fromWire(refused.error) : Errors.ADMIN_POOL('no worker answered in time');
    }
    const commits = await Promise.all(ready.map((w) => this.ask(w, id, 'committed', { type: 'commit', id }, COMMIT_MS)));
    const done = commits.find((a): a is Extract<Answer, { kind: 'ok' }> => a.kind === 'ok');
    if (done === undefined || done.message.type !== 'committed') throw Errors.ADMIN_POOL('no worker answered in time');
    return done.message.result ?? null;
  }

  /** Send `message` to `worker` and wait for its answer of type `reply`, up to `timeoutMs`, or its exit. */
  private ask(
    worker: Worker,
    id: number,
    reply: 'prepared' | 'committed',
    message: { type: 'change'; id: number; change: PluginChange } | { type: 'commit'; id: number },
    timeoutMs: number,
  ): Promise<Answer> {
    return new Promise<Answer>((resolve) => {
      const k = key(worker, id, reply);
      const done = (answer: Answer) => {
        clearTimeout(timer);
        worker.off('exit', onExit);
        this.waiting.delete(k);
        resolve(answer);
      };
      const onExit = () => done({ kind: 'gone' });
      const timer = setTimeout(() => done({ kind: 'timeout' }), timeoutMs);
      this.waiting.set(k, done);
      worker.on('exit', onExit);
      if (!this.deps.tell(worker, message)) done({ kind: 'gone' });
    });
  }
}

function key(worker: Worker, id: number, reply: string): string {
  return `${worker.id}:${id}:${reply}`;
}

function fromWire(e: WireError): HeimdallError {
  return new HeimdallError(e.code, e.statusCode, e.type as ErrorType, e.message);
}

/**
 * The error a refused change answers with. When every worker refused it for the same reason (an unknown name, a
 * file that fails its checks) that is the answer, as a single gateway gives it; otherwise it names the worker.
 */
function refusalOf(refusals: { worker: Worker; answer: Answer }[], asked: number): HeimdallError {
  const said = refusals.map(({ worker, answer }) => ({
    worker,
    error: answer.kind === 'refused' ? answer.error : undefined,
  }));
  const [first] = said;
  if (first === undefined) return Errors.ADMIN_POOL('every worker that was asked has gone; try again');
  if (first.error !== undefined && said.length === asked && said.every((s) => s.error?.message === first.error?.message)) {
    return fromWire(first.error);
  }
  const who = (w: Worker) => `worker ${w.id} (pid ${w.process.pid})`;
  const reasons = said
    .map((s) => (s.error !== undefined ? `${who(s.worker)} refused: ${s.error.message}` : `${who(s.worker)} did not prepare within ${PREPARE_MS / 1000} s`))
    .join('; ');
  const message = `${reasons}; no worker changed (every worker keeps what it had)`;
  const coded = said.find((s) => s.error !== undefined)?.error;
  return coded !== undefined ? fromWire({ ...coded, message }) : Errors.ADMIN_POOL(message);
}
