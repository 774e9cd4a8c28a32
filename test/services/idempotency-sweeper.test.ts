import { afterEach, describe, expect, it, vi } from 'vitest';
import { IdempotencySweeper } from '../../src/services/common/idempotency-sweeper.js';

describe('IdempotencySweeper', () => {
  let sweeper: IdempotencySweeper | undefined;
  afterEach(() => sweeper?.stop());

  it('sweeps first within firstSweepWithinMs of the start, not an interval after it, then every interval', async () => {
    const sweeps: number[] = [];
    const started = performance.now();
    sweeper = new IdempotencySweeper({
      store: {
        sweepExpired: async () => {
          sweeps.push(performance.now() - started);
          return 0;
        },
      },
      // An instance restarted more often than the interval must still sweep.
      intervalMs: 60_000,
      firstSweepWithinMs: 200,
    });
    sweeper.start();
    await vi.waitFor(() => expect(sweeps).toHaveLength(1), { timeout: 2_000 });
    expect(sweeps[0]).toBeLessThan(1_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sweeps).toHaveLength(1);
  });

  it('spreads the first sweeps of instances started together', () => {
    const delays: number[] = [];
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    try {
      for (let instance = 0; instance < 20; instance++) {
        const each = new IdempotencySweeper({
          store: { sweepExpired: async () => 0 },
          firstSweepWithinMs: 60_000,
        });
        each.start();
        delays.push(setTimeoutSpy.mock.calls.at(-1)![1]!);
        each.stop();
      }
    } finally {
      setTimeoutSpy.mockRestore();
    }
    expect(delays.every((delay) => delay >= 0 && delay < 60_000)).toBe(true);
    expect(new Set(delays).size).toBeGreaterThan(10);
  });

  it('sweeps again an interval after a sweep ends, after a failed one too', async () => {
    let calls = 0;
    sweeper = new IdempotencySweeper({
      store: {
        sweepExpired: async () => {
          calls++;
          if (calls === 1) throw new Error('database away');
          return 0;
        },
      },
      intervalMs: 20,
      firstSweepWithinMs: 1,
    });
    sweeper.start();
    await vi.waitFor(() => expect(calls).toBeGreaterThanOrEqual(3), { timeout: 2_000 });
  });
});
