import { describe, expect, it } from 'vitest';
import { median, medianInterval } from '../../src/bench/case-result.js';

describe('medianInterval', () => {
  it('takes the 3rd to the 10th of 12 samples at 95 %, with their binomial coverage', () => {
    const samples = [12, 3, 7, 1, 9, 11, 2, 8, 5, 10, 4, 6];
    const interval = medianInterval(samples)!;
    expect(interval.low).toBe(3);
    expect(interval.high).toBe(10);
    // 1 − 2 × P(Binomial(12, ½) ≤ 2) = 1 − 2 × 79/4096
    expect(interval.confidence).toBeCloseTo(1 - (2 * 79) / 4096, 12);
  });

  it('widens to the extremes at the fewest samples that allow the confidence, and gives none below', () => {
    expect(medianInterval([4, 2, 6, 1, 5, 3])).toEqual({ low: 1, high: 6, confidence: 1 - 2 / 64 });
    expect(medianInterval([4, 2, 6, 1, 5])).toBeUndefined();
    expect(medianInterval([])).toBeUndefined();
    // A lower confidence needs fewer samples: five allow 90 %, with the extremes again.
    expect(medianInterval([4, 2, 6, 1, 5], 0.9)).toEqual({ low: 1, high: 6, confidence: 1 - 2 / 32 });
  });

  it('covers the true median about as often as it promises', () => {
    // A fixed-seed generator: the check is deterministic, and still samples a skewed distribution.
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const trueMedian = Math.LN2; // of the exponential distribution with rate 1
    let covered = 0;
    const trials = 4000;
    for (let trial = 0; trial < trials; trial++) {
      const samples = Array.from({ length: 12 }, () => -Math.log(1 - random()));
      const { low, high } = medianInterval(samples)!;
      if (low <= trueMedian && trueMedian <= high) covered++;
    }
    expect(covered / trials).toBeGreaterThan(0.945);
    expect(covered / trials).toBeLessThan(0.975);
  });

  it('always contains the median of the samples', () => {
    const samples = [0.05, -0.2, 0.12, 0.07, 0.01, -0.03, 0.3, 0.06, 0.02, 0.09, -0.01, 0.04];
    const interval = medianInterval(samples)!;
    expect(interval.low).toBeLessThanOrEqual(median(samples));
    expect(interval.high).toBeGreaterThanOrEqual(median(samples));
  });
});
