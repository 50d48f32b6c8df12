/**
 * Development watch: reload a plugin when its file on disk changes (a build finished). Builds write files in
 * several steps (truncate, write, rename), so changes are debounced, and the directory is watched rather than the
 * file, whose inode a rename replaces.
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
/** What is watched and reloaded: a gateway's registry, or the primary of a pool reloading in every worker. */
export interface Watched {
  watched(): { name: string; file: string }[];
  reload(name: string): Promise<unknown>;
}

export class PluginWatcher {
  private watchers = new Map<string, FSWatcher>();
  private timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly registry: Watched,
    private readonly log: Logger,
    private readonly debounceMs = 300,
  ) {}

  /** Watch exactly the plugins that have watch: true now (call again after the registry changes). */
  sync(): void {
    const wanted = new Map(this.registry.watched().map((w) => [w.file, w.name]));
    for (const [file, watcher] of this.watchers) {
      if (!wanted.has(file)) {
        watcher.close();
        this.watchers.delete(file);
      }
    }
    for (const [file] of wanted) {
      if (this.watchers.has(file)) continue;
      const base = path.basename(file);
      try {
        const watcher = watch(path.dirname(file), (_event, changed) => {
          if (changed === null || changed.toString() === base) this.schedule(file);
        });
        watcher.on('error', (err) => this.log.warn({ file, err }, 'plugin watch failed'));
        this.watchers.set(file, watcher);
      } catch (err) {
        this.log.warn({ file, err }, 'cannot watch the plugin file');
      }
    }
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    for (const t of this.timers.values()) clearTimeout(t);
    this.watchers.clear();
    this.timers.clear();
  }

  private schedule(file: string): void {
    clearTimeout(this.timers.get(file));
    this.timers.set(
      file,
      setTimeout(() => {
        this.timers.delete(file);
        const entry = this.registry.watched().find((w) => w.file === file);
        if (entry === undefined) return;
        this.registry.reload(entry.name).catch((err: unknown) => {
          // The registry logged it and kept the previous instance serving.
          this.log.debug({ plugin: entry.name, err }, 'watched reload failed');
        });
      }, this.debounceMs),
    );
  }
}
