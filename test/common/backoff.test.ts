import { describe, expect, it } from 'vitest';
import { backoffDelay, MOVE_RETRY } from '../../src/common/backoff.js';

describe('backoffDelay', () => {
  it('draws each wait between half its ceiling and all of it, the ceiling doubling up to maxMs', () => {
    const backoff = { initialMs: 100, maxMs: 1_000 };
    const ceilings = [100, 200, 400, 800, 1_000, 1_000];
    ceilings.forEach((ceiling, failures) => {
      const waits = Array.from({ length: 200 }, () => backoffDelay(backoff, failures));
      expect(Math.min(...waits)).toBeGreaterThanOrEqual(ceiling / 2);
      expect(Math.max(...waits)).toBeLessThanOrEqual(ceiling);
      // Jittered: clients cut off together do not come back together.
      expect(new Set(waits).size).toBeGreaterThan(10);
    });
    // A count past 2^30 does not overflow the ceiling.
    expect(backoffDelay(backoff, 10_000)).toBeLessThanOrEqual(1_000);
  });

  it('tries a refused move again 3 to 6 s later, then up to every 2.5 to 5 minutes, as the README says', () => {
    for (let draw = 0; draw < 100; draw++) {
      const first = backoffDelay(MOVE_RETRY, 0);
      expect(first).toBeGreaterThanOrEqual(3_000);
      expect(first).toBeLessThanOrEqual(6_000);
      const late = backoffDelay(MOVE_RETRY, 20);
      expect(late).toBeGreaterThanOrEqual(150_000);
      expect(late).toBeLessThanOrEqual(300_000);
    }
  });
});
