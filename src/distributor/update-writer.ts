import type { WritableCall } from './snapshot-writer.js';

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
 */
export class UpdateWriter {
  readonly #call: WritableCall<Buffer>;
  readonly #options: UpdateWriterOptions;
  /** Messages handed to the stream that it has not taken yet. */
  #pending = 0;
  /** Bytes of events among them. */
  #pendingEventBytes = 0;
  #behind = false;
  /** What to send instead of a snapshot when a resync finds the stream idle. */
  #restart: (() => Buffer[]) | undefined;

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
    this.#pending++;
    this.#pendingEventBytes += eventBytes;
    this.#call.write(message, () => {
      this.#pending--;
      this.#pendingEventBytes -= eventBytes;
      if (this.#behind && this.#pending === 0) this.#catchUp();
    });
  }
}
