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

/** A listener that streams snapshots to one peer (see {@link createSnapshotWriter}). */
export interface SnapshotWriter extends SnapshotListener {
  /**
   * Takes no more snapshots, and calls `then` (at most once) when the stream has taken the one in
   * flight and the one that waited, made now (the list as it is when the stream is ended): the
   * moment to end it with a status. grpc-js sends a status only after the writes in its buffer, but
   * the snapshot waiting here would be lost.
   */
  end(then: () => void): void;
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
): SnapshotWriter {
  let inFlight = false;
  /** What is sent once the stream takes the snapshot in flight: made then, unless the writer ended. */
  let next: (() => Message) | undefined;
  let ending = false;
  let onEnd: (() => void) | undefined;
  const ended = (): void => {
    const then = onEnd;
    onEnd = undefined;
    then?.();
  };
  const send = (message: () => Message): void => {
    if (call.writableEnded) {
      ended();
      return;
    }
    inFlight = true;
    call.write(message(), () => {
      inFlight = false;
      const following = next;
      next = undefined;
      if (following) send(following);
      else ended();
    });
  };
  const write = (snapshot: Snapshot): void => {
    if (ending) return;
    const message = () => toMessage(snapshot);
    if (inFlight) next = message;
    else send(message);
  };
  return Object.assign(write, {
    end(then: () => void): void {
      if (ending) return;
      ending = true;
      onEnd = then;
      if (next) {
        const made = next();
        next = () => made;
      }
      if (!inFlight) ended();
    },
  });
}
