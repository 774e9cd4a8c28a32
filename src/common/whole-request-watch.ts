import { constants, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { lookSlackMs } from './look-slack.js';

/**
 * The default time a call of a one-message method has for its whole request to arrive, as the
 * gateway gives a request's headers.
 */
export const DEFAULT_WHOLE_REQUEST_TIMEOUT_MS = 10_000;

/**
 * How many timeouts a call may wait for its whole request while its connection keeps bringing
 * bytes: a large request (up to a service's 1 MiB) from a client on a slow or distant link takes
 * longer than the timeout to arrive (64 KiB a round trip, HTTP/2's default window), and must not
 * be cut off while it comes; a client that only trickles bytes does not keep its calls for ever.
 */
const CONNECTION_PROGRESS_TIMEOUTS = 4;

/**
 * What a call's connection must bring within the timeout for the call to count as still arriving:
 * a DATA frame's worth (16 KiB), as UnreadAnswerWatch counts an answer taken. Keepalive pings and
 * the headers of other calls are far less.
 */
const CONNECTION_PROGRESS_BYTES = 16 * 1024;

/** A call seen with its request not whole: when first seen so, and its connection's bytes read when last seen to move. */
interface Incomplete {
  readonly since: number;
  received: number;
  receivedSince: number;
}

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
 * (RST_STREAM CANCEL) once it has been seen so for `timeoutMs` with its connection bringing less
 * than {@link CONNECTION_PROGRESS_BYTES} in that time (between `timeoutMs` and a quarter more after
 * it opened), or for {@link CONNECTION_PROGRESS_TIMEOUTS} times `timeoutMs` however busy its
 * connection: so a 1 MiB request has 40 s to arrive, at about 210 kbit/s, while it keeps coming
 * (before, 10 s, and one sent steadily at 512 kbit/s was reset with three quarters of it in).
 * The price: a client that trickles 16 KiB every `timeoutMs` on a connection keeps its calls
 * that never arrive whole four times as long, still bounded by the stream limit per connection.
 * Methods whose client streams (`requestStreams`: reflection, the
 * distributor's Register) are left alone while their answer goes on: their calls are bounded by
 * the stream limit per connection; once the server has sent its status, such a call whose client
 * keeps its side open is reset as any other (a raw client ignoring a Register's refusal held it for
 * ever). A call whose client half-closed at once (every honest one) is passed over on a look by one
 * property, and never remembered.
 */
export class WholeRequestWatch {
  readonly #calls: () => Iterable<OpenCall>;
  readonly #requestStreams: (path: string) => boolean;
  readonly #timeoutMs: number;
  readonly #onReset: (peerAddress: string | undefined) => void;
  /** Calls seen with their request not whole. */
  readonly #incomplete = new Map<ServerHttp2Stream, Incomplete>();
  readonly #timer: NodeJS.Timeout;
  /** How far short of the timeout a look may find a call and still act (see lookSlackMs). */
  readonly #slackMs: number;

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
    const lookEveryMs = Math.max(timeoutMs / 4, 10);
    this.#slackMs = lookSlackMs(lookEveryMs);
    this.#timer = setInterval(() => this.look(), lookEveryMs);
    this.#timer.unref();
  }

  /** Looks at every open call once (the timer does it; exported for tests). */
  look(now = performance.now()): void {
    for (const [stream, path] of this.#calls()) {
      // grpc-js reads a call's request as it comes: 'end' has been emitted once its client half-closed.
      if (stream.readableEnded || stream.destroyed) continue;
      // A streaming request may go on while its answer does; once the server's status has gone (a
      // refused Register), a client that keeps its side open holds the call and its memory for nothing.
      if (path !== undefined && this.#requestStreams(path) && !stream.state.localClose) continue;
      const socket = stream.session?.socket as Socket | undefined;
      const received = socket?.bytesRead ?? 0;
      const incomplete = this.#incomplete.get(stream);
      if (incomplete === undefined) {
        this.#incomplete.set(stream, { since: now, received, receivedSince: now });
        continue;
      }
      if (received - incomplete.received >= CONNECTION_PROGRESS_BYTES) {
        incomplete.received = received;
        incomplete.receivedSince = now;
      }
      const waited = now + this.#slackMs;
      if (
        waited - incomplete.receivedSince < this.#timeoutMs &&
        waited - incomplete.since < this.#timeoutMs * CONNECTION_PROGRESS_TIMEOUTS
      ) {
        continue;
      }
      this.#incomplete.delete(stream);
      // Its end may have come and not been read yet (grpc-js pauses a call it cannot take on).
      if (stream.state.remoteClose) continue;
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
