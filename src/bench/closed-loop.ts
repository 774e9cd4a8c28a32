import { performance } from 'node:perf_hooks';
import { type CaseResult, quantile } from './case-result.js';

/**
 * Runs `operation` from `concurrency` loops at once for `durationSec` (each loop starts its next call
 * when the previous one ends, as autocannon's connections do) and measures rate and latency.
 */
export async function runClosedLoop(
  name: string,
  concurrency: number,
  durationSec: number,
  operation: () => Promise<unknown>,
): Promise<CaseResult> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + durationSec * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const begin = performance.now();
      try {
        await operation();
      } catch {
        errors++;
      }
      latencies.push(performance.now() - begin);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsedSec = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    name,
    requestsPerSec: (latencies.length - errors) / elapsedSec,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    errors,
    total: latencies.length,
  };
}
