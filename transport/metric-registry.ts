/**
 * Counters, gauges and histograms with labels, kept as plain numbers in maps, and their
 * Prometheus text exposition (format 0.0.4, as prom-client writes it) for `--metrics`.
 *
 * Ours rather than prom-client's: every agent counts its operations whether or not anyone
 * scrapes them (`agent.stats` reads the same numbers), and prom-client, with what it loads
 * (OpenTelemetry's API, tdigest, node:http, perf_hooks...), cost an idle agent about 2 MiB
 * resident (docs/performance.md, "Agent memory"). What we need of it is small: a map update
 * per request, and text once per scrape.
 */

type LabelValues<L extends string> = Partial<Record<L, string>>;

export interface Sample {
  labels: Readonly<Record<string, string>>;
  value: number;
  /** For a histogram: `<name>_bucket`, `_sum` or `_count`. */
  metricName?: string;
}

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  samples(): Sample[];
}

const registered = new Map<string, Metric>();

function register(metric: Metric): void {
  if (registered.has(metric.name)) throw new Error(`a metric named ${metric.name} is registered already`);
  registered.set(metric.name, metric);
}

interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

/** One number per combination of label values, in the order of `labelNames`. */
class LabelledValues<L extends string, V> {
  private readonly values = new Map<string, { labels: Record<string, string>; value: V }>();

  constructor(private readonly labelNames: readonly L[], private readonly initial: () => V) {
    // Without labels there is one series, there from the start (prom-client shows it as 0).
    if (labelNames.length === 0) this.entry({});
  }

  entry(labels: LabelValues<L>): { labels: Record<string, string>; value: V } {
    // Called for every request, several times: the key is made without an object or an array,
    // and the labels are copied only for a series seen the first time.
    const names = this.labelNames;
    let key = '';
    for (let i = 0; i < names.length; i++) key += (i === 0 ? '' : '\u0000') + (labels[names[i] as L] ?? '');
    let found = this.values.get(key);
    if (!found) {
      const ordered: Record<string, string> = {};
      for (const name of names) {
        const value = labels[name];
        if (value !== undefined) ordered[name] = value;
      }
      this.values.set(key, found = { labels: ordered, value: this.initial() });
    }
    return found;
  }

  all(): { labels: Record<string, string>; value: V }[] {
    return [...this.values.values()];
  }
}

export class Counter<L extends string = never> implements Metric {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter';
  private readonly values: LabelledValues<L, number>;

  constructor(options: MetricOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    this.values = new LabelledValues(options.labelNames ?? [], () => 0);
    register(this);
  }

  inc(labels: LabelValues<L> = {}, by = 1): void {
    this.values.entry(labels).value += by;
  }

  samples(): Sample[] {
    return this.values.all().map(({ labels, value }) => ({ labels, value }));
  }
}

export class Gauge<L extends string = never> implements Metric {
  readonly name: string;
  readonly help: string;
  readonly type = 'gauge';
  private readonly values: LabelledValues<L, number>;
  private readonly collect: ((gauge: Gauge<L>) => void) | undefined;

  /** `collect`: sets the gauge from elsewhere just before it is read. */
  constructor(options: MetricOptions<L> & { collect?: (gauge: Gauge<L>) => void }) {
    this.name = options.name;
    this.help = options.help;
    this.collect = options.collect;
    this.values = new LabelledValues(options.labelNames ?? [], () => 0);
    register(this);
  }

  inc(labels: LabelValues<L> = {}, by = 1): void {
    this.values.entry(labels).value += by;
  }

  dec(labels: LabelValues<L> = {}, by = 1): void {
    this.values.entry(labels).value -= by;
  }

  set(labels: LabelValues<L>, value: number): void {
    this.values.entry(labels).value = value;
  }

  samples(): Sample[] {
    this.collect?.(this);
    return this.values.all().map(({ labels, value }) => ({ labels, value }));
  }
}

interface Distribution {
  /** Observations in each bucket alone (made cumulative when shown). */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> implements Metric {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  private readonly buckets: readonly number[];
  private readonly values: LabelledValues<L, Distribution>;

  constructor(options: MetricOptions<L> & { buckets: readonly number[] }) {
    this.name = options.name;
    this.help = options.help;
    this.buckets = [...options.buckets].sort((a, b) => a - b);
    this.values = new LabelledValues(options.labelNames ?? [], () => ({ counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    register(this);
  }

  observe(labels: LabelValues<L>, value: number): void {
    const d = this.values.entry(labels).value;
    const at = this.buckets.findIndex((bound) => value <= bound);
    if (at >= 0) (d.counts[at] as number)++;
    d.sum += value;
    d.count++;
  }

  samples(): Sample[] {
    const out: Sample[] = [];
    for (const { labels, value: d } of this.values.all()) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += d.counts[i] as number;
        out.push({ labels: { le: String(bound), ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      out.push({ labels: { le: '+Inf', ...labels }, value: d.count, metricName: `${this.name}_bucket` });
      out.push({ labels, value: d.sum, metricName: `${this.name}_sum` });
      out.push({ labels, value: d.count, metricName: `${this.name}_count` });
    }
    return out;
  }
}

function escaped(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function valueText(value: number): string {
  if (Number.isNaN(value)) return 'Nan';
  if (!Number.isFinite(value)) return value < 0 ? '-Inf' : '+Inf';
  return String(value);
}

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Every metric registered in this process, in the text format Prometheus scrapes. */
export function exposition(): string {
  const blocks = [...registered.values()].map((metric) => {
    const lines = [`# HELP ${metric.name} ${escaped(metric.help)}`, `# TYPE ${metric.name} ${metric.type}`];
    for (const { labels, value, metricName = metric.name } of metric.samples()) {
      const pairs = Object.entries(labels).map(([name, v]) => `${name}="${escaped(v).replace(/"/g, '\\"')}"`);
      lines.push(`${metricName}${pairs.length > 0 ? `{${pairs.join(',')}}` : ''} ${valueText(value)}`);
    }
    return lines.join('\n');
  });
  return `${blocks.join('\n\n')}\n`;
}
