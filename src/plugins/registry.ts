/**
 * The registered plugins: their order, their state, and their live instances.
 *
 * Requests take a lease on the current instances (acquire/release). Reloading, reconfiguring, unloading or
 * disabling a plugin changes what the NEXT request sees at once, while requests in flight finish on the instance
 * they started with; a replaced instance's Cleanup runs after its last in-flight call. Go and Rust libraries are
 * never dlclosed (their runtimes can't be unloaded): their retired instances are counted, not freed.
 *
 * Loading may wait (an isolated plugin's child starts and runs Init), so changes are asynchronous, and they run one
 * at a time, in the order asked: a reload never interleaves with another change. Each instance is wrapped in its
 * failure policy and circuit breaker (guard.ts), which an operator can reset (liftQuarantine).
 *
 * A plugin added through the admin API is confined to admin.plugin_dirs at every load (add, reload, enable, a
 * config change, a watch trigger): staging checks the very file it copies, so re-pointing a symlink after the
 * first load does not let other code in. config.json's plugins are the operator's and are not confined.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { resolveEnvRefs } from '../config/load.js';
import type { PluginConfig } from '../config/schema.js';
import { Errors, HeimdallError } from '../errors.js';
import { GuardedPlugin, type QuarantineStatus } from './guard.js';
import { canUnload, loadPlugin, realFile, resolvePluginPath } from './loader.js';
import type { Plugin, RuntimeStatus } from './plugin.js';
import { Staging, type StagedFile } from './staging.js';
import { describeChange, type ChangeResult, type PluginChange, type PluginView, type PreparedChange } from './changes.js';

export type PluginState = 'active' | 'error' | 'disabled' | 'loading' | 'unloaded';

export interface PluginStatus {
  name: string;
  status: PluginState;
  /** The configured file. */
  file: string;
  position: number;
  sha256?: string;
  language?: string;
  abi_version?: string;
  hooks?: string[];
  /** Where the hooks run, and how many calls at once. */
  mode?: string;
  concurrency?: number;
  /** The circuit breaker: "open" or "half-open" while the plugin is quarantined. */
  quarantine?: QuarantineStatus;
  /** Threaded: calls running and queued; isolated: the child process, its restarts and last exit. */
  runtime?: RuntimeStatus;
  loaded_at?: string;
  /** The private copy the live instance was loaded from. */
  loaded_from?: string;
  /** Retired instances still mapped because their runtime can't be unloaded (Go, Rust). */
  instances_kept: number;
  optional: boolean;
  watch: boolean;
  last_errors: { at: string; code: string; message: string }[];
}

export interface Lease {
  plugins: readonly Plugin[];
  release: () => void;
}

interface Instance {
  plugin: Plugin;
  guard: GuardedPlugin;
  sha256: string;
  /** The path dlopen saw: the configured file, or a staged copy. */
  loadedFrom: string;
  loadedAt: Date;
  inflight: number;
  retired: boolean;
  closed: boolean;
  /** Set by closeAll while it waits for the last run holding this instance. */
  onIdle?: () => void;
}

/**
 * How long closeAll waits for runs that still hold plugins (a client that left mid-request: its run goes on to
 * PostHook after its connection is gone) before cleaning up under them.
 */
const LAST_RUNS_MS = 5_000;

/** One configured plugin. Its name is GetName's answer once loaded, the file's base name before that. */
interface Entry {
  name: string;
  spec: PluginConfig;
  file: string;
  state: PluginState;
  instance: Instance | undefined;
  kept: number;
  errors: PluginStatus['last_errors'];
  /** Real directory paths its file must really be inside at every load; undefined: not confined (config.json). */
  confinedTo: readonly string[] | undefined;
  /** While a new instance is being prepared: the state to go back to if it is not committed. */
  stateBefore?: PluginState;
}

export interface AddOptions {
  /** Where in the order (default: last). */
  position?: number;
  /** Real directory paths the plugin's file must be inside, checked at this load and every later one. */
  confinedTo?: readonly string[];
}

const MAX_ERRORS = 5;
/** How long a prepared change waits for its commit or abort before it aborts itself. */
const PREPARED_HOLD_MS = 60_000;
const NO_LEASE: Lease = { plugins: [], release: () => {} };

export interface RegistryOptions {
  /** Wraps every instance as it is registered (metrics use it to time each hook). */
  decorate?: (plugin: Plugin) => Plugin;
  /** Called after every change to the set, order or configuration of plugins (e.g. to persist config.json). */
  onChange?: () => void;
  /** Told when a plugin enters (true) or leaves (false) quarantine. */
  onQuarantine?: (plugin: string, on: boolean) => void;
  /** server.plugin_threads: the worker threads threaded plugins share. */
  pluginThreads?: number;
}

export class PluginRegistry {
  private entries: Entry[] = [];
  private snapshot: readonly Instance[] = [];
  private activePlugins: readonly Plugin[] = [];
  private readonly staging = new Staging();
  private readonly decorate: (plugin: Plugin) => Plugin;
  private closed = false;
  /** The change running now; the next waits for it. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly log: Logger,
    private readonly options: RegistryOptions = {},
  ) {
    this.decorate = options.decorate ?? ((plugin) => plugin);
  }

  /** Active plugins in order, as the next request will see them. */
  get active(): readonly Plugin[] {
    return this.activePlugins;
  }

  /** The current instances, held until release() so that none is cleaned up under a running request. */
  acquire(): Lease {
    const instances = this.snapshot;
    if (instances.length === 0) return NO_LEASE;
    for (const instance of instances) instance.inflight += 1;
    let released = false;
    return {
      plugins: this.activePlugins,
      release: () => {
        if (released) return;
        released = true;
        for (const instance of instances) {
          instance.inflight -= 1;
          if (instance.retired && instance.inflight === 0) void this.close(instance).then(instance.onIdle);
        }
      },
    };
  }

  /**
   * Load every configured plugin, in order. A plugin that fails stops the start-up (the error is thrown) unless
   * its entry says "optional": true, in which case it is logged and kept in the error state.
   */
  /** `pluginDirs`: admin.plugin_dirs (resolved), to which entries with `confine: true` are confined. */
  loadAll(specs: readonly PluginConfig[], baseDir: string, pluginDirs: readonly string[] = []): Promise<void> {
    return this.serial(async () => {
      try {
        for (const [index, spec] of specs.entries()) {
          const entry = this.newEntry(spec, baseDir, spec.confine === true ? pluginDirs : undefined);
          this.entries.push(entry);
          if (!spec.enabled) continue;
          try {
            await this.start(entry, `plugins[${index}].config`);
          } catch (err) {
            if (!spec.optional) throw err;
            this.log.error({ file: entry.file, code: (err as HeimdallError).code }, `optional plugin left out: ${(err as Error).message}`);
          }
        }
      } catch (err) {
        await this.closeAllNow();
        throw err;
      }
      this.publish(false);
    });
  }

  /** Register and load a new plugin at `options.position` (default: last), confined if `options.confinedTo` says so. */
  add(spec: PluginConfig, baseDir: string, { position, confinedTo }: AddOptions = {}): Promise<PluginStatus> {
    const change: PluginChange = { op: 'add', spec, baseDir, position, confinedTo: confinedTo && [...confinedTo] };
    return this.apply(change) as Promise<PluginStatus>;
  }

  /**
   * Load the plugin's file again, with its config, and swap it in. If the new code fails any check, the old
   * instance keeps serving and the error is thrown.
   */
  reload(name: string): Promise<PluginStatus> {
    return this.apply({ op: 'reload', name }) as Promise<PluginStatus>;
  }

  /** Replace the plugin's config: a new instance is initialised with it, then swapped in. */
  configure(name: string, config: Record<string, unknown>): Promise<PluginStatus> {
    return this.apply({ op: 'configure', name, config }) as Promise<PluginStatus>;
  }

  setEnabled(name: string, enabled: boolean): Promise<PluginStatus> {
    return this.apply({ op: enabled ? 'enable' : 'disable', name }) as Promise<PluginStatus>;
  }

  /** Unload the plugin but keep its entry (it can be reloaded later). */
  unload(name: string): Promise<PluginStatus> {
    return this.apply({ op: 'unload', name }) as Promise<PluginStatus>;
  }

  /** Unload the plugin and forget it. */
  async remove(name: string): Promise<void> {
    await this.apply({ op: 'remove', name });
  }

  /** Put the plugins in this order; `names` must name every registered plugin once. */
  reorder(names: readonly string[]): Promise<readonly PluginStatus[]> {
    return this.apply({ op: 'reorder', order: [...names] }) as Promise<readonly PluginStatus[]>;
  }

  /** Prepare and commit a change at once (a single gateway). */
  apply(change: PluginChange): Promise<ChangeResult> {
    return this.serial(async () => (await this.stage(change)).commit());
  }

  /**
   * Prepare a change (load and Init new code, check everything that can fail) without making it visible; the
   * caller commits or aborts it (see changes.ts). No other change runs meanwhile; one left alone for `holdMs`
   * aborts itself, so a coordinator that vanished can't block this registry for ever.
   */
  prepare(change: PluginChange, holdMs = PREPARED_HOLD_MS): Promise<PreparedChange> {
    return new Promise<PreparedChange>((resolve, reject) => {
      void this.serial(async () => {
        let staged: PreparedChange;
        try {
          staged = await this.stage(change);
        } catch (err) {
          reject(err);
          return;
        }
        // The lock is held until the decision: commit runs at once (it can't fail), abort cleans up first.
        await new Promise<void>((release) => {
          let decided = false;
          const decide = () => {
            if (decided) throw Errors.ADMIN_CONFLICT(`the change "${describeChange(change)}" was decided already`);
            decided = true;
            clearTimeout(timer);
          };
          const abort = async () => {
            if (decided) return;
            decide();
            try {
              await staged.abort();
            } finally {
              release();
            }
          };
          const timer = setTimeout(() => {
            this.log.warn({ change: describeChange(change), hold_ms: holdMs }, 'a prepared plugin change was neither committed nor aborted in time; aborting it');
            void abort();
          }, holdMs);
          timer.unref();
          resolve({
            commit: () => {
              decide();
              try {
                return staged.commit();
              } finally {
                release();
              }
            },
            abort,
          });
        });
      });
    });
  }

  /** Ends the plugin's quarantine now: its hooks are called again. Refused when it is not quarantined. */
  liftQuarantine(name: string): PluginStatus {
    const entry = this.find(name);
    if (entry.instance === undefined || !entry.instance.guard.lift()) {
      throw Errors.ADMIN_CONFLICT(`plugin "${name}" is not quarantined`);
    }
    return this.statusOf(entry);
  }

  /** Every plugin's status with its entry as config.json holds it (env references kept as written). */
  async list(): Promise<PluginView[]> {
    return this.entries.map((e) => ({ status: this.statusOf(e), spec: e.spec }));
  }

  status(): PluginStatus[] {
    return this.entries.map((e) => this.statusOf(e));
  }

  /** The entries as config.json plugin specs (env references kept as written). */
  specs(): PluginConfig[] {
    return this.entries.map((e) => e.spec);
  }

  /** Entries with watch: true, and the files to watch. */
  watched(): { name: string; file: string }[] {
    return this.entries
      .filter((e) => e.spec.watch && e.spec.enabled && e.state !== 'unloaded')
      .map((e) => ({ name: e.name, file: e.file }));
  }

  /**
   * Cleanup every plugin, in reverse order, after any change under way. In-flight requests are done by now (the
   * server has closed).
   */
  closeAll(): Promise<void> {
    return this.serial(() => this.closeAllNow());
  }

  private async closeAllNow(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.snapshot = [];
    this.activePlugins = [];
    const held: Instance[] = [];
    const idle: Promise<void>[] = [];
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const instance = (this.entries[i] as Entry).instance;
      (this.entries[i] as Entry).instance = undefined;
      if (instance === undefined) continue;
      instance.retired = true;
      if (instance.inflight === 0) {
        await this.close(instance);
      } else {
        // Its last run's release cleans it up, then says so here.
        held.push(instance);
        idle.push(new Promise<void>((resolve) => (instance.onIdle = resolve)));
      }
    }
    if (held.length > 0) {
      // Runs still under way finish with their plugins, up to a bound; then they are cleaned up regardless.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(idle), new Promise<void>((resolve) => (timer = setTimeout(resolve, LAST_RUNS_MS)))]);
      clearTimeout(timer);
      for (const instance of held) await this.close(instance);
    }
    this.staging.dispose();
  }

  /** Runs one change after those asked for before it. */
  private serial<T>(change: () => Promise<T>): Promise<T> {
    const run = this.tail.then(change, change);
    this.tail = run.catch(() => undefined);
    return run;
  }

  // --- internals ---------------------------------------------------------------------------------------------

  private newEntry(spec: PluginConfig, baseDir: string, confinedTo?: readonly string[]): Entry {
    const file = resolvePluginPath(spec.path, baseDir);
    const name = path.basename(file, path.extname(file));
    const state = spec.enabled ? 'loading' : 'disabled';
    return { name, spec, file, state, instance: undefined, kept: 0, errors: [], confinedTo: confinedTo && [...confinedTo] };
  }

  /**
   * Everything a change does that can fail, done now; what it returns makes the change visible (commit) or undoes
   * the preparation (abort). Nothing a request can see changes before commit.
   */
  private async stage(change: PluginChange): Promise<PreparedChange> {
    const none = async () => {};
    switch (change.op) {
      case 'add': {
        const { spec, baseDir, position, confinedTo } = change;
        // Persisted (admin.persist), it must stay confined after a restart: the entry says so.
        const entry = this.newEntry(confinedTo === undefined ? spec : { ...spec, confine: true }, baseDir, confinedTo);
        if (this.entries.some((e) => e.file === entry.file || realFile(e.file) === realFile(entry.file))) {
          throw Errors.ADMIN_CONFLICT(`${entry.file} is already registered; reload it instead`);
        }
        const instance = spec.enabled ? await this.prepareInstance(entry, 'config') : undefined;
        const name = instance?.plugin.info.name ?? entry.name;
        if (this.entries.some((e) => e.name === name)) {
          if (instance !== undefined) await this.close(instance);
          throw Errors.ADMIN_CONFLICT(`a plugin named "${name}" is already registered`);
        }
        return {
          commit: () => {
            if (instance !== undefined) this.install(entry, instance);
            this.entries.splice(Math.max(0, Math.min(position ?? this.entries.length, this.entries.length)), 0, entry);
            this.publish();
            return this.statusOf(entry);
          },
          abort: async () => {
            if (instance !== undefined) await this.close(instance);
          },
        };
      }
      case 'reload': {
        const entry = this.find(change.name);
        if (!entry.spec.enabled) throw Errors.ADMIN_CONFLICT(`plugin "${change.name}" is disabled; enable it instead of reloading it`);
        return this.swapping(entry, entry.spec);
      }
      case 'configure': {
        const entry = this.find(change.name);
        const spec = { ...entry.spec, config: change.config };
        if (spec.enabled && (entry.state === 'active' || entry.state === 'error')) return this.swapping(entry, spec);
        return {
          commit: () => {
            entry.spec = spec;
            this.publish();
            return this.statusOf(entry);
          },
          abort: none,
        };
      }
      case 'enable': {
        const entry = this.find(change.name);
        const spec = { ...entry.spec, enabled: true };
        if (entry.state !== 'active') return this.swapping(entry, spec);
        return { commit: () => ((entry.spec = spec), this.publish(), this.statusOf(entry)), abort: none };
      }
      case 'disable':
      case 'unload': {
        const entry = this.find(change.name);
        const disable = change.op === 'disable';
        return {
          commit: () => {
            if (disable) entry.spec = { ...entry.spec, enabled: false };
            this.retire(entry);
            entry.state = disable ? 'disabled' : 'unloaded';
            this.publish();
            return this.statusOf(entry);
          },
          abort: none,
        };
      }
      case 'remove': {
        const entry = this.find(change.name);
        return {
          commit: () => {
            this.retire(entry);
            this.entries = this.entries.filter((e) => e !== entry);
            this.publish();
            return null;
          },
          abort: none,
        };
      }
      case 'reorder': {
        const names = change.order;
        const known = this.entries.map((e) => e.name);
        if (names.length !== known.length || new Set(names).size !== names.length || names.some((n) => !known.includes(n))) {
          throw Errors.ADMIN_CONFLICT(`the order must name every registered plugin exactly once: ${known.join(', ')}`);
        }
        return {
          commit: () => {
            this.entries = names.map((n) => this.entries.find((e) => e.name === n) as Entry);
            this.publish();
            return this.status();
          },
          abort: none,
        };
      }
      case 'unquarantine': {
        const entry = this.find(change.name);
        if (entry.instance === undefined || entry.instance.guard.quarantine().state === 'closed') {
          throw Errors.ADMIN_CONFLICT(`plugin "${change.name}" is not quarantined`);
        }
        return { commit: () => this.liftQuarantine(change.name), abort: none };
      }
    }
  }

  /** A change that loads a new instance of `entry` with `spec`: committed, the entry takes both. */
  private async swapping(entry: Entry, spec: PluginConfig): Promise<PreparedChange> {
    const instance = await this.prepareInstance(entry, 'config', spec);
    return {
      commit: () => {
        entry.spec = spec;
        this.install(entry, instance);
        this.publish();
        return this.statusOf(entry);
      },
      abort: async () => {
        this.restoreState(entry);
        await this.close(instance);
      },
    };
  }

  /** Load the entry's file as its new instance and swap it in at once (start-up). */
  private async start(entry: Entry, where: string): Promise<void> {
    this.install(entry, await this.prepareInstance(entry, where));
  }

  /**
   * Load the entry's file (with `spec`, the entry's own by default) as a new instance, not yet visible; on failure
   * the old instance stays and the error is recorded and thrown. The library is always loaded from a private copy
   * (see staging.ts), so a build may overwrite the configured file at any time without touching mapped code; for a
   * confined entry, staging refuses a file that is not really inside its directories (checked on the open file it
   * copies, not on the path).
   */
  private async prepareInstance(entry: Entry, where: string, spec: PluginConfig = entry.spec): Promise<Instance> {
    // A change queued behind the shutdown must not load anything the shutdown would never clean up.
    if (this.closed) throw Errors.ADMIN_CONFLICT('the gateway is shutting down; nothing more is loaded');
    entry.stateBefore = entry.state;
    if (entry.instance === undefined) entry.state = 'loading';
    let staged: StagedFile | undefined;
    try {
      const config = resolveEnvRefs(spec.config, where);
      staged = this.staging.stage(entry.file, entry.name, entry.confinedTo);
      // The same file twice would be one library twice: the second Init would reconfigure the first instance.
      const real = realFile(entry.file);
      const twin = this.entries.find((e) => e !== entry && e.instance !== undefined && realFile(e.file) === real);
      if (twin !== undefined) {
        throw Errors.PLUGIN_NAME(entry.file, `this file is already loaded as plugin "${twin.name}"; list each plugin once`);
      }
      const takenNames = new Set(this.entries.filter((e) => e !== entry && e.instance !== undefined).map((e) => e.name));
      const plugin = await loadPlugin(staged.file, {
        config,
        takenNames,
        source: entry.file,
        warn: (msg) => this.log.warn({ file: entry.file }, msg),
        log: this.log,
        execution: {
          mode: spec.mode,
          timeout_ms: spec.timeout_ms,
          concurrency: spec.concurrency,
          max_queue: spec.max_queue,
          max_memory_mb: spec.max_memory_mb,
          max_output_bytes: spec.max_output_bytes,
          plugin_threads: this.options.pluginThreads ?? 16,
        },
      });
      if (entry.instance !== undefined && plugin.info.name !== entry.name) {
        await plugin.close();
        throw Errors.PLUGIN_NAME(entry.file, `the new code is named "${plugin.info.name}", not "${entry.name}"; a reload keeps the name`);
      }
      const name = plugin.info.name;
      // Only the live instance speaks for the plugin's quarantine: a retired one still finishing calls does not.
      const guard: GuardedPlugin = new GuardedPlugin(this.decorate(plugin), { on_error: spec.on_error, breaker: spec.breaker }, this.log, (state) => {
        if (entry.instance?.guard === guard) this.options.onQuarantine?.(name, state !== 'closed');
      });
      return { plugin: guard, guard, sha256: staged.sha256, loadedFrom: staged.file, loadedAt: new Date(), inflight: 0, retired: false, closed: false };
    } catch (err) {
      if (staged !== undefined) this.staging.discard(staged.file);
      const e = err instanceof HeimdallError ? err : Errors.INTERNAL(String(err));
      entry.errors = [...entry.errors, { at: new Date().toISOString(), code: e.code, message: e.message }].slice(-MAX_ERRORS);
      if (entry.instance !== undefined) {
        this.restoreState(entry);
        this.log.error({ plugin: entry.name, code: e.code }, `reload failed, the previous instance keeps serving: ${e.message}`);
      } else {
        entry.state = 'error';
      }
      throw e;
    }
  }

  /** A preparation undone: the entry's state as it was before (an entry with no instance was "loading"). */
  private restoreState(entry: Entry): void {
    if (entry.stateBefore !== undefined && entry.state === 'loading') entry.state = entry.stateBefore;
    entry.stateBefore = undefined;
  }

  /** Make `instance` the entry's live one and retire the old one, whose in-flight calls finish on it. */
  private install(entry: Entry, instance: Instance): void {
    const old = entry.instance;
    const { name, language, abiVersion, mode } = instance.plugin.info;
    if (old !== undefined && old.guard.quarantine().state !== 'closed') this.options.onQuarantine?.(name, false);
    entry.instance = instance;
    entry.name = name;
    entry.state = 'active';
    entry.stateBefore = undefined;
    if (old !== undefined) this.retireInstance(entry, old);
    this.log.info(
      { plugin: entry.name, file: entry.file, sha256: instance.sha256.slice(0, 12), language, abi: abiVersion, mode },
      old ? 'plugin reloaded' : 'plugin loaded',
    );
  }

  private retire(entry: Entry, force = false): void {
    const instance = entry.instance;
    entry.instance = undefined;
    if (instance === undefined) return;
    if (instance.guard.quarantine().state !== 'closed') this.options.onQuarantine?.(entry.name, false);
    this.retireInstance(entry, instance, force);
  }

  private retireInstance(entry: Entry, instance: Instance, force = false): void {
    instance.retired = true;
    if (!canUnload(instance.plugin.info.language) && instance.plugin.info.mode !== 'isolated') entry.kept += 1;
    if (instance.inflight === 0 || force) void this.close(instance);
  }

  /**
   * Cleanup (and, by mode, dlclose or the child's exit). Returns when that is done; callers that retire an instance
   * a request still holds do not wait for it.
   */
  private async close(instance: Instance): Promise<void> {
    if (instance.closed) return; // closeAll forces instances still held; their last release must not close again
    instance.closed = true;
    const { name, language, mode } = instance.plugin.info;
    try {
      await instance.plugin.close();
      this.log.info({ plugin: name }, 'plugin cleaned up');
    } catch (err) {
      this.log.error({ plugin: name, err }, 'plugin cleanup failed');
    }
    // An isolated plugin's copy is mapped by its child only, which has exited.
    if (canUnload(language) || mode === 'isolated') this.staging.discard(instance.loadedFrom);
  }

  private publish(notify = true): void {
    this.snapshot = this.entries.filter((e) => e.state === 'active' && e.instance !== undefined).map((e) => e.instance as Instance);
    this.activePlugins = this.snapshot.map((i) => i.plugin);
    if (notify) this.options.onChange?.();
  }

  private find(name: string): Entry {
    const entry = this.entries.find((e) => e.name === name);
    if (entry === undefined) throw Errors.ADMIN_PLUGIN_UNKNOWN(name, this.entries.map((e) => e.name));
    return entry;
  }

  private statusOf(entry: Entry): PluginStatus {
    const status: PluginStatus = {
      name: entry.name,
      status: entry.state,
      file: entry.file,
      position: this.entries.indexOf(entry),
      instances_kept: entry.kept,
      optional: entry.spec.optional,
      watch: entry.spec.watch,
      last_errors: entry.errors,
    };
    const instance = entry.instance;
    if (instance !== undefined) {
      const { info } = instance.plugin;
      status.sha256 = instance.sha256;
      status.loaded_from = instance.loadedFrom;
      status.language = info.language;
      status.abi_version = info.abiVersion;
      status.hooks = Object.entries(info.hooks).filter(([, on]) => on).map(([hook]) => hook);
      status.mode = info.mode;
      status.concurrency = info.concurrency;
      status.quarantine = instance.guard.quarantine();
      const runtime = instance.plugin.runtime();
      if (runtime !== undefined) status.runtime = runtime;
      status.loaded_at = instance.loadedAt.toISOString();
    }
    return status;
  }
}

