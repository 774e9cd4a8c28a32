import { constants, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';

/**
 * The default time a call of a one-message method has for its whole request to arrive, as the
 * gateway gives a request's headers.
 */
export const DEFAULT_WHOLE_REQUEST_TIMEOUT_MS = 10_000;

/** A call open on a gRPC port and the method it names (its `:path`), as its connection room saw it. */
export type OpenCall = readonly [stream: ServerHttp2Stream, path: string | undefined];

/**
 * Resets the calls of a gRPC port whose request does not arrive whole. grpc-js runs the handler of a
 * unary or server-streaming method only once its client has half-closed, so a call whose client
 * sends a frame header promising bytes it never sends, or never ends its side, waits with nothing
 * to end it: no deadline runs unless the client gave one (grpc-timeout), --max-calls-in-flight does
 * not count it, and a client could open such calls up to the connection's stream limit on every
 * connection it holds.
 *
 * Every `timeoutMs / 4` each open call is looked at. One whose client has not half-closed, on a
 * method whose client sends one message (or on a method the server does not have), is reset
 * (RST_STREAM CANCEL) once it has been seen so for `timeoutMs`: between `timeoutMs` and a quarter
 * more after it opened. Methods whose client streams (`requestStreams`: reflection, the
 * distributor's Register) are left alone: their calls are bounded by the stream limit per
 * connection. A call whose client half-closed at once (every honest one) is passed over on a look
 * by one property, and never remembered.
 */
export class WholeRequestWatch {
  readonly #calls: () => Iterable<OpenCall>;
  readonly #requestStreams: (path: string) => boolean;
  readonly #timeoutMs: number;
  readonly #onReset: (peerAddress: string | undefined) => void;
  /** Calls seen with their request not whole, and when first seen so. */
  readonly #incomplete = new Map<ServerHttp2Stream, number>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    calls: () => Iterable<OpenCall>,
    /** Whether a method's client streams its request: such calls may stay open. */
    requestStreams: (path: string) => boolean,
    timeoutMs: number,
    /** Told of each call reset, with its client's address. */
    onReset: (peerAddress: string | undefined) => void,
  ) {
    this.#calls = calls;
    this.#requestStreams = requestStreams;
    this.#timeoutMs = timeoutMs;
    this.#onReset = onReset;
    this.#timer = setInterval(() => this.look(), Math.max(timeoutMs / 4, 10));
    this.#timer.unref();
  }

  /** Looks at every open call once (the timer does it; exported for tests). */
  look(now = performance.now()): void {
    for (const [stream, path] of this.#calls()) {
      // grpc-js reads a call's request as it comes: 'end' has been emitted once its client half-closed.
      if (stream.readableEnded || stream.destroyed) continue;
      if (path !== undefined && this.#requestStreams(path)) continue;
      const since = this.#incomplete.get(stream);
      if (since === undefined) {
        this.#incomplete.set(stream, now);
        continue;
      }
      if (now - since < this.#timeoutMs) continue;
      this.#incomplete.delete(stream);
      // Its end may have come and not been read yet (grpc-js pauses a call it cannot take on).
      if (stream.state.remoteClose) continue;
      const socket = stream.session?.socket as Socket | undefined;
      stream.close(constants.NGHTTP2_CANCEL);
      this.#onReset(socket?.remoteAddress);
    }
    for (const stream of this.#incomplete.keys())
      if (stream.closed || stream.destroyed || stream.readableEnded) this.#incomplete.delete(stream);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#incomplete.clear();
  }
}
