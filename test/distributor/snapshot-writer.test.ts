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

describe('createSnapshotWriter: a call ended with a status', () => {
  it('writes nothing once the call is ended, not even the snapshot that waited', () => {
    const written: number[] = [];
    const callbacks: Array<() => void> = [];
    const call = {
      writableEnded: false,
      write(message: Snapshot, callback: () => void) {
        written.push(message.revision);
        callbacks.push(callback);
        return true;
      },
    };
    const write = createSnapshotWriter(call, (value) => value);
    write(snapshot(1));
    write(snapshot(2));
    // A refusal ends the call: a grpc-js stream written after that is destroyed before its status goes.
    call.writableEnded = true;
    callbacks.shift()!();
    write(snapshot(3));
    expect(written).toEqual([1]);
  });
});

describe('createSnapshotWriter: ended before a status', () => {
  it('sends the snapshot in flight, then the one that waited as the list is at the end, then says so', () => {
    const written: string[] = [];
    const callbacks: Array<() => void> = [];
    let list = 'list@2';
    const write = createSnapshotWriter(
      {
        write(message: string, callback: () => void) {
          written.push(message);
          callbacks.push(callback);
          return true;
        },
      },
      (value) => (value.revision === 1 ? 'list@1' : list),
    );
    write(snapshot(1));
    write(snapshot(2));
    let ended = 0;
    write.end(() => ended++);
    // The list that waited is made when the writer ends (before a refused node leaves), not later.
    list = 'list@3 without it';
    write(snapshot(3));
    callbacks.shift()!();
    expect(written).toEqual(['list@1', 'list@2']);
    expect(ended).toBe(0);
    callbacks.shift()!();
    expect(ended).toBe(1);
    expect(callbacks).toHaveLength(0);
  });

  it('says so at once when nothing is in flight', () => {
    const write = createSnapshotWriter({ write: () => true }, (value) => value);
    let ended = false;
    write.end(() => {
      ended = true;
    });
    expect(ended).toBe(true);
  });
});
