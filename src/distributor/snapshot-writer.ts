import type { Snapshot } from '../gen/distributor.js';
import type { SnapshotListener } from './node-registry.js';

/** The part of a grpc-js server stream a snapshot writer needs. */
export interface WritableCall<Message> {
  write(message: Message, callback: (error?: Error | null) => void): boolean;
  /**
   * Set once the call is ended (its status set): a write after that destroys a grpc-js stream
   * (ERR_STREAM_WRITE_AFTER_END) before its status is sent, and its client waits for ever.
   */
  readonly writableEnded?: boolean;
}

/**
 * Streams snapshots to one peer with at most one in flight: until the stream has taken the last
 * one, only the newest snapshot waits, and it is sent when the stream is ready. A slow reader
 * therefore costs at most two snapshots of memory, however often the list changes (a stream's own
 * buffer would otherwise hold up to 16 of them, each up to 4 MiB), and a peer always ends on the
 * latest list, with revisions that only grow.
 */
export function createSnapshotWriter<Message>(
  call: WritableCall<Message>,
  toMessage: (snapshot: Snapshot) => Message,
): SnapshotListener {
  let inFlight = false;
  let pending: Snapshot | undefined;
  const write = (snapshot: Snapshot): void => {
    if (call.writableEnded) return;
    if (inFlight) {
      pending = snapshot;
      return;
    }
    inFlight = true;
    call.write(toMessage(snapshot), () => {
      inFlight = false;
      const next = pending;
      pending = undefined;
      if (next) write(next);
    });
  };
  return write;
}
