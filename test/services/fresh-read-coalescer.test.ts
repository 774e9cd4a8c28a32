import { describe, expect, it } from 'vitest';
import { FreshReadCoalescer } from '../../src/services/common/fresh-read-coalescer.js';

/** A read the test finishes by hand. */
function manualReads() {
  const started: Array<{ finish(value: number): void; fail(error: Error): void }> = [];
  const load = () =>
    new Promise<number>((finish, fail) => {
      started.push({ finish, fail });
    });
  return { started, load };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('FreshReadCoalescer', () => {
  it('answers callers that arrive while a read runs with the next read, which starts after them', async () => {
    const coalescer = new FreshReadCoalescer<string, number>();
    const { started, load } = manualReads();
    const first = coalescer.read('page', load);
    await settle();
    expect(started).toHaveLength(1);
    // Arrived while the first read runs: that read may have missed a write acknowledged before them.
    const second = coalescer.read('page', load);
    const third = coalescer.read('page', load);
    await settle();
    expect(started).toHaveLength(1);
    started[0]!.finish(1);
    await expect(first).resolves.toBe(1);
    await settle();
    // One more read, started after both of them arrived, answers both.
    expect(started).toHaveLength(2);
    started[1]!.finish(2);
    await expect(second).resolves.toBe(2);
    await expect(third).resolves.toBe(2);
  });

  it('reads each key on its own, and starts afresh once nothing runs', async () => {
    const coalescer = new FreshReadCoalescer<string, number>();
    const { started, load } = manualReads();
    const a = coalescer.read('a', load);
    const b = coalescer.read('b', load);
    await settle();
    expect(started).toHaveLength(2);
    started[0]!.finish(10);
    started[1]!.finish(20);
    await expect(Promise.all([a, b])).resolves.toEqual([10, 20]);
    expect(coalescer.running).toBe(0);
    const again = coalescer.read('a', load);
    await settle();
    expect(started).toHaveLength(3);
    started[2]!.finish(11);
    await expect(again).resolves.toBe(11);
  });

  it('fails only the callers of a failed read; the next read is tried afresh', async () => {
    const coalescer = new FreshReadCoalescer<string, number>();
    const { started, load } = manualReads();
    const failing = coalescer.read('page', load);
    await settle();
    const waiting = coalescer.read('page', load);
    started[0]!.fail(new Error('database gone'));
    await expect(failing).rejects.toThrow('database gone');
    await settle();
    expect(started).toHaveLength(2);
    started[1]!.finish(3);
    await expect(waiting).resolves.toBe(3);
  });

  it('turns a load that throws at once into a rejection', async () => {
    const coalescer = new FreshReadCoalescer<string, number>();
    await expect(
      coalescer.read('page', () => {
        throw new Error('bad page');
      }),
    ).rejects.toThrow('bad page');
    expect(coalescer.running).toBe(0);
  });
});
