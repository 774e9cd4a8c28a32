import { describe, expect, it } from 'vitest';
import { CountBuckets } from '../../src/common/count-buckets.js';

describe('CountBuckets', () => {
  it('tells the most any key counts, and the keys counting it, as counts go up, down and away', () => {
    const counts = new CountBuckets<string>();
    expect(counts.most).toBe(0);
    expect([...counts.mostKeys()]).toEqual([]);
    counts.add('a', 1);
    counts.add('b', 1);
    expect([...counts.mostKeys()]).toEqual(['a', 'b']);
    counts.add('b', 1);
    expect(counts.most).toBe(2);
    expect([...counts.mostKeys()]).toEqual(['b']);
    counts.add('a', 5);
    expect([counts.most, [...counts.mostKeys()]]).toEqual([6, ['a']]);
    counts.delete('a');
    expect([counts.most, [...counts.mostKeys()], counts.count('a'), counts.size]).toEqual([2, ['b'], 0, 1]);
    counts.add('b', -2);
    expect([counts.most, counts.size]).toEqual([0, 0]);
  });

  it('names the first key to reach the most, none when nothing counts', () => {
    const counts = new CountBuckets<string>();
    expect(counts.firstOfMost()).toBeUndefined();
    counts.add('a', 2);
    counts.add('b', 2);
    expect(counts.firstOfMost()).toBe('a');
    counts.add('a', -1);
    expect(counts.firstOfMost()).toBe('b');
  });

  it('agrees with a count of every key through random changes', () => {
    const counts = new CountBuckets<number>();
    const truth = new Map<number, number>();
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    for (let step = 0; step < 20_000; step++) {
      const key = random(50);
      const have = truth.get(key) ?? 0;
      const roll = random(10);
      const delta = roll === 0 ? -have : roll < 6 ? 1 + random(3) : -Math.min(have, 1 + random(3));
      counts.add(key, delta);
      if (have + delta > 0) truth.set(key, have + delta);
      else truth.delete(key);
      const most = Math.max(0, ...truth.values());
      expect(counts.most).toBe(most);
      expect(new Set(counts.mostKeys())).toEqual(
        new Set([...truth].filter(([, count]) => count === most && most > 0).map(([k]) => k)),
      );
    }
  });
});
