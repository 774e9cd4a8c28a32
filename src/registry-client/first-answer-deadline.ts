import { status as Status, type StatusObject } from '@grpc/grpc-js';

/**
 * How long a new stream to the distributor may go without its first answer, by default. The
 * distributor answers at once, but a burst of thousands of registrations (a distributor restart in a
 * large shop) takes seconds to answer in full (8 s at 5,000 nodes in the registry bench): cutting
 * the last ones would only add a retry to the burst.
 */
export const FIRST_ANSWER_TIMEOUT_MS = 30_000;

/**
 * Cuts a new stream to the distributor that has had no answer within `timeoutMs`. A peer that
 * accepts the connection and never speaks HTTP/2 (a hung process, another kind of server at that
 * address) would otherwise hold the stream for ever: grpc-js waits for the server's SETTINGS without
 * a limit, and its owner would neither register nor retry nor say why. The distributor answers a
 * Watch or a registration at once.
 */
export class FirstAnswerDeadline {
  readonly #timer: NodeJS.Timeout;
  #cut = false;

  constructor(
    call: { cancel(): void },
    readonly timeoutMs: number,
    /** What the stream is, for the status: "the Watch call". */
    readonly what: string,
  ) {
    this.#timer = setTimeout(() => {
      this.#cut = true;
      call.cancel();
    }, timeoutMs);
    this.#timer.unref();
  }

  /** The stream answered, or ended: nothing to cut. */
  clear(): void {
    clearTimeout(this.#timer);
  }

  /** The status the stream ended with; when it was cut for its silence, UNAVAILABLE saying so. */
  statusOf(ended: StatusObject): StatusObject {
    this.clear();
    if (!this.#cut) return ended;
    return {
      code: Status.UNAVAILABLE,
      details: `no answer within ${this.timeoutMs} ms to ${this.what}`,
      metadata: ended.metadata,
    };
  }
}
