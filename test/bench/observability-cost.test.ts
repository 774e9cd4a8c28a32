import { describe, expect, it } from 'vitest';
import type { CaseResult } from '../../src/bench/case-result.js';
import type { CpuPerRequest } from '../../src/bench/cpu-meter.js';
import {
  observabilityCosts,
  observabilityReport,
  type TwinVariant,
} from '../../src/bench/observability-cost.js';

const CASE = 'GET /goods (gateway)';
const twinOf = (name: string, variant: TwinVariant) => `${name} [${variant}]`;

/** Slices of one twin: each rate with the same latency. */
const slices = (name: string, rates: number[]): CaseResult[] =>
  rates.map((requestsPerSec) => ({ name, requestsPerSec, p50Ms: 10, p99Ms: 40, errors: 0, total: 1000 }));
const cpuSlices = (totals: number[], gateways: number[]): CpuPerRequest[] =>
  totals.map((totalUs, index) => ({ totalUs, gatewayUs: gateways[index]!, byProcess: new Map() }));

describe('observabilityCosts', () => {
  // Six pairs: the off twin's rate moves with the machine, slice by slice; each measured slice is paired
  // with the off twin's slice of the same turn, not with the off twin's median.
  const off = [1000, 500, 1000, 500, 1000, 500];
  const shipped = [950, 475, 950, 475, 950, 475]; // 5 % below its pair, every time
  const traced = [800, 450, 800, 450, 800, 450]; // 20 % and 10 %
  const all = new Map<string, CaseResult[]>([
    [twinOf(CASE, 'off'), slices(CASE, off)],
    [twinOf(CASE, 'shipped'), slices(CASE, shipped)],
    [twinOf(CASE, 'traced'), slices(CASE, traced)],
    [twinOf(CASE, 'tracedGrpc'), slices(CASE, off)],
  ]);
  const cpu = new Map<string, CpuPerRequest[]>([
    [twinOf(CASE, 'off'), cpuSlices([400, 400, 400, 400, 400, 400], [200, 200, 200, 200, 200, 200])],
    [twinOf(CASE, 'shipped'), cpuSlices([420, 420, 420, 420, 420, 420], [210, 210, 210, 210, 210, 210])],
    [twinOf(CASE, 'traced'), cpuSlices([520, 520, 520, 520, 520, 520], [260, 260, 260, 260, 260, 260])],
    [twinOf(CASE, 'tracedGrpc'), cpuSlices([400, 400, 400, 400, 400, 400], [200, 200, 200, 200, 200, 200])],
  ]);

  it('takes the median of the per-pair losses and CPU increases, one row per measured twin', () => {
    const rows = observabilityCosts([CASE], twinOf, all, cpu);
    expect(rows.map((row) => row.variant)).toEqual(['off', 'traced', 'tracedGrpc']);
    const [asShipped, tracedRow, tracedGrpcRow] = rows;
    // Against the off twin's median (750), the shipped twin's median (712.5) would be the same 5 %;
    // the traced twin's (625) would be 16.7 %, where its pairs lost 20 and 10 %: median 15 %.
    expect(asShipped!.loss).toBeCloseTo(0.05, 12);
    expect(tracedRow!.loss).toBeCloseTo(0.15, 12);
    expect(tracedRow!.pairLosses.map((loss) => Number(loss.toFixed(3)))).toEqual([
      0.2, 0.1, 0.2, 0.1, 0.2, 0.1,
    ]);
    expect(tracedGrpcRow!.loss).toBe(0);
    expect(tracedRow!.requestsPerSec).toBe(625);
    expect(tracedRow!.offRequestsPerSec).toBe(750);
    expect(asShipped!.cpuIncrease).toBeCloseTo(0.05, 12);
    expect(tracedRow!.cpuIncrease).toBeCloseTo(0.3, 12);
    expect(tracedRow!.gatewayCpuIncrease).toBeCloseTo(0.3, 12);
    expect(tracedRow!.cpu).toEqual({ totalUs: 520, gatewayUs: 260 });
    expect(tracedRow!.offCpu).toEqual({ totalUs: 400, gatewayUs: 200 });
    // Six pairs allow a 95 % interval: their extremes.
    expect(tracedRow!.lossInterval?.low).toBeCloseTo(0.1, 12);
    expect(tracedRow!.lossInterval?.high).toBeCloseTo(0.2, 12);
  });

  it('leaves out a case whose twins did not all run, and gives no interval under six pairs', () => {
    const partial = new Map(all);
    partial.delete(twinOf(CASE, 'tracedGrpc'));
    expect(observabilityCosts([CASE], twinOf, partial, cpu)).toEqual([]);

    const fewer = new Map([...all].map(([name, results]) => [name, results.slice(0, 5)]));
    const rows = observabilityCosts([CASE], twinOf, fewer, cpu);
    expect(rows).toHaveLength(3);
    expect(rows.every((row) => row.lossInterval === undefined)).toBe(true);
    expect(observabilityReport(rows, [])[2]).toContain('too few pairs');
  });

  it('reports one line per row under its header, then what the columns mean and what each sink took', () => {
    const rows = observabilityCosts([CASE], twinOf, all, cpu);
    const lines = observabilityReport(rows, [
      { protocol: 'OTLP/gRPC', url: 'http://127.0.0.1:4317', exports: 12, bytes: 40_960 },
    ]);
    expect(lines[1]).toMatch(
      /^case +measured +req\/s +off +loss +loss, 95 % +p99 +off +CPU µs\/req +off +CPU \+/,
    );
    const traced = lines.find((line) => line.includes('metrics + ids + tracing'))!;
    // req/s and off, the loss and its interval, p99 and off, CPU per request of all and of the gateway.
    expect(traced.split(/\s+/).slice(-14).join(' ')).toBe(
      '625 750 15.0% 10.0% to 20.0% 40.0 40.0 520 400 30.0% 260 200 30.0%',
    );
    expect(lines.filter((line) => line.startsWith(CASE))).toHaveLength(3);
    expect(lines.at(-1)).toBe('(the OTLP/gRPC trace sink took 12 exports, 40 KiB)');
    expect(observabilityReport([], [])).toEqual([]);
  });
});
