import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Server } from '@grpc/grpc-js';
import { http2ServersOf } from './grpc-server.js';

/** How new streams are handed to grpc-js. */
export interface StreamAdmissionOptions {
  /** Milliseconds of stream setup in one slice (each slice hands over at least one stream). */
  readonly sliceMs: number;
  /**
   * Streams that may wait at once, per HTTP/2 server; past it, new streams go to grpc-js at once,
   * as without the queue (a flood then costs the loop what it did, and no more memory).
   */
  readonly maxWaiting?: number;
}

/** What {@link admitStreamsInSlices} put in place. */
export interface StreamAdmission {
  /**
   * For a server that is shutting down: refuses the streams still waiting (REFUSED_STREAM, which
   * tells a client the stream was not processed and may be retried) and hands later ones straight
   * to grpc-js, which refuses them itself.
   */
  close(): void;
}

type StreamListener = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  flags: number,
  rawHeaders: string[],
) => void;

interface Waiting {
  readonly stream: ServerHttp2Stream;
  readonly args: readonly [IncomingHttpHeaders, number, string[]];
}

const ignoreError = (): void => {};
/** The admit functions put in place, so that a second call does not queue a queue. */
const admitFunctions = new WeakSet<object>();

/**
 * Hands a bound grpc-js server's new HTTP/2 streams to grpc-js a slice of the event loop at a time.
 *
 * Node's HTTP/2 session takes every stream whose HEADERS frame came in one socket read in the same
 * turn, and grpc-js sets each one up right there (metadata, interceptors, its call objects, the
 * handler). A client that opens a thousand streams on one connection at once (a host of a thousand
 * nodes, or all of them coming back after a restart) thus held the loop for the whole thousand:
 * 1,250 streams in one read took 64 to 100 ms on a 2-core machine with a handler that did nothing,
 * Node's own part 22 to 44 ms of it. Here the streams past `sliceMs` of setup wait in a queue, in
 * the order they came, and go to grpc-js a slice at a time: the next in the check phase of the turn
 * that queued them, each later one in the next turn's, so that timers (keepalive pings, the
 * caller's own clocks) and reads run between slices. Until a stream is handed over, an error on it
 * is ignored, as grpc-js itself does; one closed while it waited (reset, or its connection gone) is
 * dropped, as grpc-js would only find it cancelled. What waiting means for a stream: its deadline
 * (grpc-timeout) counts from the hand-over; every connection of a server shares the queue, in
 * arrival order; each HTTP/2 server (one per bound address) has its own slices.
 *
 * grpc-js has no option for this, so the 'stream' listeners on its HTTP/2 servers (grpc-js's, and
 * any other) are moved behind the queue: call it once the server is bound; servers bound or
 * injected later are not covered. grpc-js keeps those servers in a private field; if a release no
 * longer does, this throws rather than silently doing nothing.
 */
export function admitStreamsInSlices(
  server: Server,
  { sliceMs, maxWaiting = 8_192 }: StreamAdmissionOptions,
): StreamAdmission {
  const queues: AdmissionQueue[] = [];
  for (const http2Server of http2ServersOf(server)) {
    const listeners = http2Server.listeners('stream') as StreamListener[];
    if (listeners.length === 0 || listeners.some((listener) => admitFunctions.has(listener))) continue;
    const queue = new AdmissionQueue(listeners, sliceMs, maxWaiting);
    admitFunctions.add(queue.admit);
    http2Server.removeAllListeners('stream');
    http2Server.on('stream', queue.admit);
    queues.push(queue);
  }
  return {
    close() {
      for (const queue of queues) queue.close();
    },
  };
}

/** The queue of one HTTP/2 server's streams waiting for grpc-js. */
class AdmissionQueue {
  readonly #waiting: Waiting[] = [];
  #head = 0;
  /** When the current slice began: set by the first stream of a turn or by a drain, until a check phase. */
  #sliceStart: number | undefined;
  #drainScheduled = false;
  #closed = false;

  constructor(
    private readonly listeners: readonly StreamListener[],
    private readonly sliceMs: number,
    private readonly maxWaiting: number,
  ) {}

  readonly admit = (
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags: number,
    rawHeaders: string[],
  ): void => {
    const waiting = this.#waiting.length - this.#head;
    if (this.#closed || waiting >= this.maxWaiting || (waiting === 0 && this.#withinSlice())) {
      this.#handOver(stream, headers, flags, rawHeaders);
      return;
    }
    stream.on('error', ignoreError);
    this.#waiting.push({ stream, args: [headers, flags, rawHeaders] });
    this.#scheduleDrain();
  };

  close(): void {
    this.#closed = true;
    while (this.#head < this.#waiting.length) {
      const { stream } = this.#take();
      if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_REFUSED_STREAM);
    }
    this.#compact();
  }

  /** Whether this turn may still set up a stream; the first call of a turn starts its slice. */
  #withinSlice(): boolean {
    const now = performance.now();
    if (this.#sliceStart === undefined) {
      this.#startSlice(now);
      return true;
    }
    return now - this.#sliceStart < this.sliceMs;
  }

  #startSlice(now: number): void {
    this.#sliceStart = now;
    setImmediate(() => {
      this.#sliceStart = undefined;
    });
  }

  #scheduleDrain(): void {
    if (this.#drainScheduled) return;
    this.#drainScheduled = true;
    // Queued from the poll phase, the next slice runs in this turn's check phase; from a slice, in
    // the next turn's, after its timers and its reads.
    setImmediate(() => this.#drain());
  }

  #drain(): void {
    this.#drainScheduled = false;
    if (this.#closed) return;
    const start = performance.now();
    this.#startSlice(start);
    try {
      while (this.#head < this.#waiting.length) {
        const { stream, args } = this.#take();
        if (!stream.closed && !stream.destroyed) {
          stream.off('error', ignoreError);
          this.#handOver(stream, ...args);
        }
        if (performance.now() - start >= this.sliceMs) break;
      }
    } finally {
      // Even past a listener that threw, the streams behind it still get their turn.
      this.#compact();
      if (this.#head < this.#waiting.length) this.#scheduleDrain();
    }
  }

  #take(): Waiting {
    const next = this.#waiting[this.#head]!;
    this.#waiting[this.#head] = undefined as unknown as Waiting;
    this.#head += 1;
    return next;
  }

  /** Lets the handed-over front of the queue go: all of it once empty, in bulk under a flood. */
  #compact(): void {
    if (this.#head === this.#waiting.length) {
      this.#waiting.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#waiting.length) {
      this.#waiting.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #handOver(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags: number,
    rawHeaders: string[],
  ): void {
    for (const listener of this.listeners) listener(stream, headers, flags, rawHeaders);
  }
}
