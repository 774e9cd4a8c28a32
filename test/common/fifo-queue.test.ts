import { describe, expect, it } from 'vitest';
import { FifoQueue } from '../../src/common/fifo-queue.js';

describe('FifoQueue', () => {
  it('gives items back in the order they came, across the compactions of its array', () => {
    const queue = new FifoQueue<number>();
    const taken: number[] = [];
    let pushed = 0;
    // Pushes and shifts interleaved, so that taken items are let go while others still wait.
    for (let round = 0; round < 50; round++) {
      for (let count = 0; count < 7; count++) queue.push(pushed++);
      for (let count = 0; count < 5; count++) taken.push(queue.shift()!);
    }
    expect(queue.length).toBe(pushed - taken.length);
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) taken.push(item);
    expect(taken).toEqual(Array.from({ length: pushed }, (_, index) => index));
    expect([queue.length, queue.shift()]).toEqual([0, undefined]);
  });

  it('is empty after clear', () => {
    const queue = new FifoQueue<string>();
    queue.push('a');
    queue.push('b');
    queue.clear();
    expect([queue.length, queue.shift()]).toEqual([0, undefined]);
  });
});
