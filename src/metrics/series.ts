/**
 * Labelled counters and histograms kept in plain fields, and written out in the Prometheus text format only when
 * /metrics is scraped.
 *
 * prom-client's labelled inc and observe rebuild and hash the label set and stringify the bucket bounds on every
 * call: a few microseconds, where a request's whole overhead budget is tens of them. Here a family's label names and
 * bucket bounds, and each series' label text, are fixed once; finding a series is one Map lookup on its label values
 * joined by NUL (a caller with a fixed tuple keeps the series and skips even that), and recording is a few additions
 * on numbers and a Float64Array.
 *
 * The NUL-joined key is unambiguous as long as at most one value of a tuple can contain a NUL (here: a client's
 * model name; provider, plugin and route names, statuses and outcomes cannot).
 */

const SEPARATOR = '\u0000';

export class CounterSeries {
  value = 0;

  constructor(
    /** `name="value",...`, escaped: what goes between the braces. */
    readonly labels: string,
  ) {}
}

export class HistogramSeries {
  count = 0;
  sum = 0;
  /** Observations per bucket, not cumulative; the last slot is +Inf. */
  readonly counts: Float64Array;

  constructor(
    readonly labels: string,
    private readonly bounds: Float64Array,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    this.count++;
    this.sum += value;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    (this.counts[i] as number)++;
  }
}

abstract class Family<S extends { readonly labels: string }> {
  private readonly all = new Map<string, S>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}

  /** The series for these label values, in the order of labelNames; a new one starts at zero. */
  labels(...values: string[]): S {
    const key = values.length === 1 ? (values[0] as string) : values.join(SEPARATOR);
    let series = this.all.get(key);
    if (series === undefined) {
      if (values.length !== this.labelNames.length) {
        throw new Error(`${this.name} takes ${this.labelNames.length} label values, not ${values.length}`);
      }
      series = this.create(this.labelNames.map((name, i) => `${name}="${escapeLabel(values[i] as string)}"`).join(','));
      this.all.set(key, series);
    }
    return series;
  }

  /** The family in the text exposition format (version 0.0.4): HELP, TYPE, then one or more lines per series. */
  render(): string {
    let text = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
    for (const series of this.all.values()) text += this.samples(series);
    return text;
  }

  protected abstract create(labels: string): S;
  protected abstract samples(series: S): string;
}

export class CounterFamily extends Family<CounterSeries> {
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames, 'counter');
  }

  protected create(labels: string): CounterSeries {
    return new CounterSeries(labels);
  }

  protected samples(s: CounterSeries): string {
    return `${this.name}${braced(s.labels)} ${format(s.value)}\n`;
  }
}

/** A value that goes up and down (a state, a size): a counter's series, written as a gauge. */
export class GaugeFamily extends Family<CounterSeries> {
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames, 'gauge');
  }

  protected create(labels: string): CounterSeries {
    return new CounterSeries(labels);
  }

  protected samples(s: CounterSeries): string {
    return `${this.name}${braced(s.labels)} ${format(s.value)}\n`;
  }
}

export class HistogramFamily extends Family<HistogramSeries> {
  private readonly bounds: Float64Array;
  /** The `le` label of each bucket, +Inf included, written once. */
  private readonly le: readonly string[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames, 'histogram');
    if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= (buckets[i - 1] as number)))) {
      throw new Error(`${name}: bucket bounds must be finite and increasing`);
    }
    this.bounds = Float64Array.from(buckets);
    this.le = [...buckets.map((b) => `le="${b}"`), 'le="+Inf"'];
  }

  protected create(labels: string): HistogramSeries {
    return new HistogramSeries(labels, this.bounds);
  }

  protected samples(s: HistogramSeries): string {
    const prefix = s.labels === '' ? '' : `${s.labels},`;
    let text = '';
    let cumulative = 0;
    this.le.forEach((le, i) => {
      cumulative += s.counts[i] as number;
      text += `${this.name}_bucket{${prefix}${le}} ${cumulative}\n`;
    });
    const labels = braced(s.labels);
    return `${text}${this.name}_sum${labels} ${format(s.sum)}\n${this.name}_count${labels} ${s.count}\n`;
  }
}

/** Families one after the other, a blank line between two, as prom-client writes them. */
export function renderFamilies(families: readonly { render(): string }[]): string {
  return families.map((f) => f.render()).join('\n');
}

/** Label values can come from clients (model names) or plugins (their names): escaped as the text format requires. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function braced(labels: string): string {
  return labels === '' ? '' : `{${labels}}`;
}

function format(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return `${value}`;
}
