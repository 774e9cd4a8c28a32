import type { Snapshot } from '../gen/distributor.js';
import type { SnapshotListener } from './node-registry.js';

/** The part of a grpc-js server stream a snapshot writer needs. */
interface WritableCall<Message> {
  write(message: Message): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Streams snapshots to one peer without letting a slow reader pile them up: while the stream's
 * buffer is full, only the newest snapshot waits, and it is sent when the stream drains. A peer
 * therefore always ends on the latest list, and revisions it sees only ever grow.
 */
export function createSnapshotWriter<Message>(
  call: WritableCall<Message>,
  toMessage: (snapshot: Snapshot) => Message,
): SnapshotListener {
  let waitingForDrain = false;
  let pending: Snapshot | undefined;
  const write = (snapshot: Snapshot): void => {
    if (waitingForDrain) {
      pending = snapshot;
      return;
    }
    if (call.write(toMessage(snapshot))) return;
    waitingForDrain = true;
    call.once('drain', () => {
      waitingForDrain = false;
      const next = pending;
      pending = undefined;
      if (next) write(next);
    });
  };
  return write;
}
