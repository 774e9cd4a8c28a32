import { describe, expect, it } from 'vitest';
import { checkTarget, mibToMegabytes, targetLine } from '../../src/bench/target-check.js';

describe('checkTarget', () => {
  it('meets a minimum at or above it and a maximum at or below it', () => {
    expect(checkTarget('rate', 0.136, 0.136).met).toBe(true);
    expect(checkTarget('rate', 0.135, 0.136).met).toBe(false);
    expect(checkTarget('p99', 25, 25, 'max').met).toBe(true);
    expect(checkTarget('p99', 25.1, 25, 'max').met).toBe(false);
  });
});

describe('mibToMegabytes', () => {
  it('turns MiB into MB, so that 96 MiB is over a 100 MB target and 95 MiB is not', () => {
    expect(mibToMegabytes(1)).toBe(1.048576);
    expect(checkTarget('RSS (MB)', mibToMegabytes(96), 100, 'max').met).toBe(false);
    expect(checkTarget('RSS (MB)', mibToMegabytes(95), 100, 'max').met).toBe(true);
  });
});

describe('targetLine', () => {
  it('says MET or MISSED, the value to three places and the target with its direction', () => {
    expect(targetLine(checkTarget('GET /goods vs ceiling', 0.0531, 0.136))).toBe(
      `MISSED ${'GET /goods vs ceiling'.padEnd(44)}     0.053  (target ≥ 0.136)`,
    );
    expect(targetLine(checkTarget('RSS gateway (MB)', 93.25, 100, 'max'))).toBe(
      `MET    ${'RSS gateway (MB)'.padEnd(44)}    93.250  (target ≤ 100)`,
    );
  });

  it("gives the value's interval, and says when the target lies within it", () => {
    const within = checkTarget('loss', 0.062, 0.05, 'max', { low: -0.024, high: 0.189, confidence: 0.96 });
    expect(targetLine(within)).toBe(
      `MISSED ${'loss'.padEnd(44)}     0.062  (target ≤ 0.05)  95 %: -0.024 to 0.189, the target within it`,
    );
    const beyond = checkTarget('loss', 0.248, 0.15, 'max', { low: 0.195, high: 0.352, confidence: 0.96 });
    expect(targetLine(beyond)).toBe(
      `MISSED ${'loss'.padEnd(44)}     0.248  (target ≤ 0.15)  95 %: 0.195 to 0.352`,
    );
  });
});
