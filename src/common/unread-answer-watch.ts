import { constants, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { lookSlackMs } from './look-slack.js';

/**
 * A stream with bytes waiting: its writes' progress and its connection's when last seen to move,
 * and when each was.
 */
interface Waiting {
  writes: number;
  writesSince: number;
  passedOn: number;
  passedOnSince: number;
}

const WRITES_MOVED = Symbol('shop.writesMoved');

interface CountsWrites {
  [WRITES_MOVED]?: { count: number };
}

/**
 * A count that moves whenever one of a stream's writes starts or ends, from when this was first
 * asked of it: its `_write` and `_writev`, which Node's Writable calls for every write it passes
 * on, are wrapped. A start counts because Writable starts a write only once the one before has
 * ended, and the write already under way when the wrap is made ends unseen. Asked only of a stream
 * found with bytes waiting, so that a call whose client takes its answer at once costs nothing.
 */
export function writesMoved(stream: Writable & CountsWrites): { count: number } {
  const known = stream[WRITES_MOVED];
  if (known) return known;
  const counter = { count: 0 };
  stream[WRITES_MOVED] = counter;
  const write = stream._write;
  const writev = stream._writev;
  stream._write = function (this: Writable, chunk, encoding, callback) {
    counter.count++;
    write.call(this, chunk, encoding, (error?: Error | null) => {
      counter.count++;
      callback(error);
    });
  };
  if (writev) {
    stream._writev = function (this: Writable, chunks, callback) {
      counter.count++;
      writev.call(this, chunks, (error?: Error | null) => {
        counter.count++;
        callback(error);
      });
    };
  }
  return counter;
}

/**
 * What a connection's socket has been handed to send, less what its JS buffer still holds: HTTP/2
 * writes reach libuv directly, so this counts bytes still queued there too. It only needs to move
 * as the client takes answers (flow control holds the rest back), not to be exact.
 */
function passedOn(socket: Socket | undefined): number {
  return socket ? socket.bytesWritten - socket.writableLength : 0;
}

/** The default of `--unread-answer-timeout-ms` on a gRPC port, as the gateway's REST one. */
export const DEFAULT_UNREAD_ANSWER_TIMEOUT_MS = 30_000;

/**
 * How many timeouts a stream whose own writes stand still may live while its connection moves:
 * calls that share a slow connection take their answers a frame of each at a time, so none of
 * their writes may end within the timeout while all of them progress; a client that keeps its
 * connection busy (reading one stream, pinging) does not keep its other stalled calls for ever.
 */
const CONNECTION_PROGRESS_TIMEOUTS = 4;

/**
 * What a connection must pass on to count as taking answers: a DATA frame's worth (16 KiB, HTTP/2's
 * default frame size). The server's own keepalive pings (every 10 s, within any timeout), the
 * headers and resets of other calls, and the acknowledgements of a client's pings are far less.
 */
const CONNECTION_PROGRESS_BYTES = 16 * 1024;

/**
 * Resets the calls of a gRPC port whose client takes nothing of what they answer. grpc-js keeps an
 * answer until the client's HTTP/2 flow-control window takes it, and ends a call only once its
 * answer and status are out: a client that opens calls with a window of 0 (or stops reading)
 * holds each answer, and each call's place among --max-calls-in-flight, for as long as its
 * connection lives, which answering pings makes for ever. A few hundred such calls shut a service
 * to everyone, and a thousand Watch streams that read nothing held a snapshot each in the
 * distributor.
 *
 * Every `timeoutMs / 4` (at most 5 s) each open call is looked at. A call with bytes waiting is
 * reset (RST_STREAM CANCEL), which frees what it held and tells grpc-js the call was cancelled,
 * once neither a write of its own has started or ended nor its connection's socket has passed on
 * {@link CONNECTION_PROGRESS_BYTES} for `timeoutMs`, or once no write of its own has for
 * {@link CONNECTION_PROGRESS_TIMEOUTS} times that. So a client must take a whole answer within the
 * timeout, or, when several calls share its connection, take 16 KiB on the connection within it
 * and each answer within four; the clock starts when a look first finds the call waiting, so a
 * reset comes up to a quarter of the timeout (5 s) after that.
 */
export class UnreadAnswerWatch {
  readonly #calls: () => Iterable<ServerHttp2Stream>;
  readonly #timeoutMs: number;
  readonly #onReset: (peerAddress: string | undefined, stalledMs: number) => void;
  readonly #waiting = new Map<ServerHttp2Stream, Waiting>();
  readonly #timer: NodeJS.Timeout;
  /** How far short of the timeout a look may find a call and still act (see lookSlackMs). */
  readonly #slackMs: number;

  constructor(
    calls: () => Iterable<ServerHttp2Stream>,
    timeoutMs: number,
    /** Told of each call reset: its client's address, and how long its answer went nowhere. */
    onReset: (peerAddress: string | undefined, stalledMs: number) => void,
  ) {
    this.#calls = calls;
    this.#timeoutMs = timeoutMs;
    this.#onReset = onReset;
    const lookEveryMs = Math.min(Math.max(timeoutMs / 4, 10), 5_000);
    this.#slackMs = lookSlackMs(lookEveryMs);
    this.#timer = setInterval(() => this.look(), lookEveryMs);
    this.#timer.unref();
  }

  /** Looks at every open call once (the timer does it; exported for tests). */
  look(now = performance.now()): void {
    for (const stream of this.#calls()) {
      if (stream.writableLength === 0 || stream.destroyed) {
        this.#waiting.delete(stream);
        continue;
      }
      const writes = writesMoved(stream).count;
      const socket = stream.session?.socket as Socket | undefined;
      const connection = passedOn(socket);
      const waiting = this.#waiting.get(stream);
      if (!waiting) {
        this.#waiting.set(stream, { writes, writesSince: now, passedOn: connection, passedOnSince: now });
        continue;
      }
      if (waiting.writes !== writes) {
        waiting.writes = writes;
        waiting.writesSince = now;
        waiting.passedOn = connection;
        waiting.passedOnSince = now;
      } else if (connection - waiting.passedOn >= CONNECTION_PROGRESS_BYTES) {
        waiting.passedOn = connection;
        waiting.passedOnSince = now;
      }
      const cap = this.#timeoutMs * CONNECTION_PROGRESS_TIMEOUTS;
      const waited = now + this.#slackMs;
      const stalledMs =
        waited - waiting.writesSince >= cap
          ? cap
          : waited - waiting.passedOnSince >= this.#timeoutMs
            ? this.#timeoutMs
            : undefined;
      if (stalledMs !== undefined) {
        this.#waiting.delete(stream);
        stream.close(constants.NGHTTP2_CANCEL);
        this.#onReset(socket?.remoteAddress, stalledMs);
      }
    }
    // Calls that closed since the last look.
    for (const stream of this.#waiting.keys())
      if (stream.closed || stream.destroyed) this.#waiting.delete(stream);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#waiting.clear();
  }
}
