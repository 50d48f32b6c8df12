/**
 * Per plugin and hook: calls, errors, short-circuits and a latency histogram.
 *
 * A hook call that changes nothing costs about a microsecond, and a labelled prom-client observe costs half as much
 * again (it rebuilds and hashes the label set on every call). So these are plain series (series.ts): the decorator
 * looks a plugin's series up once, when it wraps the plugin, and a call bumps them in a few nanoseconds.
 */
import type { HookName } from '../plugins/plugin.js';
import type { FlightCell, FlightRecord } from './flight-record.js';
import { RecentWindow, type RecentSnapshot } from './recent.js';
import { CounterFamily, type CounterSeries, GaugeFamily, HistogramFamily, type HistogramSeries, renderFamilies } from './series.js';

export type { HookName };

/**
 * Upper bounds in seconds: a hook that only looks takes microseconds; one that does real work, milliseconds; a
 * threaded or isolated one that calls out over the network, up to its deadline.
 */
export const HOOK_BUCKETS: readonly number[] = [
  0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.001, 0.005, 0.025, 0.1, 0.5, 2.5,
];
const LABELS = ['plugin', 'hook'];

/** One plugin hook's series. */
export class HookStats {
  constructor(
    private readonly calls: CounterSeries,
    private readonly latency: HistogramSeries,
    private readonly errors: CounterSeries,
    /** None for a PostHook: it replaces the outcome but skips nothing, so it never short-circuits. */
    private readonly shortCircuits: CounterSeries | undefined,
    /** The last minutes, for the dashboard's charts. */
    private readonly recent: RecentWindow,
    /** In a worker of a pool: the cell of its flight record that says this hook is running. */
    private readonly flight: FlightCell | undefined = undefined,
  ) {}

  /** A call starts (`start`: performance.now()); record() ends it. */
  enter(start: number): void {
    this.flight?.enter(start);
  }

  record(seconds: number): void {
    this.flight?.leave();
    this.calls.value++;
    this.latency.observe(seconds);
    this.recent.record(seconds);
  }

  failed(): void {
    this.errors.value++;
    this.recent.failed();
  }

  shortCircuited(): void {
    if (this.shortCircuits !== undefined) this.shortCircuits.value++;
    this.recent.shortCircuited();
  }
}

/** Every plugin's hook stats, by plugin name and hook. */
export class HookMetrics {
  /** In a worker of a pool: where the hooks running now are written, for its primary to read after a crash. */
  flight: FlightRecord | undefined = undefined;

  private readonly calls = new CounterFamily('heimdall_plugin_hook_calls_total', 'Plugin hook calls.', LABELS);
  private readonly errors = new CounterFamily(
    'heimdall_plugin_hook_errors_total',
    'Plugin hook calls that failed (the request went on without the hook).',
    LABELS,
  );
  private readonly shortCircuits = new CounterFamily(
    'heimdall_plugin_hook_short_circuits_total',
    'Plugin hook calls that answered the request themselves (a response or an error instead of the provider).',
    LABELS,
  );
  private readonly latency = new HistogramFamily(
    'heimdall_plugin_hook_latency_seconds',
    'Time spent in each plugin hook call, the ABI crossing included.',
    LABELS,
    HOOK_BUCKETS,
  );

  private readonly quarantined = new GaugeFamily(
    'heimdall_plugin_quarantined',
    "1 while the plugin's circuit breaker keeps its hooks from being called (quarantine), else 0.",
    ['plugin'],
  );
  private readonly quarantines = new CounterFamily(
    'heimdall_plugin_quarantines_total',
    'Times the plugin was quarantined after repeated failures.',
    ['plugin'],
  );

  private readonly windows = new Map<string, { plugin: string; hook: HookName; window: RecentWindow }>();

  /** A plugin's breaker opened (true) or closed (false). */
  quarantine(plugin: string, on: boolean): void {
    this.quarantined.labels(plugin).value = on ? 1 : 0;
    if (on) this.quarantines.labels(plugin).value++;
    else this.quarantines.labels(plugin); // the series exists from the first state change on
  }

  /** Creates the hook's series at zero. A plugin loaded again under the same name (a reload) keeps counting in them. */
  statsFor(plugin: string, hook: HookName): HookStats {
    const key = `${plugin}\u0000${hook}`;
    let recent = this.windows.get(key);
    if (recent === undefined) this.windows.set(key, (recent = { plugin, hook, window: new RecentWindow(HOOK_BUCKETS) }));
    return new HookStats(
      this.calls.labels(plugin, hook),
      this.latency.labels(plugin, hook),
      this.errors.labels(plugin, hook),
      hook === 'PostHook' ? undefined : this.shortCircuits.labels(plugin, hook),
      recent.window,
      this.flight?.cell(plugin, hook),
    );
  }

  /** Every hook's last minutes (dashboard), in the order the hooks were first measured. */
  recent(): ({ plugin: string; hook: HookName } & RecentSnapshot)[] {
    return [...this.windows.values()].map(({ plugin, hook, window }) => ({ plugin, hook, ...window.snapshot() }));
  }

  /** The families in the Prometheus text exposition format (version 0.0.4). */
  render(): string {
    return renderFamilies([this.calls, this.errors, this.shortCircuits, this.latency, this.quarantined, this.quarantines]);
  }
}
