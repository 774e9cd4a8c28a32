import type { Metric, Registry } from 'prom-client';

/** The `# TYPE` of a metric, as prom-client writes it (its typings say an enum; it writes these). */
type SeriesType = 'counter' | 'histogram';

/**
 * Counters and histograms for the metrics every request touches, kept as plain numbers per label
 * set and handed to prom-client's registry only when it is scraped.
 *
 * prom-client's own `inc(labels)` and `observe(labels, value)` validate the labels, build a string
 * key from them and allocate a closure and a pair object on every call; `npm run bench:metrics`
 * measures that against these. Here a caller binds a label set once ({@link CounterFamily.series},
 * {@link HistogramFamily.series}) and keeps the series: recording is an addition, and a histogram
 * a bucket search and three additions. The text a scrape gives is prom-client's, from the same
 * registry as every other metric.
 */

/** One label set of a counter. */
export class CounterSeries {
  value = 0;

  inc(by = 1): void {
    this.value += by;
  }
}

/** One label set of a histogram: observations per bucket (not cumulative), their sum and count. */
export class HistogramSeries {
  readonly #upperBounds: readonly number[];
  readonly bucketCounts: Float64Array;
  sum = 0;
  count = 0;

  constructor(upperBounds: readonly number[]) {
    this.#upperBounds = upperBounds;
    this.bucketCounts = new Float64Array(upperBounds.length);
  }

  observe(value: number): void {
    const bounds = this.#upperBounds;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    // Above the last bound: counted in +Inf only (the count).
    if (bucket < bounds.length) this.bucketCounts[bucket]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

interface FamilyOptions<Label extends string, Optional extends string> {
  name: string;
  help: string;
  labelNames: readonly Label[];
  /**
   * Labels a series may leave out, as prom-client leaves out a label not given: OpenTelemetry's
   * `error.type`, say, is there only when something failed.
   */
  optionalLabelNames?: readonly Optional[];
  registers: readonly Registry[];
}

type Labels<Label extends string, Optional extends string = never> = Readonly<
  Record<Label, string> & Partial<Record<Optional, string>>
>;

/** A label left out, in a series' key: a noncharacter, which no label value of the shop's holds. */
const LEFT_OUT = '\uFFFF';

/** What prom-client's registry reads of a metric when it is scraped. */
interface ScrapedValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * A metric of many label sets, each a series bound once; a prom-client metric as its registry sees
 * it when it scrapes or resets: `get()` and `reset()`. Not one of prom-client's classes: a caller
 * that finds it with `registry.getSingleMetric` gets this, without `labels()` or `inc()`.
 */
abstract class SeriesFamily<Label extends string, Optional extends string, Series> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: SeriesType;
  readonly aggregator = 'sum' as const;
  readonly #labelNames: readonly (Label | Optional)[];
  readonly #series = new Map<string, { labels: Labels<string>; series: Series }>();

  constructor(options: FamilyOptions<Label, Optional>) {
    this.name = options.name;
    this.help = options.help;
    this.#labelNames = [...options.labelNames, ...(options.optionalLabelNames ?? [])];
    for (const registry of options.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** The series of one label set, made on first use: keep it, and record on it directly. */
  series(labels: Labels<Label, Optional>): Series {
    const given = labels as Readonly<Record<string, string | undefined>>;
    const key = this.#labelNames.map((name) => given[name] ?? LEFT_OUT).join('\u0000');
    let entry = this.#series.get(key);
    if (!entry) {
      const own: Record<string, string> = {};
      for (const name of this.#labelNames) {
        const value = given[name];
        if (value !== undefined) own[name] = value;
      }
      entry = { labels: own, series: this.newSeries() };
      this.#series.set(key, entry);
    }
    return entry.series;
  }

  /**
   * Drops every series whose labels include all of `labels` (a route or a method the gateway no
   * longer knows): the next series() of such a label set starts from zero, as a counter reset that
   * Prometheus's rate() allows for. Series a caller still holds are no longer scraped.
   */
  forget(labels: Readonly<Partial<Record<Label, string>>>): void {
    const given = Object.entries(labels) as Array<[string, string | undefined]>;
    for (const [key, entry] of this.#series) {
      if (given.every(([name, value]) => entry.labels[name] === value)) this.#series.delete(key);
    }
  }

  protected abstract newSeries(): Series;

  protected abstract valuesOf(labels: Labels<string>, series: Series): ScrapedValue[];

  /** prom-client's registry: the values at the time of the scrape. */
  async get(): Promise<{
    name: string;
    help: string;
    type: SeriesType;
    aggregator: 'sum';
    values: ScrapedValue[];
  }> {
    const values: ScrapedValue[] = [];
    for (const { labels, series } of this.#series.values()) values.push(...this.valuesOf(labels, series));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** prom-client's `registry.resetMetrics()`: every series back to zero, still bound. */
  reset(): void {
    for (const { series } of this.#series.values()) this.resetSeries(series);
  }

  protected abstract resetSeries(series: Series): void;
}

/** A counter whose label sets are bound once (see the top of this file). */
export class CounterFamily<Label extends string, Optional extends string = never> extends SeriesFamily<
  Label,
  Optional,
  CounterSeries
> {
  readonly type = 'counter';

  protected newSeries(): CounterSeries {
    return new CounterSeries();
  }

  protected valuesOf(labels: Labels<string>, series: CounterSeries): ScrapedValue[] {
    return [{ labels: { ...labels }, value: series.value }];
  }

  protected resetSeries(series: CounterSeries): void {
    series.value = 0;
  }
}

/** A histogram whose label sets are bound once (see the top of this file). */
export class HistogramFamily<Label extends string, Optional extends string = never> extends SeriesFamily<
  Label,
  Optional,
  HistogramSeries
> {
  readonly type = 'histogram';
  readonly #upperBounds: readonly number[];

  constructor(options: FamilyOptions<Label, Optional> & { buckets: readonly number[] }) {
    super(options);
    this.#upperBounds = [...options.buckets].sort((a, b) => a - b);
  }

  protected newSeries(): HistogramSeries {
    return new HistogramSeries(this.#upperBounds);
  }

  protected valuesOf(labels: Labels<string>, series: HistogramSeries): ScrapedValue[] {
    const values: ScrapedValue[] = [];
    let cumulative = 0;
    this.#upperBounds.forEach((bound, index) => {
      cumulative += series.bucketCounts[index]!;
      values.push({ metricName: `${this.name}_bucket`, labels: { le: bound, ...labels }, value: cumulative });
    });
    values.push({
      metricName: `${this.name}_bucket`,
      labels: { le: '+Inf', ...labels },
      value: series.count,
    });
    values.push({ metricName: `${this.name}_sum`, labels: { ...labels }, value: series.sum });
    values.push({ metricName: `${this.name}_count`, labels: { ...labels }, value: series.count });
    return values;
  }

  protected resetSeries(series: HistogramSeries): void {
    series.bucketCounts.fill(0);
    series.sum = 0;
    series.count = 0;
  }
}
