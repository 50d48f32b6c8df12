/**
 * The process's own metrics, under the names prom-client's collectDefaultMetrics gives them (prefixed heimdall_),
 * so that the usual Node.js dashboards work: CPU time, resident memory, heap, event-loop delay and GC pauses.
 *
 * Not collectDefaultMetrics itself: for every registry it is given, it starts an event-loop delay monitor (a timer
 * every 10 ms) and a GC observer, and hands back no way to stop them, so each gateway a process opens and closes
 * (the tests open dozens) would leave both running for good. Here they belong to the gateway and stop when it
 * closes. Everything else is read when /metrics is scraped; a GC pause is recorded in a plain series (series.ts).
 * Its other metrics (file descriptors, handles, heap spaces, version) are left out.
 */
import { PerformanceObserver, constants, monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import { HistogramFamily } from './series.js';

const PREFIX = 'heimdall_';
/** As collectDefaultMetrics samples it, in milliseconds. */
const DELAY_RESOLUTION_MS = 10;
const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
/** The delay monitor's statistics since the previous scrape, by name suffix; the monitor counts in nanoseconds. */
const DELAY_STATS: readonly [string, string, (h: IntervalHistogram) => number][] = [
  ['min', 'The minimum recorded event loop delay.', (h) => h.min],
  ['max', 'The maximum recorded event loop delay.', (h) => h.max],
  ['mean', 'The mean of the recorded event loop delays.', (h) => h.mean],
  ['stddev', 'The standard deviation of the recorded event loop delays.', (h) => h.stddev],
  ['p50', 'The 50th percentile of the recorded event loop delays.', (h) => h.percentile(50)],
  ['p90', 'The 90th percentile of the recorded event loop delays.', (h) => h.percentile(90)],
  ['p99', 'The 99th percentile of the recorded event loop delays.', (h) => h.percentile(99)],
];

export class ProcessMetrics {
  readonly gc = new HistogramFamily(
    `${PREFIX}nodejs_gc_duration_seconds`,
    'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    ['kind'],
    [0.001, 0.01, 0.1, 1, 2, 5],
  );
  private readonly delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  private readonly gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = GC_KINDS[(entry as { detail?: { kind?: number } }).detail?.kind ?? -1];
      if (kind !== undefined) this.gc.labels(kind).observe(entry.duration / 1000);
    }
  });

  constructor(registry: Registry) {
    // Where one reading gives several metrics, the first registered sets them all in its collect: prom-client reads
    // the metrics in the order they were registered, each as soon as the one before has started.
    const registers = [registry];
    const cpu = (name: string, help: string, collect?: () => void) =>
      new Counter({ name: `${PREFIX}process_cpu_${name}`, help, registers, collect });
    const user = cpu('user_seconds_total', 'Total user CPU time spent in seconds.', () => {
      const used = process.cpuUsage();
      set(user, used.user / 1e6);
      set(system, used.system / 1e6);
      set(total, (used.user + used.system) / 1e6);
    });
    const system = cpu('system_seconds_total', 'Total system CPU time spent in seconds.');
    const total = cpu('seconds_total', 'Total user and system CPU time spent in seconds.');

    new Gauge({
      name: `${PREFIX}process_start_time_seconds`,
      help: 'Start time of the process since unix epoch in seconds.',
      registers,
    }).set(Math.round(Date.now() / 1000 - process.uptime()));
    new Gauge({
      name: `${PREFIX}process_resident_memory_bytes`,
      help: 'Resident memory size in bytes.',
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    const heapTotal = new Gauge({
      name: `${PREFIX}nodejs_heap_size_total_bytes`,
      help: 'Process heap size from Node.js in bytes.',
      registers,
      collect() {
        const memory = process.memoryUsage();
        heapTotal.set(memory.heapTotal);
        heapUsed.set(memory.heapUsed);
        external.set(memory.external);
      },
    });
    const heapUsed = new Gauge({
      name: `${PREFIX}nodejs_heap_size_used_bytes`,
      help: 'Process heap size used from Node.js in bytes.',
      registers,
    });
    const external = new Gauge({
      name: `${PREFIX}nodejs_external_memory_bytes`,
      help: 'Node.js external memory size in bytes.',
      registers,
    });

    const delay = this.delay;
    new Gauge({
      name: `${PREFIX}nodejs_eventloop_lag_seconds`,
      help: 'Lag of event loop in seconds.',
      registers,
      // The monitor's figures since the last scrape; and the wait for the next turn of the loop, measured now.
      async collect() {
        if (delay.count > 0) for (const { gauge, read } of stats) gauge.set(read(delay) / 1e9);
        delay.reset();
        const start = performance.now();
        await new Promise((resolve) => setImmediate(resolve));
        this.set((performance.now() - start) / 1000);
      },
    });
    const stats = DELAY_STATS.map(([name, help, read]) => ({
      gauge: new Gauge({ name: `${PREFIX}nodejs_eventloop_lag_${name}_seconds`, help, registers }),
      read,
    }));

    delay.enable();
    this.gcObserver.observe({ entryTypes: ['gc'] });
  }

  /** Stops the event-loop delay monitor and the GC observer. */
  close(): void {
    this.delay.disable();
    this.gcObserver.disconnect();
  }
}

function set(counter: Counter, value: number): void {
  counter.reset();
  counter.inc(value);
}
