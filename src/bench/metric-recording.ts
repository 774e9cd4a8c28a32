import { Counter, Histogram, Registry } from 'prom-client';
import { CounterFamily, HistogramFamily } from '../common/metric-series.js';
import { DEFAULT_LATENCY_BUCKETS } from '../common/metrics.js';
import { positiveInteger, readBenchSettings } from './bench-settings.js';
import { median } from './case-result.js';

// `npm run bench:metrics`: what recording one observed call costs (a started and a handled counter
// and a latency histogram, the three records of every gRPC call), with prom-client's own classes,
// labels passed on every record as the library's API asks, against the series of
// src/common/metric-series.ts, bound once per label set (GrpcCallMetrics adds two map lookups per
// call to find them). One process, alternating rounds, medians.
const ROUNDS = readBenchSettings(() => positiveInteger(process.env, 'BENCH_ROUNDS', 9));
const CALLS = readBenchSettings(() => positiveInteger(process.env, 'BENCH_CALLS', 200_000));

const labels = {
  grpc_type: 'unary',
  grpc_service: 'shop.v1.GoodsService',
  grpc_method: 'ListGoods',
} as const;
const withCode = { ...labels, grpc_code: 'OK' } as const;
const labelNames = ['grpc_type', 'grpc_service', 'grpc_method'] as const;

function promClient(): (seconds: number) => void {
  const registers = [new Registry()];
  const started = new Counter({ name: 'started_total', help: 'h', labelNames, registers });
  const handled = new Counter({
    name: 'handled_total',
    help: 'h',
    labelNames: [...labelNames, 'grpc_code'],
    registers,
  });
  const seconds = new Histogram({
    name: 'seconds',
    help: 'h',
    labelNames,
    buckets: DEFAULT_LATENCY_BUCKETS,
    registers,
  });
  return (value) => {
    started.inc(labels);
    handled.inc(withCode);
    seconds.observe(labels, value);
  };
}

function boundSeries(): (seconds: number) => void {
  const registers = [new Registry()];
  const started = new CounterFamily({ name: 'started_total', help: 'h', labelNames, registers }).series(
    labels,
  );
  const handled = new CounterFamily({
    name: 'handled_total',
    help: 'h',
    labelNames: [...labelNames, 'grpc_code'],
    registers,
  }).series(withCode);
  const seconds = new HistogramFamily({
    name: 'seconds',
    help: 'h',
    labelNames,
    buckets: DEFAULT_LATENCY_BUCKETS,
    registers,
  }).series(labels);
  return (value) => {
    started.inc();
    handled.inc();
    seconds.observe(value);
  };
}

const variants: Array<[string, (seconds: number) => void]> = [
  ['prom-client, labels on every record', promClient()],
  ['series bound once', boundSeries()],
];
const nsPerCall = new Map<string, number[]>(variants.map(([name]) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (let index = 0; index < variants.length; index++) {
    const [name, record] = variants[(index + round) % variants.length]!;
    const started = process.hrtime.bigint();
    for (let call = 0; call < CALLS; call++) record((call % 1000) / 10_000);
    nsPerCall.get(name)!.push(Number(process.hrtime.bigint() - started) / CALLS);
  }
}
const say = (line: string) => process.stdout.write(`${line}\n`);
say(`bench:metrics: one call's three records (${ROUNDS} rounds of ${CALLS} calls; medians)`);
const reference = nsPerCall.get(variants[0]![0])!;
for (const [name, samples] of nsPerCall) {
  const ratio = median(samples.map((sample, round) => reference[round]! / sample));
  say(
    `  ${name.padEnd(40)} ${median(samples).toFixed(0).padStart(6)} ns   ${ratio.toFixed(1)}× faster than prom-client's`,
  );
}
