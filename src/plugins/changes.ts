/**
 * A change to the set of plugins, as data: what the admin API asks for, and what the primary of a worker pool sends
 * every worker (docs/workers.md). A change is applied in two steps so that a pool can make it all-or-nothing:
 * prepare (everything that can fail: load and Init the new code, check names and order) and then commit (the swap,
 * which cannot fail) or abort (the prepared instance is cleaned up; nothing changed). A single gateway does both
 * steps at once.
 */
import type { PluginConfig } from '../config/schema.js';
import type { PluginStatus } from './registry.js';

export type PluginChange =
  /** Register and load a new plugin; `confinedTo`: real directories its file must stay inside at every load. */
  | { op: 'add'; spec: PluginConfig; baseDir: string; position?: number; confinedTo?: string[] }
  /** Load the plugin's file again, with its config, and swap it in. */
  | { op: 'reload'; name: string }
  /** Initialise a new instance with this config, and swap it in. */
  | { op: 'configure'; name: string; config: Record<string, unknown> }
  | { op: 'enable'; name: string }
  | { op: 'disable'; name: string }
  /** Unload the plugin, keeping its entry. */
  | { op: 'unload'; name: string }
  /** Unload the plugin and forget it. */
  | { op: 'remove'; name: string }
  /** Name every registered plugin once, in the new order. */
  | { op: 'reorder'; order: string[] }
  /** End the plugin's quarantine now. */
  | { op: 'unquarantine'; name: string };

/** What a change answers: the plugin's status after it, every plugin's (reorder), or nothing (remove). */
export type ChangeResult = PluginStatus | PluginStatus[] | null;

/**
 * A change made ready. Until commit or abort, no other change runs (requests do: they keep the instances they
 * have); a prepared change left alone too long aborts itself.
 */
export interface PreparedChange {
  /** Make the change visible to the next request. */
  commit(): ChangeResult;
  /** Undo the preparation (clean up a new instance); resolves once that is done. */
  abort(): Promise<void>;
}

/** One plugin as the admin API lists it: its status, and its entry as config.json holds it. */
export interface PluginView {
  status: PluginStatus;
  spec: PluginConfig;
}

/**
 * What the admin API drives: a single gateway's registry, or the primary of a pool speaking for every worker.
 */
export interface PluginControl {
  list(): Promise<PluginView[]>;
  apply(change: PluginChange): Promise<ChangeResult>;
}

/** A short description of a change, for logs. */
export function describeChange(change: PluginChange): string {
  switch (change.op) {
    case 'add':
      return `add ${change.spec.path}`;
    case 'reorder':
      return `reorder to ${change.order.join(', ')}`;
    default:
      return `${change.op} ${change.name}`;
  }
}
