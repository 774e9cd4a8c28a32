/** What one benchmark case measured. */
export interface CaseResult {
  name: string;
  /** Successful answers per second. */
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Failed requests: transport errors, timeouts, non-2xx answers, or an `errorcode` other than 0. */
  errors: number;
  total: number;
}

/** The value at quantile q (0..1) of ascending samples. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The median of a few numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
