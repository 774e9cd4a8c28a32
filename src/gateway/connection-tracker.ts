import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';

/**
 * Requests of one connection worked on at once (their upstream calls made, their answers waiting to
 * go): the rest of what a client pipelines waits its turn, so that a client that reads its answers
 * slowly holds two in the gateway, not up to `--max-pipelined` of them.
 */
export const WORKED_AT_ONCE = 2;

/** Methods that change nothing (RFC 9110, section 9.2.1): only these are worked on beside another. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** One connection's count of requests in flight; its owner calls requestEnded() once per request. */
export class Connection {
  /** Requests received on it and not yet answered or abandoned. */
  inFlight = 0;
  /** Requests received on it: the latest one's turn (see mayStart). */
  started = 0;
  /** The turn of the latest request handed to a service: a later answer than this one's may close. */
  lastDispatched = 0;
  /**
   * The turns of the requests received with a method that is not safe (POST, DELETE, ...) and maybe
   * still in flight, in order: such a request is worked on alone (see mayStart).
   */
  readonly #unsafeTurns: number[] = [];
  /** Answers queued behind others, not yet on the socket (see track). */
  readonly #queued = new Set<ServerResponse>();
  /** Requests received and waiting for their turn (see waitTurn), the earliest turn first. */
  readonly #waiting: { turn: number; work: () => void }[] = [];
  /** Closes a connection that has not sent its first request in time. */
  firstRequestTimer: NodeJS.Timeout | undefined;
  /** The latest request received on it: a parser failure before it is complete is in its body. */
  latestRequest: IncomingMessage | undefined;
  /**
   * The request whose body is being read, its id (for the log line about a body the parser
   * refuses), and how to stop reading it.
   */
  readingBody: { request: IncomingMessage; requestId: string | undefined; stop: AbortController } | undefined;
  /** Since when (ms) the socket has held more than it passes on, as first seen; undefined once it moves. */
  unreadSince: number | undefined;
  /** The bytes whose writes had completed when the socket was last seen holding too much. */
  bytesPassedOn = 0;
  /** Closed because its client took nothing of its answers for too long (see ConnectionTracker). */
  closedUnread = false;
  /** To close once the answers under way have gone (see closeAfterAnswers): its answers say so. */
  closing = false;
  /**
   * The answers of the requests received, the latest `inFlight` of them those still under way
   * (requests end in the order they came): what closeAfterAnswers tells to close the connection.
   */
  readonly #answers: ServerResponse[] = [];
  #whenIdle: (() => void) | undefined;
  /** The requests that may still be in flight when #whenIdle runs (see whenIdle). */
  #whenIdleLeft = 0;

  constructor(
    readonly socket: Socket,
    /** Opened past the limit: its requests are answered 503 and it is closed. */
    readonly refused: boolean,
    readonly onIdle: (connection: Connection) => void,
  ) {}

  requestEnded(): void {
    this.inFlight--;
    // Node answers a connection's requests in order: the earliest ones are those that ended.
    const ended = this.started - this.inFlight;
    while (this.#unsafeTurns.length > 0 && this.#unsafeTurns[0]! <= ended) this.#unsafeTurns.shift();
    while (this.#waiting.length > 0 && this.mayStart(this.#waiting[0]!.turn)) {
      this.#waiting.shift()!.work();
    }
    if (this.inFlight === 0) {
      this.#answers.length = 0;
      // Its last answer said close (Node ends the socket after it), or had begun before it was told:
      // nothing is left to send either way.
      if (this.closing) this.socket.end();
      else this.onIdle(this);
    }
    if (this.#whenIdle === undefined || this.inFlight > this.#whenIdleLeft) return;
    const whenIdle = this.#whenIdle;
    this.#whenIdle = undefined;
    whenIdle();
  }

  /** Counts a request received on this connection, to be answered by `response`; its turn is the new `started`. */
  received(method: string | undefined, response: ServerResponse): void {
    this.inFlight++;
    this.started++;
    if (!SAFE_METHODS.has(method ?? '')) this.#unsafeTurns.push(this.started);
    if (this.closing) closeAfter(response);
    this.#answers.push(response);
    // A client that keeps requests in flight never lets the list empty: the ended ones go here.
    if (this.#answers.length > this.inFlight) this.#answers.splice(0, this.#answers.length - this.inFlight);
  }

  /**
   * Closes this connection without cutting an answer under way, as an HTTP server that stops
   * keeping a connection alive does: with no request in flight, at once (a client that sends one
   * meanwhile finds the connection closed, as at the end of any keep-alive time, and sends it
   * again on a new one); else each answer whose headers have not gone yet, and each answer to a
   * request that comes meanwhile, says `Connection: close`, after which Node ends the connection
   * (an answer already under way ends first: the connection is ended once no request is in
   * flight). Requests pipelined behind an answer that closes get none: the connection closing tells
   * their client they were not worked on (RFC 9112, section 9.6). After `graceMs` it is destroyed
   * all the same, whatever is under way: a client that reads its answers slowly keeps it no longer.
   */
  closeAfterAnswers(graceMs: number): void {
    if (this.closing) return;
    this.closing = true;
    if (this.inFlight === 0) {
      this.socket.destroy();
      return;
    }
    for (const response of this.#answers.slice(-this.inFlight)) closeAfter(response);
    const grace = setTimeout(() => this.socket.destroy(), graceMs);
    grace.unref();
    this.socket.once('close', () => clearTimeout(grace));
  }

  /**
   * Whether the request that was the `turn`th on this connection (its `started` when it came) may
   * be worked on now: fewer than `atOnce` ({@link WORKED_AT_ONCE}) requests before it are still in
   * flight, and, unless none is, neither it nor any of them has a method that is not safe. RFC 9112
   * (section 9.3.2) lets a server work on pipelined requests in parallel only if they are all safe:
   * a GET sent behind a POST must see what the POST wrote (worked on beside it, it did not, every
   * time), and a POST must not run before the answers ahead of it are known.
   */
  mayStart(turn: number, atOnce = WORKED_AT_ONCE): boolean {
    const ahead = this.#ahead(turn);
    if (ahead <= 0) return true;
    // The unsafe turns kept are those in flight: one up to `turn` is this request or one ahead of it.
    if (this.#unsafeTurns.length > 0 && this.#unsafeTurns[0]! <= turn) return false;
    return ahead < atOnce;
  }

  /**
   * Runs `work`, for the `turn`th request, once enough requests before it have ended (answered to
   * the kernel, or abandoned, as when the connection closes: `work` checks its client is there).
   */
  waitTurn(turn: number, work: () => void): void {
    // In turn order, which is not the order requests get here: one with a body comes after the
    // requests behind it that Node parsed while the body was read.
    let index = this.#waiting.length;
    while (index > 0 && this.#waiting[index - 1]!.turn > turn) index--;
    this.#waiting.splice(index, 0, { turn, work });
  }

  /**
   * The requests before the `turn`th still in flight. Node answers a connection's requests in the
   * order they came, so the ones that ended are the earliest.
   */
  #ahead(turn: number): number {
    return turn - 1 - (this.started - this.inFlight);
  }

  /**
   * Follows an answer queued behind others on this connection (pipelining) until it reaches the
   * socket. Node gives such an answer no 'close' if the socket closes first (it drops it), so
   * {@link socketClosed} emits one: its 'close' listeners run as any answer's do.
   */
  track(response: ServerResponse): void {
    if (response.socket) return;
    this.#queued.add(response);
    response.once('socket', () => this.#queued.delete(response));
  }

  /** The socket has closed: the answers still queued on it close too (see track). */
  socketClosed(): void {
    const queued = [...this.#queued];
    this.#queued.clear();
    for (const response of queued) response.emit('close');
  }

  /**
   * Runs `action` once no request is in flight on this connection, now or when the last one ends;
   * or once no more than `left` are, those being requests that will never end by themselves (a
   * request whose client left in the middle of it, owed no answer).
   */
  whenIdle(action: () => void, left = 0): void {
    if (this.inFlight <= left) action();
    else {
      this.#whenIdle = action;
      this.#whenIdleLeft = left;
    }
  }
}

/** Options of {@link ConnectionTracker}. */
export interface ConnectionTrackerOptions {
  /** How long a new connection may stay silent before its first request (then it is closed). */
  firstRequestTimeoutMs: number;
  /**
   * Most connections open at once (Infinity: no limit). A few are kept for refusals (see
   * {@link refusalRoom}); past the rest, the connection idle the longest is closed to make room.
   */
  maxConnections?: number;
  /** Told of every connection closed to make room, or refused. */
  onLimit?: (action: 'evicted' | 'refused') => void;
  /**
   * How long a connection may hold answers its client does not read before it is closed (none: no
   * limit); checked every tenth of it, at most every second.
   */
  unreadAnswerTimeoutMs?: number;
  /** Told of every connection closed for answers left unread. */
  onUnreadAnswer?: () => void;
}

/** How long a refused connection may take to send the request it is answered 503 to. */
const REFUSED_LINGER_MS = 1_000;

/**
 * Of a limit of `maxConnections`, how many are kept to answer 503 to connections opened while every
 * other one is busy: a tenth, at most 64, and never the whole limit (a limit of 1 kept its one
 * place for refusals, and every request was answered 503). Past the whole limit, new connections
 * are closed at once.
 */
export function refusalRoom(maxConnections: number): number {
  if (!Number.isFinite(maxConnections)) return 0;
  return Math.min(64, Math.ceil(maxConnections / 10), maxConnections - 1);
}

/**
 * Watches an HTTP server's connections for what Node's own timeouts miss, and bounds how many stay
 * open, so that idle sockets cannot use up the process's file descriptors.
 *
 * - A connection that opens and has not sent a whole request is closed after
 *   `firstRequestTimeoutMs`: a backstop behind Node's headersTimeout (which answers 408 at its next
 *   check), since closeIdleConnections() does not count a connection that never sent a request as
 *   idle, and a silent socket would otherwise hold a graceful stop until its grace period ran out.
 * - At most `maxConnections − refusalRoom` connections are served. A connection opened past that
 *   closes the one idle the longest (a keep-alive connection between requests, or one that never
 *   sent a request); when none is idle, the new connection is marked refused: its requests are
 *   answered 503 and it closes. Node's own `maxConnections` closes any connection past the whole
 *   limit as soon as it is accepted.
 * - A connection whose client leaves its answers unread, so that its socket's write buffer stays
 *   over its high-water mark with no write completing for `unreadAnswerTimeoutMs`, is closed: every
 *   answer waiting for it (a large one, or two pipelined: see mayStart) is held in the gateway until then,
 *   and Node's own timeouts only count the request's arrival. A write completes when the kernel has
 *   taken all of it, so a client slow enough to take longer than that over one write is cut off
 *   too: long answers are written 64 KiB at a time for that reason (sliced-write.ts); a page of a
 *   long list is one write, and has PageStreamer's own shorter limit.
 * - At stop, {@link closeIdle} closes every connection with no request in flight at once.
 */
export class ConnectionTracker {
  readonly #connections = new Map<Socket, Connection>();
  /** Served connections with no request in flight, the longest idle first. */
  readonly #idle = new Map<Socket, Connection>();
  /**
   * Over HTTPS, the TCP connections not served yet, the oldest first, by peer address and port:
   * silent, in their handshake, or refused by the client-certificate gate. They hold descriptors
   * and count against the server's `maxConnections` as served ones do.
   */
  readonly #unserved = new Map<string, Socket>();
  readonly #firstRequestTimeoutMs: number;
  readonly #servedLimit: number;
  readonly #onLimit: (action: 'evicted' | 'refused') => void;
  readonly #unreadAnswerTimeoutMs: number | undefined;
  readonly #onUnreadAnswer: () => void;
  #served = 0;

  constructor(server: Server | HttpsServer, options: ConnectionTrackerOptions) {
    this.#firstRequestTimeoutMs = options.firstRequestTimeoutMs;
    const limit = options.maxConnections ?? Number.POSITIVE_INFINITY;
    this.#servedLimit = limit - refusalRoom(limit);
    this.#onLimit = options.onLimit ?? (() => {});
    this.#unreadAnswerTimeoutMs = options.unreadAnswerTimeoutMs;
    this.#onUnreadAnswer = options.onUnreadAnswer ?? (() => {});
    if (Number.isFinite(limit)) server.maxConnections = limit;
    // Over HTTPS a request's socket is the TLS socket, which exists once the handshake is done.
    const event = server instanceof HttpsServer ? 'secureConnection' : 'connection';
    server.on(event, (socket: Socket) => this.#opened(socket));
    // Before its handshake a connection has sent no request: the longest waiting goes to make room,
    // as a silent socket does over plain HTTP (else silent sockets took every place, and a client
    // past them was closed at accept). Never a served one: a client the gate may refuse cannot
    // close an authorized client's connection.
    if (server instanceof HttpsServer) server.on('connection', (socket: Socket) => this.#accepted(socket));
    if (this.#unreadAnswerTimeoutMs !== undefined) {
      const timeoutMs = this.#unreadAnswerTimeoutMs;
      const check = setInterval(() => this.#closeUnread(timeoutMs), Math.min(1_000, timeoutMs / 10));
      check.unref();
      server.once('close', () => clearInterval(check));
    }
  }

  /** Open connections, for tests and diagnostics. */
  get size(): number {
    return this.#connections.size;
  }

  /**
   * What the connections hold now, for the metrics: each open connection (over HTTPS, once its
   * handshake is done) and the requests received on them and not yet answered or abandoned,
   * pipelined ones waiting their turn included. Counted when asked (a scrape), not per request.
   */
  load(): { connections: number; requestsInFlight: number } {
    let requestsInFlight = 0;
    for (const connection of this.#connections.values()) requestsInFlight += connection.inFlight;
    return { connections: this.#connections.size, requestsInFlight };
  }

  /**
   * Counts a request on its connection; the caller calls requestEnded() on the result when the
   * response is finished or abandoned (its 'close' event), so that a request costs one listener.
   */
  requestStarted(request: IncomingMessage, response: ServerResponse): Connection | undefined {
    const connection = this.#connections.get(request.socket);
    if (!connection) return undefined;
    connection.track(response);
    connection.received(request.method, response);
    connection.latestRequest = request;
    this.#idle.delete(connection.socket);
    if (connection.firstRequestTimer) {
      clearTimeout(connection.firstRequestTimer);
      connection.firstRequestTimer = undefined;
    }
    return connection;
  }

  /** The connection of a socket, while it is open. */
  of(socket: Socket): Connection | undefined {
    return this.#connections.get(socket);
  }

  /** The open connections (over HTTPS, those whose handshake is done and that are served). */
  connections(): IterableIterator<Connection> {
    return this.#connections.values();
  }

  /** Whether a request arrived on a connection opened past the limit (answer 503 and close). */
  isRefused(request: IncomingMessage): boolean {
    return this.#connections.get(request.socket)?.refused === true;
  }

  /** Closes every connection that has no request in flight (keep-alive and silent ones alike). */
  closeIdle(): void {
    for (const [socket, state] of this.#connections) {
      if (state.inFlight === 0) socket.destroy();
    }
  }

  #accepted(socket: Socket): void {
    if (this.#served + this.#unserved.size >= this.#servedLimit) {
      const oldest = this.#unserved.values().next().value;
      if (oldest) {
        oldest.destroy();
        this.#onLimit('evicted');
      }
    }
    // Reset before it was accepted: nothing to hold.
    if (socket.remoteAddress === undefined) return;
    const key = peerKey(socket);
    this.#unserved.set(key, socket);
    socket.once('close', () => {
      if (this.#unserved.get(key) === socket) this.#unserved.delete(key);
    });
  }

  #opened(socket: Socket): void {
    // A TLS socket has the peer address and port of the TCP connection it wraps.
    if (this.#unserved.size > 0) this.#unserved.delete(peerKey(socket));
    let refused = false;
    if (this.#served >= this.#servedLimit) {
      const idlest = this.#idle.values().next().value;
      if (idlest) this.#close(idlest, 'evicted');
      else refused = true;
      this.#onLimit(idlest ? 'evicted' : 'refused');
    }
    const connection = new Connection(socket, refused, (idle) => {
      if (!idle.refused && this.#connections.has(idle.socket)) this.#idle.set(idle.socket, idle);
    });
    const timer = setTimeout(
      () => {
        if (this.#connections.get(socket)?.firstRequestTimer === timer) socket.destroy();
      },
      refused ? Math.min(REFUSED_LINGER_MS, this.#firstRequestTimeoutMs) : this.#firstRequestTimeoutMs,
    );
    timer.unref();
    connection.firstRequestTimer = timer;
    this.#connections.set(socket, connection);
    if (!refused) {
      this.#served++;
      this.#idle.set(socket, connection);
    }
    socket.once('close', () => {
      connection.socketClosed();
      if (this.#connections.get(socket) === connection) this.#close(connection, 'closed');
    });
  }

  /** Closes the connections whose sockets have held unread answers for longer than `timeoutMs`. */
  #closeUnread(timeoutMs: number): void {
    const now = performance.now();
    for (const connection of this.#connections.values()) {
      const { socket } = connection;
      // Not writableNeedDrain, which is false once the socket is ending (an answer with Connection:
      // close), while what it holds stays held.
      if (socket.writableLength < socket.writableHighWaterMark || socket.destroyed) {
        connection.unreadSince = undefined;
        continue;
      }
      // Written to the socket, less what is still buffered or being written: what the kernel took.
      const passedOn = socket.bytesWritten - socket.writableLength;
      if (connection.unreadSince === undefined || passedOn !== connection.bytesPassedOn) {
        connection.unreadSince = now;
        connection.bytesPassedOn = passedOn;
      } else if (now - connection.unreadSince > timeoutMs) {
        this.#onUnreadAnswer();
        connection.closedUnread = true;
        socket.destroy();
      }
    }
  }

  /** Forgets a connection at once (its socket's 'close' comes later), destroying it if evicted. */
  #close(connection: Connection, reason: 'evicted' | 'closed'): void {
    clearTimeout(connection.firstRequestTimer);
    this.#connections.delete(connection.socket);
    this.#idle.delete(connection.socket);
    if (!connection.refused) this.#served--;
    if (reason === 'evicted') connection.socket.destroy();
  }
}

/** Has an answer whose headers have not gone yet close its connection after it. */
function closeAfter(response: ServerResponse): void {
  if (!response.headersSent) response.setHeader('Connection', 'close');
}

/** A connection's peer address and port: one open connection each, on a listening socket. */
function peerKey(socket: Socket): string {
  return `${socket.remoteAddress} ${socket.remotePort}`;
}
