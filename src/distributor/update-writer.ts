import { FifoQueue } from '../common/fifo-queue.js';
import type { WritableCall } from './snapshot-writer.js';

/** Messages handed to a stream at once (see UpdateWriter): enough to keep it busy between callbacks. */
export const MESSAGES_IN_STREAM = 8;

/** Options of {@link UpdateWriter}. */
export interface UpdateWriterOptions {
  /** The update with the whole list as it is now, as response bytes. */
  snapshot: () => Buffer;
  /** How many bytes of events may wait for the stream before a snapshot replaces them. */
  backlogLimit: () => number;
}

/**
 * Writes a subscriber's updates to its stream without letting a slow reader grow a queue. Events
 * (shared buffers, the same for every stream) go out in order while the stream takes them; once the
 * events it has not taken yet would pass `backlogLimit` bytes (about what a snapshot costs), the
 * stream is behind: later events are dropped, and once it has taken everything it was given, it
 * gets one snapshot of the list as it is then, and events again after that. Its subscriber sees
 * contiguous revisions, then a snapshot that replaces its list: never a gap.
 *
 * Messages written with {@link send} (acknowledgements, the start of a subscription) are never dropped.
 *
 * At most {@link MESSAGES_IN_STREAM} messages are in the stream's own buffer at once; the rest wait
 * here, in order. A stream destroyed with writes in its buffer fails each of them with an error of
 * its own, stack trace and all: a thousand watchers leaving with hundreds of events each kept the
 * distributor busy for seconds making errors nobody reads. Once a write fails, the stream is over:
 * what waits here is dropped, and nothing more is written. (grpc-js may instead stop calling back
 * once its call is cancelled; the subscription ends on 'cancelled', and what waits here goes with
 * the writer.)
 *
 * A stream about to be ended with a status (a refusal) is ended through {@link end}: what it was
 * given goes out first, in order. grpc-js sends a status once the writes in the stream's own buffer
 * are done, but what waits here would be dropped with it: an acknowledgement among them never told
 * its node that the change was applied.
 */
export class UpdateWriter {
  readonly #call: WritableCall<Buffer>;
  readonly #options: UpdateWriterOptions;
  /** Messages given to this writer that the stream has not taken yet: in its buffer, or waiting here. */
  #pending = 0;
  /** Bytes of events among them. */
  #pendingEventBytes = 0;
  /** Messages in the stream's buffer. */
  #inStream = 0;
  /** Messages waiting for room in the stream's buffer, with their event bytes. */
  readonly #waiting = new FifoQueue<{ message: Buffer; eventBytes: number }>();
  /** Set once a write failed: the stream is gone. */
  #closed = false;
  #behind = false;
  /** What to send instead of a snapshot when a resync finds the stream idle. */
  #restart: (() => Buffer[]) | undefined;
  /** Set by {@link end}: called once the stream has taken every message, or is gone. */
  #onEnd: (() => void) | undefined;

  constructor(call: WritableCall<Buffer>, options: UpdateWriterOptions) {
    this.#call = call;
    this.#options = options;
  }

  /** Whether events are being dropped until the stream catches up and takes a snapshot. */
  get behind(): boolean {
    return this.#behind;
  }

  /** Writes a message that must arrive. */
  send(message: Buffer): void {
    this.#write(message, 0);
  }

  /** Writes an event, unless the stream is behind (see the class). */
  event(event: Buffer): void {
    if (this.#behind) return;
    if (this.#pendingEventBytes + event.length > this.#options.backlogLimit()) {
      this.#fallBehind(undefined);
      return;
    }
    this.#write(event, event.length);
  }

  /**
   * Starts the list over: at once with `restart()` when the stream has taken everything, else with a
   * snapshot once it has.
   */
  resync(restart: () => Buffer[]): void {
    this.#fallBehind(restart);
  }

  /**
   * Takes no more messages, and calls `then` (at most once) when the stream has taken every message
   * it was given (at once if it has), or once a write calls back failed: the moment to end it with a
   * status. (grpc-js 1.14.7 calls back no write of a cancelled call: `then` is then never called,
   * and needs not be, the call being over.) A stream behind gets no snapshot to catch up: it ends.
   * A client that takes nothing holds the wait only as long as the port lets its answers sit unread
   * (UnreadAnswerWatch resets the call, and grpc-js reports it cancelled).
   */
  end(then: () => void): void {
    if (this.#onEnd) return;
    if (this.#closed) {
      then();
      return;
    }
    this.#onEnd = then;
    this.#behind = false;
    this.#restart = undefined;
    if (this.#pending === 0) this.#close();
  }

  #fallBehind(restart: (() => Buffer[]) | undefined): void {
    this.#behind = true;
    this.#restart = restart;
    if (this.#pending === 0) this.#catchUp();
  }

  #catchUp(): void {
    const restart = this.#restart;
    this.#behind = false;
    this.#restart = undefined;
    for (const message of restart ? restart() : [this.#options.snapshot()]) this.send(message);
  }

  #write(message: Buffer, eventBytes: number): void {
    if (this.#closed || this.#onEnd) return;
    this.#pending++;
    this.#pendingEventBytes += eventBytes;
    this.#waiting.push({ message, eventBytes });
    this.#pump();
  }

  #pump(): void {
    // A call ended with a status (a refusal) sends it once its buffer is written: no more after that.
    if (this.#call.writableEnded) this.#close();
    while (this.#inStream < MESSAGES_IN_STREAM && this.#waiting.length > 0 && !this.#closed) {
      const { message, eventBytes } = this.#waiting.shift()!;
      this.#inStream++;
      this.#call.write(message, (error) => this.#taken(eventBytes, error));
    }
  }

  #taken(eventBytes: number, error: Error | null | undefined): void {
    // After a failure the other writes in the stream's buffer fail too: nothing is counted any more.
    if (this.#closed) return;
    this.#inStream--;
    this.#pending--;
    this.#pendingEventBytes -= eventBytes;
    if (error) {
      this.#close();
      return;
    }
    if (this.#onEnd && this.#pending === 0) this.#close();
    else if (this.#behind && this.#pending === 0) this.#catchUp();
    else this.#pump();
  }

  /** The stream is over: what waits here is dropped, and nothing more is written. */
  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiting.clear();
    this.#pending = 0;
    this.#pendingEventBytes = 0;
    this.#onEnd?.();
  }
}
