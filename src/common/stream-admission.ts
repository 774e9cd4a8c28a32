import { constants, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Server } from '@grpc/grpc-js';
import { addressGroupOf, unmappedAddress } from './address-group.js';
import { CountBuckets } from './count-buckets.js';
import { FifoQueue } from './fifo-queue.js';
import { http2ServersOf } from './grpc-server.js';
import { limiterOf } from './log-limiter.js';
import type { Logger } from './logger.js';

/** How new streams are handed to grpc-js. */
export interface StreamAdmissionOptions {
  /** Milliseconds of stream setup in one slice (each slice hands over at least one stream). */
  readonly sliceMs: number;
  /**
   * Streams that may wait on one HTTP/2 server (one bound address) in all (default
   * {@link DEFAULT_MAX_WAITING}): past it, the connection holding the most of the address group
   * holding the most is closed (see {@link admitStreamsInSlices}).
   */
  readonly maxWaiting?: number;
  /** Where a connection closed for its waiting streams is told (rate-limited); none: nowhere. */
  readonly log?: Logger;
  /** Called for each connection closed for its waiting streams (a metric's count). */
  readonly onConnectionClosed?: () => void;
}

/**
 * Streams that may wait in all on one HTTP/2 server by default. A waiting health check costs some
 * 6 to 7 KB of memory (Node's stream, nghttp2's, the headers): 16,384 of them some 110 MB. Twice the
 * registry's 8,192 nodes, so that a whole registry coming back at once (every node opening its
 * Register, on however many connections) fits with room to spare, while a flood cannot hold more.
 */
export const DEFAULT_MAX_WAITING = 16_384;

/** What {@link admitStreamsInSlices} put in place. */
export interface StreamAdmission {
  /**
   * For a server that is shutting down: refuses the streams still waiting (REFUSED_STREAM, which
   * tells a client the stream was not processed and may be retried) and hands later ones straight
   * to grpc-js, which refuses them itself.
   */
  close(): void;
  /** Streams waiting now, on every server covered. */
  waiting(): number;
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

/**
 * Streams of one connection that may wait before its socket is read no more: what it sends meanwhile
 * waits in its TCP buffers, so that the streams a flood opens are set up by Node (some 40 µs each,
 * and as much again to close) only as fast as grpc-js takes them. A socket read of 64 KiB comes on
 * top (some 1,300 streams of a call with empty metadata).
 */
const PAUSE_READING_AT = 256;
/**
 * Streams of a connection past which, once the server's waiting streams are over their bound, a new
 * one of it closes it even if another of its address holds more: twice the stop, which a flood's
 * read of some 2,000 empty calls passes within the read, and a node's Register (its descriptor set
 * a few KiB) over one read's worth past the stop does not.
 */
const CLOSE_ARRIVING_AT = 2 * PAUSE_READING_AT;
/** Streams of a connection whose reads were stopped that may be left waiting when they start again. */
const RESUME_READING_AT = 64;
/**
 * How long a connection's reads stay stopped at most, however many of its streams wait: they start
 * again for a read (its pings answered, a ping of its own acknowledged), and stop at its next
 * stream if as many wait still. A connection of many nodes (a proxy, the registry benchmark's) thus
 * keeps its keepalive (a 5 s timeout) while its streams wait their turn behind a flood's.
 */
const MAX_PAUSE_MS = 2_000;

/** The streams of one connection waiting, in the order they came, and whether its reads are stopped. */
class ConnectionLine {
  readonly waiting = new FifoQueue<Waiting>();
  #paused = false;
  #pauseEnd: NodeJS.Timeout | undefined;

  constructor(readonly session: Http2Session | undefined) {}

  push(waiting: Waiting): void {
    this.waiting.push(waiting);
    if (!this.#paused && this.waiting.length >= PAUSE_READING_AT) this.#setReading(false);
  }

  /**
   * Closes the connection, its waiting streams with it: a GOAWAY (ENHANCE_YOUR_CALM) and the socket
   * destroyed. Node drops the rest of the read under way with it (no more of its streams come), so
   * that a flood's read of 2,000 streams costs what the streams set up so far do.
   */
  close(): void {
    clearTimeout(this.#pauseEnd);
    if (!this.session || this.session.destroyed) return;
    // destroy(undefined, code) sends NO_ERROR (the undefined takes the error's default, a code, over
    // the code given), and destroy(code) makes an error that every stream of the session emits, those
    // grpc-js holds too: the GOAWAY goes first, with the code that tells the client why.
    this.session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    this.session.destroy();
  }

  shift(): Waiting | undefined {
    const next = this.waiting.shift();
    if (this.#paused && this.waiting.length <= RESUME_READING_AT) this.#setReading(true);
    return next;
  }

  /**
   * Stops or starts the reads of the connection's socket. Node's HTTP/2 session reads its socket's
   * handle (a TCP or TLS wrap) itself and refuses pause() on it, but the handle's own readStop and
   * readStart are what libuv reads by; the session starts reads again only after a stop of its own.
   */
  #setReading(reading: boolean): void {
    this.#paused = !reading;
    clearTimeout(this.#pauseEnd);
    this.#pauseEnd = reading ? undefined : setTimeout(() => this.#setReading(true), MAX_PAUSE_MS).unref();
    const handle = (this.session?.socket as unknown as { _handle?: Partial<ReadControl> } | undefined)
      ?._handle;
    if (!handle || this.session?.destroyed) return;
    if (reading) handle.readStart?.();
    else handle.readStop?.();
  }
}

interface ReadControl {
  readStart(): number;
  readStop(): number;
}

/** The connections of one address group with streams waiting, in turn order. */
type GroupLine = Map<Http2Session | undefined, ConnectionLine>;

const ignoreError = (): void => {};
/** The admit functions put in place, so that a second call does not queue a queue. */
const admitFunctions = new WeakSet<object>();

/**
 * Hands a bound grpc-js server's new HTTP/2 streams to grpc-js a slice of the event loop at a time,
 * taking turns between the connections that have streams waiting.
 *
 * Node's HTTP/2 session takes every stream whose HEADERS frame came in one socket read in the same
 * turn, and grpc-js sets each one up right there (metadata, interceptors, its call objects, the
 * handler). A client that opens a thousand streams on one connection at once (a host of a thousand
 * nodes, or all of them coming back after a restart) thus held the loop for the whole thousand:
 * 1,250 streams in one read took 64 to 100 ms on a 2-core machine with a handler that did nothing,
 * Node's own part 22 to 44 ms of it. Here the streams past `sliceMs` of setup wait, and go to
 * grpc-js a slice at a time: the next in the check phase of the turn that queued them, each later
 * one in the next turn's, so that timers (keepalive pings, the caller's own clocks) and reads run
 * between slices. Until a stream is handed over, an error on it is ignored, as grpc-js itself does;
 * one closed while it waited (reset, or its connection gone) is dropped, as grpc-js would only find
 * it cancelled. What waiting means for a stream: its deadline (grpc-timeout) counts from the
 * hand-over; each HTTP/2 server (one per bound address) has its own slices.
 *
 * The streams wait by connection, and the connections by address group (see addressGroupOf): a
 * slice hands over one stream of the next group in turn, of its next connection in turn, each
 * connection's in the order they came. One queue in arrival order let a flood decide who waited:
 * 20 connections opening 100,000 health checks held up a node's Register behind all of them, and
 * the queue, bounded at 8,192 streams, handed those past it to grpc-js at once, in the read that
 * brought them; reads of 20 such connections then held the loop for seconds at a time (admin
 * requests took 5 to 10 s), the nodes' keepalive pings went unanswered for their 5 s timeout, and
 * every node lost its connection, its registration with it. Nothing is handed over past its turn
 * now. How many streams may wait is bounded per server (`maxWaiting`): a connection's reads stop at
 * 256 waiting, but the read under way (some 2,000 empty calls) still comes, and another every 2 s,
 * and every new connection brings its first: 40 connections opening 3,000 health checks each held
 * 73,000 to 119,000 waiting (650 to 800 MB resident) and the loop 3 to 9 s. Past the bound, the
 * flooding connection is closed (see #closeLargest), which frees its streams at once and drops the
 * rest of its read; the check costs one comparison a stream, and which connection holds the most is
 * kept as streams come and go (CountBuckets), so that a close costs no scan of the connections.
 *
 * grpc-js has no option for this, so the 'stream' listeners on its HTTP/2 servers (grpc-js's, and
 * any other) are moved behind the queue: call it once the server is bound; servers bound or
 * injected later are not covered. grpc-js keeps those servers in a private field; if a release no
 * longer does, this throws rather than silently doing nothing.
 */
export function admitStreamsInSlices(server: Server, options: StreamAdmissionOptions): StreamAdmission {
  const queues: AdmissionQueue[] = [];
  for (const http2Server of http2ServersOf(server)) {
    const listeners = http2Server.listeners('stream') as StreamListener[];
    if (listeners.length === 0 || listeners.some((listener) => admitFunctions.has(listener))) continue;
    const queue = new AdmissionQueue(listeners, options);
    admitFunctions.add(queue.admit);
    http2Server.removeAllListeners('stream');
    http2Server.on('stream', queue.admit);
    queues.push(queue);
  }
  return {
    close() {
      for (const queue of queues) queue.close();
    },
    waiting() {
      return queues.reduce((total, queue) => total + queue.waiting, 0);
    },
  };
}

/** The streams of one HTTP/2 server waiting for grpc-js, by address group and connection. */
class AdmissionQueue {
  /** Groups with streams waiting, the next to be served first (one served goes to the back). */
  readonly #groups = new Map<string, GroupLine>();
  /** Streams waiting by group, and by connection within each group: which holds the most, in O(1). */
  readonly #groupCounts = new CountBuckets<string>();
  readonly #lineCounts = new Map<string, CountBuckets<ConnectionLine>>();
  #waiting = 0;
  /** When the current slice began: set by the first stream of a turn or by a drain, until a check phase. */
  #sliceStart: number | undefined;
  #drainScheduled = false;
  #closed = false;

  readonly #sliceMs: number;
  readonly #maxWaiting: number;
  readonly #log: Logger | undefined;
  readonly #onConnectionClosed: (() => void) | undefined;

  constructor(
    private readonly listeners: readonly StreamListener[],
    options: StreamAdmissionOptions,
  ) {
    this.#sliceMs = options.sliceMs;
    this.#maxWaiting = options.maxWaiting ?? DEFAULT_MAX_WAITING;
    this.#log = options.log;
    this.#onConnectionClosed = options.onConnectionClosed;
  }

  readonly admit = (
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    flags: number,
    rawHeaders: string[],
  ): void => {
    if (this.#closed || (this.#waiting === 0 && this.#withinSlice())) {
      this.#handOver(stream, headers, flags, rawHeaders);
      return;
    }
    stream.on('error', ignoreError);
    const session = stream.session;
    const group = groupOf(session);
    let groupLine = this.#groups.get(group);
    if (!groupLine) {
      groupLine = new Map();
      this.#groups.set(group, groupLine);
    }
    let line = groupLine.get(session);
    if (!line) {
      line = new ConnectionLine(session);
      groupLine.set(session, line);
    }
    line.push({ stream, args: [headers, flags, rawHeaders] });
    this.#waiting += 1;
    this.#count(group, line, 1);
    if (this.#waiting > this.#maxWaiting) this.#closeLargest(line);
    this.#scheduleDrain();
  };

  /**
   * Closes a connection of the address group holding the most waiting streams, and forgets its
   * streams: one flooding connection's thousands at once, found without a scan (CountBuckets),
   * which happens only past the bound. By group first, so that a flood spread over many connections
   * from one address (each holding fewer than a busy proxy's one) closes its own. Within the group,
   * the connection whose stream just came if it holds more than CLOSE_ARRIVING_AT (its reads were
   * stopped at 256 and a dense read of streams keeps coming: a flood's, and closing it drops the
   * rest of that read, some 2,000 streams Node would set up first, which cost the loop 8 s where
   * 40 connections' first reads came together); else the group's connection holding the most, so
   * that a connection of many nodes is closed only if it holds more than every other of its address.
   */
  #closeLargest(arriving: ConnectionLine): void {
    const largestGroup = this.#groupCounts.firstOfMost();
    if (largestGroup === undefined) return;
    const groupLine = this.#groups.get(largestGroup)!;
    const lineCounts = this.#lineCounts.get(largestGroup)!;
    const largest =
      arriving.session &&
      groupLine.get(arriving.session) === arriving &&
      arriving.waiting.length > CLOSE_ARRIVING_AT
        ? arriving
        : lineCounts.firstOfMost();
    if (!largest) return;
    const { session } = largest;
    const closed = largest.waiting.length;
    // Read before the close, which takes the socket.
    const peer = unmappedAddress(session?.socket?.remoteAddress ?? '');
    const live = session !== undefined && !session.destroyed;
    groupLine.delete(session);
    if (groupLine.size === 0) this.#groups.delete(largestGroup);
    this.#count(largestGroup, largest, -closed);
    this.#waiting -= closed;
    largest.close();
    // Streams of a connection gone already (they wait only to be dropped) are forgotten, not counted.
    if (!live) return;
    this.#onConnectionClosed?.();
    if (this.#log) {
      limiterOf(this.#log).warn(
        `streams-waiting-closed ${largestGroup}`,
        { event: 'streams-waiting-closed', peer, waiting: closed, maxWaiting: this.#maxWaiting },
        `closed a connection from ${peer} holding ${closed} of the ${this.#maxWaiting} streams that may wait to be set up`,
      );
    }
  }

  get waiting(): number {
    return this.#waiting;
  }

  close(): void {
    this.#closed = true;
    for (let next = this.#take(); next; next = this.#take()) {
      const { stream } = next;
      if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_REFUSED_STREAM);
    }
  }

  /** Whether this turn may still set up a stream; the first call of a turn starts its slice. */
  #withinSlice(): boolean {
    const now = performance.now();
    if (this.#sliceStart === undefined) {
      this.#startSlice(now);
      return true;
    }
    return now - this.#sliceStart < this.#sliceMs;
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
      for (let next = this.#take(); next; next = this.#take()) {
        const { stream, args } = next;
        if (!stream.closed && !stream.destroyed) {
          stream.off('error', ignoreError);
          this.#handOver(stream, ...args);
        }
        if (performance.now() - start >= this.#sliceMs) break;
      }
    } finally {
      // Even past a listener that threw, the streams behind it still get their turn.
      if (this.#waiting > 0) this.#scheduleDrain();
    }
  }

  /**
   * The next stream to hand over: the oldest of the next connection in turn of the next group in
   * turn; each goes to the back of its line (its group's, the queue's) while it has more waiting.
   */
  #take(): Waiting | undefined {
    const first = this.#groups.entries().next();
    if (first.done) return undefined;
    const [group, groupLine] = first.value;
    const [session, line] = groupLine.entries().next().value!;
    const next = line.shift()!;
    this.#waiting -= 1;
    this.#count(group, line, -1);
    groupLine.delete(session);
    if (line.waiting.length > 0) groupLine.set(session, line);
    this.#groups.delete(group);
    if (groupLine.size > 0) this.#groups.set(group, groupLine);
    return next;
  }

  /** Adds `delta` to the streams waiting of a group and of its connection `line`. */
  #count(group: string, line: ConnectionLine, delta: number): void {
    this.#groupCounts.add(group, delta);
    let lineCounts = this.#lineCounts.get(group);
    if (!lineCounts) {
      lineCounts = new CountBuckets();
      this.#lineCounts.set(group, lineCounts);
    }
    lineCounts.add(line, delta);
    if (lineCounts.size === 0) this.#lineCounts.delete(group);
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

/** The address groups of the sessions seen, read once each. */
const groupsOf = new WeakMap<Http2Session, string>();

/** The address group a session's peer belongs to; '' when it has none (or no session is left). */
function groupOf(session: Http2Session | undefined): string {
  if (!session) return '';
  let group = groupsOf.get(session);
  if (group === undefined) {
    const address = session.socket?.remoteAddress;
    group = address === undefined ? '' : addressGroupOf(address);
    groupsOf.set(session, group);
  }
  return group;
}
