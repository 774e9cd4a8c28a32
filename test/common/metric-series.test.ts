import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CounterFamily, HistogramFamily } from '../../src/common/metric-series.js';

const BUCKETS = [0.005, 0.01, 0.1, 1];
const OBSERVATIONS = [0.001, 0.005, 0.0051, 0.05, 0.5, 1, 3, 0];

/** The same metrics, once with prom-client's own classes and once with the bound series. */
function both() {
  const reference = new Registry();
  const ours = new Registry();
  const counterOptions = {
    name: 'probe_calls_total',
    help: 'Calls.',
    labelNames: ['method', 'code'] as const,
  };
  const histogramOptions = {
    name: 'probe_seconds',
    help: 'Time of "calls", in seconds.\nSecond line.',
    labelNames: ['method'] as const,
    buckets: BUCKETS,
  };
  return {
    reference,
    ours,
    promCounter: new Counter({
      ...counterOptions,
      labelNames: [...counterOptions.labelNames],
      registers: [reference],
    }),
    promHistogram: new Histogram({
      ...histogramOptions,
      labelNames: [...histogramOptions.labelNames],
      registers: [reference],
    }),
    counter: new CounterFamily({ ...counterOptions, registers: [ours] }),
    histogram: new HistogramFamily({ ...histogramOptions, registers: [ours] }),
  };
}

describe('metric series bound once', () => {
  it('scrape to the very text prom-client writes for the same observations', async () => {
    const { reference, ours, promCounter, promHistogram, counter, histogram } = both();
    // A label value that needs escaping, and two label sets.
    const methods = ['List', 'Say "hi"\\now'];
    for (const method of methods) {
      const ok = counter.series({ method, code: 'OK' });
      const series = histogram.series({ method });
      for (const value of OBSERVATIONS) {
        promCounter.inc({ method, code: 'OK' });
        ok.inc();
        promHistogram.observe({ method }, value);
        series.observe(value);
      }
      promCounter.inc({ method, code: 'NotFound' }, 2);
      counter.series({ code: 'NotFound', method }).inc(2);
    }
    expect(await ours.metrics()).toBe(await reference.metrics());
    // The JSON too, but for prom-client's exemplar slots (always empty: exemplars are off).
    const withoutExemplars = (await reference.getMetricsAsJSON()).map((metric) => ({
      ...metric,
      values: metric.values.map((value) => {
        const { exemplar: _none, ...rest } = value as typeof value & { exemplar?: unknown };
        return rest;
      }),
    }));
    expect(await ours.getMetricsAsJSON()).toEqual(withoutExemplars);
  });

  it('binds a label set once, whatever the order of its labels', () => {
    const { counter } = both();
    const one = counter.series({ method: 'List', code: 'OK' });
    expect(counter.series({ code: 'OK', method: 'List' })).toBe(one);
    expect(counter.series({ method: 'List', code: 'NotFound' })).not.toBe(one);
  });

  it('go back to zero with the registry, and keep counting on the series already bound', async () => {
    const { ours, counter, histogram } = both();
    const calls = counter.series({ method: 'List', code: 'OK' });
    const seconds = histogram.series({ method: 'List' });
    calls.inc(5);
    seconds.observe(0.2);
    ours.resetMetrics();
    calls.inc();
    const text = await ours.metrics();
    expect(text).toContain('probe_calls_total{method="List",code="OK"} 1\n');
    expect(text).toContain('probe_seconds_count{method="List"} 0\n');
    expect(text).toContain('probe_seconds_bucket{le="+Inf",method="List"} 0\n');
  });

  it('leave out an optional label a series is not given, as prom-client does, and tell the two series apart', async () => {
    const reference = new Registry();
    const ours = new Registry();
    const options = { name: 'probe_answers_seconds', help: 'Answers.', buckets: BUCKETS };
    const promHistogram = new Histogram({
      ...options,
      labelNames: ['route', 'error_type'],
      registers: [reference],
    });
    const histogram = new HistogramFamily({
      ...options,
      labelNames: ['route'],
      optionalLabelNames: ['error_type'],
      registers: [ours],
    });
    const whole = histogram.series({ route: '/goods' });
    const cut = histogram.series({ route: '/goods', error_type: 'answer_cut_short' });
    expect(cut).not.toBe(whole);
    expect(histogram.series({ route: '/goods' })).toBe(whole);
    for (const value of OBSERVATIONS) {
      whole.observe(value);
      promHistogram.observe({ route: '/goods' }, value);
    }
    cut.observe(0.5);
    promHistogram.observe({ route: '/goods', error_type: 'answer_cut_short' }, 0.5);
    const text = await ours.metrics();
    expect(text).toBe(await reference.metrics());
    expect(text).toContain('probe_answers_seconds_count{route="/goods"} 8\n');
    expect(text).toContain('probe_answers_seconds_count{route="/goods",error_type="answer_cut_short"} 1\n');
  });
});
