/**
 * Per plugin and hook: calls, errors, short-circuits and a latency histogram.
 *
 * A hook call that changes nothing costs about a microsecond, and a labelled prom-client observe costs half as much
 * again (it rebuilds and hashes the label set on every call). So these numbers live in plain fields that a call bumps
 * in a few nanoseconds, and are written out in the Prometheus text format only when /metrics is scraped.
 */

export type HookName = 'TransportInterceptor' | 'PreHook' | 'PostHook' | 'StreamChunkHook';

/** Upper bounds in seconds: a hook that only looks takes microseconds; one that does real work, milliseconds. */
export const HOOK_BUCKETS: readonly number[] = [
  0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.001, 0.005, 0.025, 0.1,
];
const BOUNDS = Float64Array.from(HOOK_BUCKETS);

export class HookStats {
  calls = 0;
  errors = 0;
  shortCircuits = 0;
  sumSeconds = 0;
  /** Observations per bucket, not cumulative; the last slot is +Inf. */
  readonly counts = new Float64Array(BOUNDS.length + 1);

  constructor(
    readonly plugin: string,
    readonly hook: HookName,
  ) {}

  record(seconds: number): void {
    this.calls++;
    this.sumSeconds += seconds;
    let i = 0;
    while (i < BOUNDS.length && seconds > (BOUNDS[i] as number)) i++;
    (this.counts[i] as number)++;
  }
}

const everyHook = () => true;
const FAMILIES = [
  ['heimdall_plugin_hook_calls_total', 'Plugin hook calls.', (s: HookStats) => s.calls, everyHook],
  [
    'heimdall_plugin_hook_errors_total',
    'Plugin hook calls that failed (the request went on without the hook).',
    (s: HookStats) => s.errors,
    everyHook,
  ],
  [
    'heimdall_plugin_hook_short_circuits_total',
    'Plugin hook calls that answered the request themselves (a response or an error instead of the provider).',
    (s: HookStats) => s.shortCircuits,
    // A PostHook replaces the outcome but skips nothing: it never short-circuits.
    (s: HookStats) => s.hook !== 'PostHook',
  ],
] as const;
const LATENCY = 'heimdall_plugin_hook_latency_seconds';

/** Every plugin's hook stats, by plugin name and hook. */
export class HookMetrics {
  private readonly stats = new Map<string, HookStats>();

  /** A plugin loaded again under the same name (a reload) keeps counting in the same series. */
  statsFor(plugin: string, hook: HookName): HookStats {
    const key = `${plugin}\u0000${hook}`;
    let stats = this.stats.get(key);
    if (stats === undefined) {
      stats = new HookStats(plugin, hook);
      this.stats.set(key, stats);
    }
    return stats;
  }

  /** The four families in the Prometheus text exposition format (version 0.0.4). */
  render(): string {
    const all = [...this.stats.values()];
    const lines: string[] = [];
    for (const [name, help, value, applies] of FAMILIES) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const s of all) if (applies(s)) lines.push(`${name}{${labels(s)}} ${value(s)}`);
      lines.push('');
    }
    lines.push(`# HELP ${LATENCY} Time spent in each plugin hook call, the ABI crossing included.`, `# TYPE ${LATENCY} histogram`);
    for (const s of all) {
      const base = labels(s);
      let cumulative = 0;
      HOOK_BUCKETS.forEach((bound, i) => {
        cumulative += s.counts[i] as number;
        lines.push(`${LATENCY}_bucket{${base},le="${bound}"} ${cumulative}`);
      });
      lines.push(
        `${LATENCY}_bucket{${base},le="+Inf"} ${s.calls}`,
        `${LATENCY}_sum{${base}} ${s.sumSeconds}`,
        `${LATENCY}_count{${base}} ${s.calls}`,
      );
    }
    return `${lines.join('\n')}\n`;
  }
}

function labels(s: HookStats): string {
  return `plugin="${escapeLabel(s.plugin)}",hook="${s.hook}"`;
}

/** Plugin names come from the plugin itself (GetName), so they are escaped as the text format requires. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
