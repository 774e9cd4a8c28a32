import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Server } from '@grpc/grpc-js';

/** How much of an event-loop turn new streams may take before the rest wait for the next turn. */
export interface StreamAdmissionOptions {
  /** Milliseconds of stream setup per turn (at least one stream is admitted each turn). */
  readonly sliceMs: number;
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
 * caller's own clocks) and reads run between slices. Until a stream is handed over, an error on it is
 * ignored, as grpc-js itself does; one closed while it waited (reset, or its connection gone) is
 * dropped, as grpc-js would only find it cancelled.
 *
 * grpc-js has no option for this, so the 'stream' listeners it put on its HTTP/2 servers are moved
 * behind the queue: call it once the server is bound (it covers the servers bound so far). grpc-js
 * keeps those servers in a private field; if a release no longer does, this throws rather than
 * silently doing nothing.
 */
export function admitStreamsInSlices(server: Server, { sliceMs }: StreamAdmissionOptions): void {
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map)) {
    throw new Error('admitStreamsInSlices: this grpc-js keeps its HTTP/2 servers elsewhere');
  }
  for (const http2Server of http2Servers.keys() as IterableIterator<Http2Server>) {
    const listeners = http2Server.listeners('stream') as StreamListener[];
    if (listeners.length === 0) continue;
    http2Server.removeAllListeners('stream');
    http2Server.on('stream', new StreamAdmission(listeners, sliceMs).admit);
  }
}

/** The queue of one HTTP/2 server's streams waiting for grpc-js. */
class StreamAdmission {
  readonly #waiting: Waiting[] = [];
  #head = 0;
  /** When this turn's slice began; undefined once the turn is over. */
  #sliceStart: number | undefined;
  #drainScheduled = false;

  constructor(
    private readonly listeners: readonly StreamListener[],
    private readonly sliceMs: number,
  ) {}

  readonly admit = (
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags: number,
    rawHeaders: string[],
  ): void => {
    if (this.#head === this.#waiting.length && this.#withinSlice()) {
      this.#handOver(stream, headers, flags, rawHeaders);
      return;
    }
    stream.on('error', ignoreError);
    this.#waiting.push({ stream, args: [headers, flags, rawHeaders] });
    this.#scheduleDrain();
  };

  /** Whether this turn may still set up a stream; the first call of a turn starts its slice. */
  #withinSlice(): boolean {
    const now = performance.now();
    if (this.#sliceStart === undefined) {
      this.#sliceStart = now;
      // The check phase ends the turn in which the slice began.
      setImmediate(() => {
        this.#sliceStart = undefined;
      });
      return true;
    }
    return now - this.#sliceStart < this.sliceMs;
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
    const start = performance.now();
    this.#sliceStart = start;
    setImmediate(() => {
      this.#sliceStart = undefined;
    });
    while (this.#head < this.#waiting.length) {
      const { stream, args } = this.#waiting[this.#head]!;
      this.#waiting[this.#head] = undefined as unknown as Waiting;
      this.#head += 1;
      if (!stream.closed && !stream.destroyed) {
        stream.off('error', ignoreError);
        this.#handOver(stream, ...args);
      }
      if (performance.now() - start >= this.sliceMs) break;
    }
    if (this.#head === this.#waiting.length) {
      this.#waiting.length = 0;
      this.#head = 0;
    } else {
      // Under a flood that never lets the queue empty, the handed-over front is let go in bulk.
      if (this.#head >= 1024 && this.#head * 2 >= this.#waiting.length) {
        this.#waiting.splice(0, this.#head);
        this.#head = 0;
      }
      this.#scheduleDrain();
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
