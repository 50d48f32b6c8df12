/**
 * Everything the dashboard shows comes through one interface, DashboardSource, as plain JSON: this file's
 * implementation reads one gateway process (its registry, metrics, trace ring and providers); a worker pool's primary
 * can answer the same calls by asking its workers. No method returns a secret: plugin configs are not part of it,
 * provider keys never are (a key is known by its place in its provider's list).
 */
import type { RecentSnapshot } from '../metrics/recent.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { logRedactor, TraceRecorder, type TraceDetail, type TraceSummary } from '../pipeline/trace.js';
import type { PluginRegistry, PluginStatus } from '../plugins/registry.js';
import type { Config } from '../config/schema.js';
import type { ProviderKeyState } from '../providers/registry.js';

/** What the plugins table shows for a plugin: "failed" is a plugin that could not load. */
export type DashboardState = 'active' | 'quarantined' | 'failed' | 'disabled' | 'loading' | 'unloaded';

export interface DashboardPlugin {
  name: string;
  /** Place in the pipeline, from 0. */
  position: number;
  state: DashboardState;
  language: string | null;
  abi_version: string | null;
  mode: string | null;
  hooks: string[];
  sha256: string | null;
  /** The configured file's base name (its directory is the admin API's to show). */
  file: string;
  loaded_at: string | null;
  quarantine: PluginStatus['quarantine'] | null;
  last_errors: PluginStatus['last_errors'];
}

export interface HookSeries extends RecentSnapshot {
  plugin: string;
  hook: string;
}

export interface UpstreamSeries extends RecentSnapshot {
  provider: string;
  model: string;
}

export interface DashboardProviders {
  /** Configured providers, with the models each lists (null: it forwards any model name). */
  providers: { name: string; type: string; models: string[] | null }[];
  /** Upstream calls over the last minutes, by provider and model. */
  upstream: UpstreamSeries[];
  /** Every provider's keys (never a key's value), and which of them rest after the upstream refused them. */
  keys: DashboardKey[];
}

/**
 * One API key of a provider, named by its place in the provider's `keys` list (from 1). `resting.workers`: how many
 * processes rest it (1 in a single gateway; in a worker pool, each worker has its own keys' rests).
 */
export interface DashboardKey extends Omit<ProviderKeyState, 'resting'> {
  resting: (NonNullable<ProviderKeyState['resting']> & { workers: number }) | null;
}

export interface DashboardInfo {
  /** Whether request and response bodies are kept (log.bodies): the inspector shows them only then. */
  bodies: boolean;
  /** How many requests the inspector keeps; 0: it is off. */
  inspector_size: number;
  /** "always", or "while_watched": from the first read of this data until 15 minutes after the last. */
  recording: 'always' | 'while_watched' | 'off';
}

/**
 * The dashboard's data: asynchronous and plain JSON, so another process can answer it. Any call counts as someone
 * looking: the request inspector records while someone does (admin.dashboard.record).
 */
export interface DashboardSource {
  info(): Promise<DashboardInfo>;
  /** Every registered plugin, in pipeline order. */
  plugins(): Promise<DashboardPlugin[]>;
  /** Each plugin hook's last minutes. */
  series(): Promise<HookSeries[]>;
  /** The last requests, newest first, at most `limit`. */
  requests(limit: number): Promise<TraceSummary[]>;
  /** One request's timeline; null when it has left the ring (or never was). */
  request(id: string): Promise<TraceDetail | null>;
  providers(): Promise<DashboardProviders>;
}

export interface LocalSourceOptions {
  plugins: PluginRegistry;
  metrics: GatewayMetrics;
  /** config.providers: names, types and model lists are read from it (never keys). */
  providers: Config['providers'];
  /** The providers' keys' states (ProviderRegistry.keyStates): never the keys. */
  keys: () => ProviderKeyState[];
  /** Absent when the inspector is off. */
  traces: TraceRecorder | undefined;
  bodies: boolean;
  /** admin.dashboard.record is "always". */
  always: boolean;
}

/** The dashboard's data for one gateway process. */
export function localSource({ plugins, metrics, providers, keys, traces, bodies, always }: LocalSourceOptions): DashboardSource {
  const look = () => traces?.watch();
  return {
    info: async () => {
      look();
      return { bodies: bodies && traces !== undefined, inspector_size: traces?.size ?? 0, recording: traces === undefined ? 'off' : always ? 'always' : 'while_watched' };
    },
    plugins: async () => (look(), plugins.status().map(dashboardPlugin)),
    series: async () => (look(), metrics.recentHooks()),
    requests: async (limit) => (look(), traces?.list(limit) ?? []),
    request: async (id) => (look(), traces?.get(id) ?? null),
    providers: async () => (look(), {
      providers: Object.entries(providers).map(([name, p]) => ({ name, type: p.type, models: p.models === undefined ? null : [...p.models] })),
      upstream: metrics.recentUpstream(),
      keys: keys().map((k) => ({ ...k, resting: k.resting === null ? null : { ...k.resting, workers: 1 } })),
    }),
  };
}

export function dashboardPlugin(s: PluginStatus): DashboardPlugin {
  return {
    name: s.name,
    position: s.position,
    state: stateOf(s),
    language: s.language ?? null,
    abi_version: s.abi_version ?? null,
    mode: s.mode ?? null,
    hooks: s.hooks ?? [],
    sha256: s.sha256 ?? null,
    file: s.file.split(/[\\/]/).pop() ?? s.file,
    loaded_at: s.loaded_at ?? null,
    quarantine: s.quarantine ?? null,
    last_errors: s.last_errors,
  };
}

function stateOf(s: PluginStatus): DashboardState {
  if (s.status === 'error') return 'failed';
  if (s.status === 'active' && s.quarantine !== undefined && s.quarantine.state !== 'closed') return 'quarantined';
  return s.status;
}

/** The request inspector's ring, when the dashboard and its inspector are on (admin.dashboard). */
export function inspectorFor(config: Config): TraceRecorder | undefined {
  const { enabled, dashboard } = config.admin;
  if (!enabled || !dashboard.enabled || dashboard.requests === 0) return undefined;
  return new TraceRecorder(dashboard.requests, config.log.bodies ? logRedactor() : undefined, dashboard.record === 'always');
}

/** The dashboard's source for this gateway, or undefined when admin.dashboard is off. */
export function dashboardFor(config: Config, options: Omit<LocalSourceOptions, 'providers' | 'bodies' | 'always'>): DashboardSource | undefined {
  const { dashboard } = config.admin;
  if (!dashboard.enabled) return undefined;
  return localSource({ ...options, providers: config.providers, bodies: config.log.bodies, always: dashboard.record === 'always' });
}
