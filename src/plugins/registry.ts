/**
 * The registered plugins, in registration order, and the record of those that could not load.
 */
import { realpathSync } from 'node:fs';
import type { Logger } from 'pino';
import type { PluginConfig } from '../config/schema.js';
import { resolveEnvRefs } from '../config/load.js';
import { Errors, HeimdallError } from '../errors.js';
import { loadPlugin, resolvePluginPath } from './loader.js';
import type { Plugin } from './plugin.js';

export interface PluginStatus {
  name: string | null;
  file: string;
  status: 'active' | 'error' | 'disabled';
  language?: string;
  abi_version?: string;
  hooks?: string[];
  error?: { code: string; message: string };
}

export class PluginRegistry {
  /** Active plugins in registration order. The pipeline reads this array; it is replaced, never mutated. */
  active: readonly Plugin[] = [];
  private readonly statuses: PluginStatus[] = [];

  /**
   * `decorate` wraps every plugin instance as it is registered (metrics use it to time each hook), so nothing
   * that observes plugins needs to know how they are loaded.
   */
  constructor(
    private readonly log: Logger,
    private readonly decorate: (plugin: Plugin) => Plugin = (plugin) => plugin,
  ) {}

  /**
   * Load every configured plugin, in order. A plugin that fails stops the start-up (the error is thrown) unless
   * its entry says "optional": true, in which case it is logged and left out.
   */
  loadAll(entries: readonly PluginConfig[], baseDir: string): void {
    const loaded: Plugin[] = [];
    try {
      entries.forEach((entry, index) => {
        const file = resolvePluginPath(entry.path, baseDir);
        if (!entry.enabled) {
          this.statuses.push({ name: null, file, status: 'disabled' });
          return;
        }
        try {
          // dlopen hands back the library already loaded from the same file, globals and all: a second entry would
          // re-run Init on the first one's state.
          const real = realpathOrSelf(file);
          const twin = loaded.find((p) => realpathOrSelf(p.info.file) === real);
          if (twin !== undefined) {
            throw Errors.PLUGIN_NAME(file, `this file is already loaded as plugin "${twin.info.name}"; list each plugin once`);
          }
          const config = resolveEnvRefs(entry.config, `plugins[${index}].config`);
          const takenNames = new Set(loaded.map((p) => p.info.name));
          const plugin = loadPlugin(file, { config, takenNames, warn: (msg) => this.log.warn({ file }, msg) });
          loaded.push(this.decorate(plugin));
          const { name, language, abiVersion, hooks } = plugin.info;
          this.statuses.push({
            name, file, status: 'active', language, abi_version: abiVersion,
            hooks: Object.entries(hooks).filter(([, on]) => on).map(([hook]) => hook),
          });
          this.log.info({ plugin: name, file, language, abi: abiVersion }, 'plugin loaded');
        } catch (err) {
          const e = err instanceof HeimdallError ? err : Errors.INTERNAL(String(err));
          this.statuses.push({ name: null, file, status: 'error', error: { code: e.code, message: e.message } });
          if (!entry.optional) throw e;
          this.log.error({ file, code: e.code }, `optional plugin left out: ${e.message}`);
        }
      });
    } catch (err) {
      closeInReverse(loaded, this.log);
      throw err;
    }
    this.active = loaded;
  }

  status(): readonly PluginStatus[] {
    return this.statuses;
  }

  /** Cleanup every plugin, in reverse load order. */
  closeAll(): void {
    const plugins = this.active;
    this.active = [];
    closeInReverse(plugins, this.log);
  }
}

function realpathOrSelf(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

function closeInReverse(plugins: readonly Plugin[], log: Logger): void {
  for (let i = plugins.length - 1; i >= 0; i--) {
    const plugin = plugins[i] as Plugin;
    try {
      plugin.close();
      log.info({ plugin: plugin.info.name }, 'plugin cleaned up');
    } catch (err) {
      log.error({ plugin: plugin.info.name, err }, 'plugin cleanup failed');
    }
  }
}
