import { describe, expect, it } from 'vitest';
import { createSnapshotWriter } from '../../src/distributor/snapshot-writer.js';
import type { Snapshot } from '../../src/gen/distributor.js';

const snapshot = (revision: number): Snapshot => ({ revision, nodes: [], instanceId: 'test' });

describe('createSnapshotWriter', () => {
  it('keeps one snapshot in flight and only the newest one waiting', () => {
    const written: number[] = [];
    const callbacks: Array<() => void> = [];
    const write = createSnapshotWriter(
      {
        write(message: Snapshot, callback: () => void) {
          written.push(message.revision);
          callbacks.push(callback);
          return true;
        },
      },
      (value) => value,
    );
    write(snapshot(1));
    for (const revision of [2, 3, 4]) write(snapshot(revision));
    expect(written).toEqual([1]);
    callbacks.shift()!();
    expect(written).toEqual([1, 4]);
    callbacks.shift()!();
    write(snapshot(5));
    expect(written).toEqual([1, 4, 5]);
  });
});
