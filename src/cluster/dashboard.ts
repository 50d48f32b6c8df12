/**
 * The dashboard's data for a worker pool (docs/dashboard.md, docs/workers.md): the primary serves the page on the
 * admin listener and answers each of its calls by asking every worker for its own part (the same gathering that
 * /metrics and /health use), then merging them:
 *
 * - plugins: the pipeline as the first worker has it (a change is applied to every worker as one), a plugin shown
 *   quarantined when any worker has it quarantined, with `workers` saying how many do;
 * - hook and upstream series: calls, errors and short-circuits added up interval by interval; the p50 shown is the
 *   call-weighted mean of the workers' medians and the p99 the highest worker's p99 (quantiles can't be added);
 * - requests: every worker's ring, newest first, each request marked with the worker that served it;
 * - provider keys: each worker has its own key pool, so a key is shown resting when any worker rests it, until the
 *   last of those rests ends, with `resting.workers` saying how many workers rest it.
 */
import type { DashboardInfo, DashboardKey, DashboardPlugin, DashboardProviders, DashboardSource, HookSeries, UpstreamSeries } from '../dashboard/source.js';
import type { RecentSnapshot } from '../metrics/recent.js';
import type { TraceDetail, TraceSummary } from '../pipeline/trace.js';
import type { DashboardAsk, ReportPart } from './messages.js';

/** Every serving worker's answer to one dashboard call. */
export type AskWorkers = (ask: DashboardAsk) => Promise<ReportPart[]>;

export function poolDashboard(askWorkers: AskWorkers): DashboardSource {
  const bodies = async <T>(ask: DashboardAsk): Promise<{ worker: number; body: T }[]> =>
    (await askWorkers(ask)).filter((p) => typeof p.body === 'object' && p.body !== null).map((p) => ({ worker: p.worker, body: (p.body as { value: T }).value }));
  return {
    info: async () => {
      const [first] = await bodies<DashboardInfo>({ method: 'info' });
      return first?.body ?? { bodies: false, inspector_size: 0, recording: 'off' };
    },
    plugins: async () => mergePlugins(await bodies<DashboardPlugin[]>({ method: 'plugins' })),
    series: async () => mergeSeries(await bodies<HookSeries[]>({ method: 'series' }), (s) => `${s.plugin}\0${s.hook}`),
    requests: async (limit) => {
      const parts = await bodies<TraceSummary[]>({ method: 'requests', limit });
      return parts
        .flatMap(({ worker, body }) => body.map((r) => ({ ...r, worker })))
        .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
        .slice(0, limit);
    },
    request: async (id) => {
      const parts = await bodies<TraceDetail | null>({ method: 'request', id });
      const found = parts.find((p) => p.body !== null);
      return found === undefined ? null : { ...(found.body as TraceDetail), worker: found.worker };
    },
    providers: async () => {
      const parts = await bodies<DashboardProviders>({ method: 'providers' });
      const [first] = parts;
      if (first === undefined) return { providers: [], upstream: [], keys: [] };
      const upstream = mergeSeries(
        parts.map((p) => ({ worker: p.worker, body: p.body.upstream })),
        (s: UpstreamSeries) => `${s.provider}\0${s.model}`,
      );
      return { providers: first.body.providers, upstream, keys: mergeKeys(parts.map((p) => p.body.keys ?? [])) };
    },
  };
}

function mergePlugins(parts: { worker: number; body: DashboardPlugin[] }[]): DashboardPlugin[] {
  const [first] = parts;
  if (first === undefined) return [];
  return first.body.map((plugin) => {
    const all = parts.map((p) => p.body.find((q) => q.name === plugin.name)).filter((q): q is DashboardPlugin => q !== undefined);
    const quarantined = all.filter((q) => q.state === 'quarantined');
    const shown = quarantined[0] ?? plugin;
    return { ...shown, workers: all.length, quarantined_in: quarantined.length };
  });
}

/** Every worker has the same keys (one config): each shown once, resting when any worker rests it. */
export function mergeKeys(parts: DashboardKey[][]): DashboardKey[] {
  const [first] = parts;
  if (first === undefined) return [];
  return first.map((key) => {
    const rests = parts
      .map((keys) => keys.find((k) => k.provider === key.provider && k.position === key.position)?.resting)
      .filter((r): r is NonNullable<DashboardKey['resting']> => r !== null && r !== undefined);
    if (rests.length === 0) return { ...key, resting: null };
    const longest = rests.reduce((a, b) => (b.for_ms > a.for_ms ? b : a));
    return { ...key, resting: { ...longest, workers: rests.reduce((n, r) => n + r.workers, 0) } };
  });
}

/** Series of the same key added up interval by interval (every worker's intervals start on the same boundaries). */
function mergeSeries<S extends RecentSnapshot>(parts: { worker: number; body: S[] }[], keyOf: (s: S) => string): S[] {
  const merged = new Map<string, S[]>();
  for (const { body } of parts) {
    for (const s of body) {
      const key = keyOf(s);
      merged.set(key, [...(merged.get(key) ?? []), s]);
    }
  }
  return [...merged.values()].map((same) => (same.length === 1 ? (same[0] as S) : addUp(same)));
}

function addUp<S extends RecentSnapshot>(same: S[]): S {
  const start = Math.min(...same.map((s) => s.start));
  const { interval_ms } = same[0] as S;
  const end = Math.max(...same.map((s) => s.start + s.calls.length * s.interval_ms));
  const n = Math.max(0, Math.round((end - start) / interval_ms));
  const out: RecentSnapshot = {
    start,
    interval_ms,
    calls: new Array<number>(n).fill(0),
    errors: new Array<number>(n).fill(0),
    short_circuits: new Array<number>(n).fill(0),
    p50_ms: new Array<number | null>(n).fill(null),
    p99_ms: new Array<number | null>(n).fill(null),
  };
  const weighted = new Array<number>(n).fill(0);
  for (const s of same) {
    const offset = Math.round((s.start - start) / interval_ms);
    for (let i = 0; i < s.calls.length; i++) {
      const j = offset + i;
      const calls = s.calls[i] ?? 0;
      out.calls[j] = (out.calls[j] ?? 0) + calls;
      out.errors[j] = (out.errors[j] ?? 0) + (s.errors[i] ?? 0);
      out.short_circuits[j] = (out.short_circuits[j] ?? 0) + (s.short_circuits[i] ?? 0);
      const p50 = s.p50_ms[i];
      if (p50 !== null && p50 !== undefined) weighted[j] = (weighted[j] ?? 0) + p50 * calls;
      const p99 = s.p99_ms[i];
      if (p99 !== null && p99 !== undefined) out.p99_ms[j] = Math.max(out.p99_ms[j] ?? 0, p99);
    }
  }
  for (let j = 0; j < n; j++) {
    const calls = out.calls[j] ?? 0;
    if (calls > 0 && out.p99_ms[j] !== null) out.p50_ms[j] = (weighted[j] ?? 0) / calls;
  }
  return { ...(same[0] as S), ...out };
}
