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

/** Where the median of the population that samples came from lies, with the chance that it does. */
export interface MedianInterval {
  readonly low: number;
  readonly high: number;
  /** The interval's coverage: at least the confidence asked for (order statistics come in steps). */
  readonly confidence: number;
}

/**
 * A confidence interval for the median that assumes nothing of the samples' distribution, only
 * that they are independent: from the k-th smallest sample to the k-th largest, with k the largest
 * rank for which the chance that fewer than k samples fall below the median, P(Binomial(n, ½) < k),
 * stays within (1 − confidence) / 2. With 12 samples at 95 %: the 3rd to the 10th (96.1 %).
 * Undefined when there are too few samples for that confidence (fewer than 6 at 95 %).
 */
export function medianInterval(values: readonly number[], confidence = 0.95): MedianInterval | undefined {
  const n = values.length;
  const tail = (1 - confidence) / 2;
  let probability = 0.5 ** n; // P(B = j), from j = 0
  let cumulative = 0; // P(B ≤ j)
  let rank = 0;
  let outside = 0;
  for (let j = 0; j < n; j++) {
    cumulative += probability;
    if (cumulative > tail) break;
    rank = j + 1;
    outside = cumulative;
    probability *= (n - j) / (j + 1);
  }
  if (rank === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return { low: sorted[rank - 1]!, high: sorted[n - rank]!, confidence: 1 - 2 * outside };
}
