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
}

export interface AddOptions {
  /** Where in the order (default: last). */
  position?: number;
  /** Real directory paths the plugin's file must be inside, checked at this load and every later one. */
  confinedTo?: readonly string[];
}

const MAX_ERRORS = 5;
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
    return this.serial(async () => {
      // Persisted (admin.persist), it must stay confined after a restart: the entry says so.
      const entry = this.newEntry(confinedTo === undefined ? spec : { ...spec, confine: true }, baseDir, confinedTo);
      if (this.entries.some((e) => e.file === entry.file || realFile(e.file) === realFile(entry.file))) {
        throw Errors.ADMIN_CONFLICT(`${entry.file} is already registered; reload it instead`);
      }
      if (spec.enabled) await this.start(entry, 'config');
      if (this.entries.some((e) => e.name === entry.name)) {
        this.retire(entry);
        throw Errors.ADMIN_CONFLICT(`a plugin named "${entry.name}" is already registered`);
      }
      this.entries.splice(Math.max(0, Math.min(position ?? this.entries.length, this.entries.length)), 0, entry);
      this.publish();
      return this.statusOf(entry);
    });
  }

  /**
   * Load the plugin's file again, with its config, and swap it in. If the new code fails any check, the old
   * instance keeps serving and the error is thrown.
   */
  reload(name: string): Promise<PluginStatus> {
    return this.serial(async () => {
      const entry = this.find(name);
      if (!entry.spec.enabled) throw Errors.ADMIN_CONFLICT(`plugin "${name}" is disabled; enable it instead of reloading it`);
      await this.start(entry, 'config');
      this.publish();
      return this.statusOf(entry);
    });
  }

  /** Replace the plugin's config: a new instance is initialised with it, then swapped in. */
  configure(name: string, config: Record<string, unknown>): Promise<PluginStatus> {
    return this.serial(async () => {
      const entry = this.find(name);
      const previous = entry.spec;
      entry.spec = { ...previous, config };
      if (entry.spec.enabled && (entry.state === 'active' || entry.state === 'error')) {
        try {
          await this.start(entry, 'config');
        } catch (err) {
          entry.spec = previous; // the previous instance, with its config, keeps serving
          throw err;
        }
      }
      this.publish();
      return this.statusOf(entry);
    });
  }

  setEnabled(name: string, enabled: boolean): Promise<PluginStatus> {
    return this.serial(async () => {
      const entry = this.find(name);
      const previous = entry.spec;
      entry.spec = { ...entry.spec, enabled };
      if (!enabled) {
        this.retire(entry);
        entry.state = 'disabled';
      } else if (entry.state !== 'active') {
        try {
          await this.start(entry, 'config');
        } catch (err) {
          entry.spec = previous;
          throw err;
        }
      }
      this.publish();
      return this.statusOf(entry);
    });
  }

  /** Unload the plugin but keep its entry (it can be reloaded later). */
  unload(name: string): Promise<PluginStatus> {
    return this.serial(async () => {
      const entry = this.find(name);
      this.retire(entry);
      entry.state = 'unloaded';
      this.publish();
      return this.statusOf(entry);
    });
  }

  /** Unload the plugin and forget it. */
  remove(name: string): Promise<void> {
    return this.serial(async () => {
      const entry = this.find(name);
      this.retire(entry);
      this.entries = this.entries.filter((e) => e !== entry);
      this.publish();
    });
  }

  /** Put the plugins in this order; `names` must name every registered plugin once. */
  reorder(names: readonly string[]): Promise<readonly PluginStatus[]> {
    return this.serial(async () => {
      const known = this.entries.map((e) => e.name);
      if (names.length !== known.length || new Set(names).size !== names.length || names.some((n) => !known.includes(n))) {
        throw Errors.ADMIN_CONFLICT(`the order must name every registered plugin exactly once: ${known.join(', ')}`);
      }
      this.entries = names.map((n) => this.entries.find((e) => e.name === n) as Entry);
      this.publish();
      return this.status();
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
   * Load the entry's file as its new instance and retire the old one; on failure the old one stays. The library is
   * always loaded from a private copy (see staging.ts), so a build may overwrite the configured file at any time
   * without touching mapped code; for a confined entry, staging refuses a file that is not really inside its
   * directories (checked on the open file it copies, not on the path).
   */
  private async start(entry: Entry, where: string): Promise<void> {
    // A change queued behind the shutdown must not load anything the shutdown would never clean up.
    if (this.closed) throw Errors.ADMIN_CONFLICT('the gateway is shutting down; nothing more is loaded');
    const previousState = entry.state;
    if (entry.instance === undefined) entry.state = 'loading';
    let staged: StagedFile | undefined;
    try {
      const config = resolveEnvRefs(entry.spec.config, where);
      staged = this.staging.stage(entry.file, entry.name, entry.confinedTo);
      // The same file twice would be one library twice: the second Init would reconfigure the first instance.
      const real = realFile(entry.file);
      const twin = this.entries.find((e) => e !== entry && e.instance !== undefined && realFile(e.file) === real);
      if (twin !== undefined) {
        throw Errors.PLUGIN_NAME(entry.file, `this file is already loaded as plugin "${twin.name}"; list each plugin once`);
      }
      const takenNames = new Set(this.entries.filter((e) => e !== entry && e.instance !== undefined).map((e) => e.name));
      const { spec } = entry;
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
      const old = entry.instance;
      const name = plugin.info.name;
      // Only the live instance speaks for the plugin's quarantine: a retired one still finishing calls does not.
      const guard: GuardedPlugin = new GuardedPlugin(this.decorate(plugin), { on_error: spec.on_error, breaker: spec.breaker }, this.log, (state) => {
        if (entry.instance?.guard === guard) this.options.onQuarantine?.(name, state !== 'closed');
      });
      if (old?.guard.quarantine().state !== 'closed' && old !== undefined) this.options.onQuarantine?.(name, false);
      entry.instance = {
        plugin: guard, guard, sha256: staged.sha256, loadedFrom: staged.file, loadedAt: new Date(), inflight: 0, retired: false, closed: false,
      };
      entry.name = plugin.info.name;
      entry.state = 'active';
      if (old !== undefined) this.retireInstance(entry, old);
      const { language, abiVersion, mode } = plugin.info;
      this.log.info(
        { plugin: entry.name, file: entry.file, sha256: staged.sha256.slice(0, 12), language, abi: abiVersion, mode },
        old ? 'plugin reloaded' : 'plugin loaded',
      );
    } catch (err) {
      if (staged !== undefined) this.staging.discard(staged.file);
      const e = err instanceof HeimdallError ? err : Errors.INTERNAL(String(err));
      entry.errors = [...entry.errors, { at: new Date().toISOString(), code: e.code, message: e.message }].slice(-MAX_ERRORS);
      entry.state = entry.instance !== undefined ? previousState : 'error';
      if (entry.instance !== undefined) {
        this.log.error({ plugin: entry.name, code: e.code }, `reload failed, the previous instance keeps serving: ${e.message}`);
      }
      throw e;
    }
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

