import { describe, expect, it } from 'vitest';
import type { CaseResult } from '../../src/bench/case-result.js';
import { observabilityCosts, type TwinVariant } from '../../src/bench/observability-cost.js';
import { roundOrder, williamsRow } from '../../src/bench/round-order.js';

const VARIANTS: readonly TwinVariant[] = ['shipped', 'off', 'traced', 'tracedGrpc'];
const twinOf = (name: string, variant: TwinVariant): string => `${name} [${variant}]`;
const twins = VARIANTS.map((variant) => ({
  name: twinOf('GET /goods', variant),
  rotation: 'twins',
  slices: 4,
}));

/** The order of the twins' slices over `rounds` rounds, as main.ts runs them. */
const runOrder = (rounds: number): string[] =>
  Array.from({ length: rounds }, (_, round) =>
    roundOrder(twins, round + 1).map((entry) => entry.name),
  ).flat();

describe('roundOrder', () => {
  it('measures no loss between identical twins on a machine whose rate drifts', () => {
    // Four identical twins, the machine 1 % faster every slice (a drift the pairs must not take
    // for a cost): each twin's slice answers at the machine's rate of that moment.
    const all = new Map<string, CaseResult[]>(twins.map((entry) => [entry.name, []]));
    runOrder(3).forEach((name, slot) => {
      const requestsPerSec = 1000 * 1.01 ** slot;
      all.get(name)!.push({ name, requestsPerSec, p50Ms: 1, p99Ms: 2, errors: 0, total: requestsPerSec });
    });
    const rows = observabilityCosts(['GET /goods'], twinOf, all, new Map());
    expect(rows).toHaveLength(3);
    for (const row of rows)
      expect(Math.abs(row.loss), `${row.variant}: ${row.pairLosses}`).toBeLessThan(0.002);
  });

  it('runs every twin at every place and right after every other equally often in a round', () => {
    const order = runOrder(1);
    const follows = new Map<string, number>();
    for (let turn = 0; turn < 4; turn++) {
      const slice = order.slice(4 * turn, 4 * turn + 4);
      expect(new Set(slice).size).toBe(4);
      for (let place = 1; place < 4; place++) {
        const key = `${slice[place - 1]} > ${slice[place]}`;
        follows.set(key, (follows.get(key) ?? 0) + 1);
      }
    }
    expect(follows.size).toBe(12);
    expect([...follows.values()].every((count) => count === 1)).toBe(true);
    for (let place = 0; place < 4; place++) {
      expect(new Set([0, 1, 2, 3].map((turn) => order[4 * turn + place])).size).toBe(4);
    }
  });

  it('balances groups of odd size over twice their rows', () => {
    const follows = new Set<string>();
    for (let turn = 0; turn < 6; turn++) {
      const row = williamsRow(3, turn);
      expect([...row].sort()).toEqual([0, 1, 2]);
      for (let place = 1; place < 3; place++) follows.add(`${row[place - 1]}${row[place]}`);
    }
    expect(follows.size).toBe(6);
  });
});
