import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IdempotencySweeper } from '../../src/services/common/idempotency-sweeper.js';
import { SqliteGoodsStore } from '../../src/services/goods/sqlite-goods-store.js';

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

/**
 * One sweep deletes at most 20,000 keys; one per 10 minutes fell behind any instance taking more than
 * about 34 keyed writes a second, and its journal grew without end (the README promises about a
 * day's worth). A sweep cut short by that bound is followed by another soon after.
 */
describe('IdempotencySweeper on a journal holding more expired keys than a sweep deletes', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('sweeps again soon until they are all gone, not an interval later', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shop-sweep-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'goods.sqlite');
    let now = 1_000_000;
    const store = new SqliteGoodsStore(file, { idempotency: { retentionMs: 1_000, now: () => now } });
    cleanups.push(() => store.close());
    const expired = 25_000;
    const filler = new Database(file);
    try {
      const insert = filler.prepare(
        `INSERT INTO goods_idempotency (idem_key, method, fingerprint, code, message, response, created_at)
        VALUES (?, 'CreateGoods', x'00', 0, '', x'', ?)`,
      );
      filler.transaction(() => {
        for (let i = 0; i < expired; i++) insert.run(`key-${i}`, now);
      })();
    } finally {
      filler.close();
    }
    now += 2_000;
    const sweeps: number[] = [];
    const sweeper = new IdempotencySweeper({
      store: {
        sweepExpired: async () => {
          const deleted = await store.sweepExpired();
          sweeps.push(deleted);
          return deleted;
        },
      },
      intervalMs: 60_000,
      catchUpPauseMs: 20,
      firstSweepWithinMs: 1,
    });
    cleanups.push(async () => sweeper.stop());
    sweeper.start();
    await vi.waitFor(() => expect(sweeps).toEqual([20_000, 5_000]), { timeout: 5_000 });
    const reader = new Database(file, { readonly: true });
    try {
      expect(reader.prepare('SELECT COUNT(*) FROM goods_idempotency').pluck().get()).toBe(0);
    } finally {
      reader.close();
    }
  });
});
