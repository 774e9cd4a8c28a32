import { constants, type ServerHttp2Stream } from 'node:http2';
import type { Writable } from 'node:stream';

/** A stream with bytes waiting: how many of its writes had gone when it was last seen to progress, and when. */
interface Waiting {
  completed: number;
  since: number;
}

const COMPLETED_WRITES = Symbol('shop.completedWrites');

interface CountsWrites {
  [COMPLETED_WRITES]?: { count: number };
}

/**
 * How many of a stream's writes have gone since this was first asked of it: its `_write` and
 * `_writev`, which Node's Writable calls for every write it passes on, are wrapped to count their
 * completions. Asked only of a stream found with bytes waiting, so that a call whose client takes
 * its answer at once costs nothing.
 */
function completedWrites(stream: Writable & CountsWrites): { count: number } {
  const known = stream[COMPLETED_WRITES];
  if (known) return known;
  const counter = { count: 0 };
  stream[COMPLETED_WRITES] = counter;
  const write = stream._write;
  const writev = stream._writev;
  stream._write = function (this: Writable, chunk, encoding, callback) {
    write.call(this, chunk, encoding, (error?: Error | null) => {
      counter.count++;
      callback(error);
    });
  };
  if (writev) {
    stream._writev = function (this: Writable, chunks, callback) {
      writev.call(this, chunks, (error?: Error | null) => {
        counter.count++;
        callback(error);
      });
    };
  }
  return counter;
}

/** The default of `--unread-answer-timeout-ms` on a gRPC port, as the gateway's REST one. */
export const DEFAULT_UNREAD_ANSWER_TIMEOUT_MS = 30_000;

/**
 * Resets the calls of a gRPC port whose client takes nothing of what they answer. grpc-js keeps an
 * answer until the client's HTTP/2 flow-control window takes it, and ends a call only once its
 * answer and status are out: a client that opens calls with a window of 0 (or stops reading)
 * holds each answer, and each call's place among --max-calls-in-flight, for as long as its
 * connection lives, which answering pings makes for ever. A few hundred such calls shut a service
 * to everyone, and a thousand Watch streams that read nothing held a snapshot each in the
 * distributor.
 *
 * Every `timeoutMs / 4` (at most 5 s) each open call is looked at: one with bytes waiting whose
 * writes have not gone on since it was first seen waiting, or since one last went, has stalled;
 * once it has stalled for `timeoutMs`, it is reset (RST_STREAM CANCEL), which frees what it held,
 * and grpc-js sees the call cancelled. A write goes when the whole of it has gone, so a client must
 * take the largest answer (a 1 MiB page, a registry snapshot of up to 4 MiB) within the timeout;
 * a stream that takes message after message, however slowly, is not stalled.
 */
export class UnreadAnswerWatch {
  readonly #calls: () => Iterable<ServerHttp2Stream>;
  readonly #timeoutMs: number;
  readonly #onReset: () => void;
  readonly #waiting = new Map<ServerHttp2Stream, Waiting>();
  readonly #timer: NodeJS.Timeout;

  constructor(calls: () => Iterable<ServerHttp2Stream>, timeoutMs: number, onReset: () => void) {
    this.#calls = calls;
    this.#timeoutMs = timeoutMs;
    this.#onReset = onReset;
    this.#timer = setInterval(() => this.look(), Math.min(Math.max(timeoutMs / 4, 10), 5_000));
    this.#timer.unref();
  }

  /** Looks at every open call once (the timer does it; exported for tests). */
  look(now = performance.now()): void {
    for (const stream of this.#calls()) {
      if (stream.writableLength === 0 || stream.destroyed) {
        this.#waiting.delete(stream);
        continue;
      }
      const completed = completedWrites(stream).count;
      const waiting = this.#waiting.get(stream);
      if (!waiting || waiting.completed !== completed) {
        this.#waiting.set(stream, { completed, since: now });
      } else if (now - waiting.since >= this.#timeoutMs) {
        this.#waiting.delete(stream);
        stream.close(constants.NGHTTP2_CANCEL);
        this.#onReset();
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
