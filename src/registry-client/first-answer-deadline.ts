import { status as Status, type StatusObject } from '@grpc/grpc-js';
import type { DistributorConnection } from './distributor-connection.js';

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
 *
 * Sooner, after the connection's `connectTimeoutMs`, a stream still waiting for its channel to
 * connect is cut too, and the channel replaced (see DistributorConnection): its owner's retry goes
 * out on a new connection attempt rather than waiting on the hung one.
 */
export class FirstAnswerDeadline {
  readonly #connectTimer: NodeJS.Timeout | undefined;
  readonly #answerTimer: NodeJS.Timeout;
  #cut: 'connect' | 'answer' | undefined;

  constructor(
    call: { cancel(): void },
    readonly timeoutMs: number,
    /** What the stream is, for the status: "the Watch call". */
    readonly what: string,
    readonly connection?: DistributorConnection,
  ) {
    const cut = (why: 'connect' | 'answer'): void => {
      this.#cut = why;
      this.clear();
      call.cancel();
    };
    if (connection && connection.connectTimeoutMs < timeoutMs) {
      this.#connectTimer = setTimeout(() => {
        if (connection.replaceIfConnecting()) cut('connect');
      }, connection.connectTimeoutMs);
      this.#connectTimer.unref();
    }
    this.#answerTimer = setTimeout(() => cut('answer'), timeoutMs);
    this.#answerTimer.unref();
  }

  /** The stream answered, or ended: nothing to cut. */
  clear(): void {
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#answerTimer);
  }

  /** The status the stream ended with; when it was cut, UNAVAILABLE saying why. */
  statusOf(ended: StatusObject): StatusObject {
    this.clear();
    if (this.#cut === undefined) return ended;
    const details =
      this.#cut === 'connect'
        ? `no connection to the distributor within ${this.connection?.connectTimeoutMs} ms; trying a new one`
        : `no answer within ${this.timeoutMs} ms to ${this.what}`;
    return { code: Status.UNAVAILABLE, details, metadata: ended.metadata };
  }
}
