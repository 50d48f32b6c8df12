/**
 * Metrics plugins define through the host services (ABI 1.2 metric_define / metric_record): counters and histograms
 * named heimdall_plugin_<plugin>_<name>, written at the end of the gateway's /metrics (and so merged across workers
 * with everything else). Kept in the plain series of metrics/series.ts: recording is a Map lookup and an addition.
 */
import { CounterFamily, HistogramFamily, renderFamilies, type CounterSeries, type HistogramSeries } from '../metrics/series.js';
import { HostStatus } from './status.js';

export const METRIC_COUNTER = 0;
export const METRIC_HISTOGRAM = 1;

export const MAX_METRICS_PER_PLUGIN = 32;
export const MAX_LABELS = 8;
export const MAX_SERIES = 1000;
export const MAX_BUCKETS = 32;
/** Prometheus client libraries' default buckets. */
const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

interface Metric {
  kind: number;
  name: string;
  labels: string;
  family: CounterFamily | HistogramFamily;
  /** Series made so far (label-value tuples), up to MAX_SERIES. */
  series: Map<string, CounterSeries | HistogramSeries>;
}

export interface Definition {
  kind: number;
  name: string;
  help: string;
  /** Comma-separated label names, or ''. */
  labels: string;
  buckets: number[] | undefined;
}

/** The metric family name for a plugin's metric: heimdall_plugin_<plugin>_<name>, "-" and "." as "_". */
export function familyName(plugin: string, name: string): string {
  return `heimdall_plugin_${plugin.replace(/[^A-Za-z0-9_]/g, '_')}_${name}`;
}

export class PluginMetrics {
  /** Ids are indexes here, over every plugin: an id names one metric of one plugin. */
  private readonly metrics: Metric[] = [];
  private readonly byFamily = new Map<string, number>();
  private readonly perPlugin = new Map<string, number>();
  private readonly owner: string[] = [];

  /** Returns the id, or a refusing status. The same definition again answers the same id. */
  define(plugin: string, d: Definition): { status: HostStatus; id: number; why?: string } {
    if (d.kind !== METRIC_COUNTER && d.kind !== METRIC_HISTOGRAM) return refuse(HostStatus.E_INVALID, `unknown metric kind ${d.kind}`);
    if (!NAME.test(d.name)) return refuse(HostStatus.E_INVALID, `metric name ${JSON.stringify(d.name)} is not 1-64 characters of [A-Za-z0-9_] starting with a letter or _`);
    const labelNames = d.labels === '' ? [] : d.labels.split(',');
    if (labelNames.length > MAX_LABELS) return refuse(HostStatus.E_LIMIT, `metric ${d.name} has ${labelNames.length} labels, more than ${MAX_LABELS}`);
    const bad = labelNames.find((l) => !NAME.test(l) || l.startsWith('__') || l === 'worker' || l === 'le');
    if (bad !== undefined) return refuse(HostStatus.E_INVALID, `label name ${JSON.stringify(bad)} is not usable (1-64 of [A-Za-z0-9_]; not "le", "worker" or __*)`);
    if (new Set(labelNames).size !== labelNames.length) return refuse(HostStatus.E_INVALID, `metric ${d.name} names a label twice`);
    const name = familyName(plugin, d.name);
    const taken = this.byFamily.get(name);
    if (taken !== undefined) {
      const m = this.metrics[taken] as Metric;
      if (m.kind === d.kind && m.labels === labelNames.join(',')) return { status: HostStatus.OK, id: taken };
      return refuse(HostStatus.E_INVALID, `metric ${d.name} is already defined with another kind or other labels`);
    }
    if ((this.perPlugin.get(plugin) ?? 0) >= MAX_METRICS_PER_PLUGIN) return refuse(HostStatus.E_LIMIT, `the plugin has defined ${MAX_METRICS_PER_PLUGIN} metrics already`);
    let family: CounterFamily | HistogramFamily;
    if (d.kind === METRIC_COUNTER) {
      family = new CounterFamily(name, d.help || d.name, labelNames);
    } else {
      const buckets = d.buckets === undefined || d.buckets.length === 0 ? DEFAULT_BUCKETS : d.buckets;
      if (buckets.length > MAX_BUCKETS) return refuse(HostStatus.E_LIMIT, `metric ${d.name} has ${buckets.length} buckets, more than ${MAX_BUCKETS}`);
      if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= (buckets[i - 1] as number)))) {
        return refuse(HostStatus.E_INVALID, `metric ${d.name}: bucket bounds must be finite and increasing`);
      }
      family = new HistogramFamily(name, d.help || d.name, labelNames, buckets);
    }
    const id = this.metrics.length;
    this.metrics.push({ kind: d.kind, name, labels: labelNames.join(','), family, series: new Map() });
    this.owner.push(plugin);
    this.byFamily.set(name, id);
    this.perPlugin.set(plugin, (this.perPlugin.get(plugin) ?? 0) + 1);
    return { status: HostStatus.OK, id };
  }

  record(plugin: string, id: number, labelValues: string, value: number): { status: HostStatus; why?: string } {
    const m = this.metrics[id];
    if (m === undefined || this.owner[id] !== plugin) return { status: HostStatus.E_INVALID, why: `unknown metric id ${id}` };
    let series = m.series.get(labelValues);
    if (series === undefined) {
      const values = labelValues === '' ? [] : labelValues.split('\n');
      if (values.length !== m.family.labelNames.length) {
        return { status: HostStatus.E_INVALID, why: `${m.name} takes ${m.family.labelNames.length} label values, not ${values.length}` };
      }
      if (m.series.size >= MAX_SERIES) return { status: HostStatus.E_LIMIT, why: `${m.name} has ${MAX_SERIES} series already` };
      series = m.family.labels(...values);
      m.series.set(labelValues, series);
    }
    if (m.kind === METRIC_COUNTER) {
      if (!(value >= 0) || !Number.isFinite(value)) return { status: HostStatus.E_INVALID, why: `${m.name}: a counter only goes up (got ${value})` };
      (series as CounterSeries).value += value;
    } else {
      if (Number.isNaN(value)) return { status: HostStatus.E_INVALID, why: `${m.name}: NaN observed` };
      (series as HistogramSeries).observe(value);
    }
    return { status: HostStatus.OK };
  }

  render(): string {
    return this.metrics.length === 0 ? '' : renderFamilies(this.metrics.map((m) => m.family));
  }
}

function refuse(status: HostStatus, why: string): { status: HostStatus; id: number; why: string } {
  return { status, id: 0, why };
}
