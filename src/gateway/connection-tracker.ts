import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';

/** One connection's count of requests in flight; its owner calls requestEnded() once per request. */
export class Connection {
  /** Requests received on it and not yet answered or abandoned. */
  inFlight = 0;
  /** Closes a connection that has not sent its first request in time. */
  firstRequestTimer: NodeJS.Timeout | undefined;
  /** The request whose body is being read, and how to stop reading it. */
  readingBody: { request: IncomingMessage; stop: AbortController } | undefined;
  /** Since when (ms) the socket has held more than it passes on, as first seen; undefined once it moves. */
  unreadSince: number | undefined;
  /** The bytes whose writes had completed when the socket was last seen holding too much. */
  bytesPassedOn = 0;
  /** Bytes of answers made for it and not yet all taken by the kernel (see ConnectionTracker.holdAnswer). */
  heldAnswerBytes = 0;
  /** Closed: what its answers held was released with it. */
  gone = false;
  /** When the kernel last took bytes of its answers, as the answer budget's checks saw it (ms). */
  answersMovedAt: number | undefined;
  /** The bytes the kernel had taken at that check. */
  answersPassedOn = 0;
  #whenIdle: (() => void) | undefined;

  constructor(
    readonly socket: Socket,
    /** Opened past the limit: its requests are answered 503 and it is closed. */
    readonly refused: boolean,
    readonly onIdle: (connection: Connection) => void,
  ) {}

  requestEnded(): void {
    this.inFlight--;
    if (this.inFlight > 0) return;
    this.onIdle(this);
    const whenIdle = this.#whenIdle;
    this.#whenIdle = undefined;
    whenIdle?.();
  }

  /** Runs `action` once no request is in flight on this connection: now, or when the last one ends. */
  whenIdle(action: () => void): void {
    if (this.inFlight === 0) action();
    else this.#whenIdle = action;
  }
}

/** Where the bytes of answers waiting for their clients are counted (see ConnectionTracker.holdAnswer). */
export interface AnswerLedger {
  holdAnswer(response: ServerResponse, bytes: number): void;
  releaseAnswer(response: ServerResponse, bytes: number): void;
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
  /**
   * Bytes of answers held at once for clients that have not taken them, over every connection
   * (none: no limit); past it, connections whose answers stand still are closed (see holdAnswer).
   */
  answerBudgetBytes?: number;
  /** Told how many connections were closed to bring the answers held back under the budget. */
  onAnswerBudget?: (closed: number) => void;
  /** How long a connection's answers must have stood still before the budget may close it (ms). Default 1000. */
  answerStallMs?: number;
}

/** How long a refused connection may take to send the request it is answered 503 to. */
const REFUSED_LINGER_MS = 1_000;

/**
 * Of a limit of `maxConnections`, how many are kept to answer 503 to connections opened while every
 * other one is busy: a tenth, at most 64. Past the whole limit, new connections are closed at once.
 */
export function refusalRoom(maxConnections: number): number {
  return Number.isFinite(maxConnections) ? Math.min(64, Math.ceil(maxConnections / 10)) : 0;
}

/**
 * Watches an HTTP server's connections for what Node's own timeouts miss, and bounds how many stay
 * open, so that idle sockets cannot use up the process's file descriptors.
 *
 * - A connection that opens and sends nothing is closed after `firstRequestTimeoutMs`: Node's
 *   headersTimeout counts only from a request's first byte, and closeIdleConnections() does not
 *   count a connection that never sent a request as idle, so a silent socket would otherwise live
 *   forever (and hold a graceful stop until its grace period ran out).
 * - At most `maxConnections − refusalRoom` connections are served. A connection opened past that
 *   closes the one idle the longest (a keep-alive connection between requests, or one that never
 *   sent a request); when none is idle, the new connection is marked refused: its requests are
 *   answered 503 and it closes. Node's own `maxConnections` closes any connection past the whole
 *   limit as soon as it is accepted.
 * - A connection whose client leaves its answers unread, so that its socket's write buffer stays
 *   over its high-water mark with no write completing for `unreadAnswerTimeoutMs`, is closed: every
 *   answer waiting for it (a large one, or up to 16 pipelined) is held in the gateway until then,
 *   and Node's own timeouts only count the request's arrival. A write completes when the kernel has
 *   taken all of it, so a client slow enough to take longer than that over one write is cut off
 *   too: long answers are written 64 KiB at a time for that reason (sliced-write.ts); a page of a
 *   long list is one write, and has PageStreamer's own shorter limit.
 * - The answers held for clients that have not taken them are bounded in total, not only in time:
 *   past `answerBudgetBytes` over every connection, connections whose answers the kernel has taken
 *   nothing of for `answerStallMs` are closed, those holding the most first, until the rest fits;
 *   checked again every `answerStallMs` while the total stays over. A client that reads a little
 *   now and then keeps its connection within `unreadAnswerTimeoutMs`, and sixteen pipelined answers
 *   of 1 MiB each on every connection would hold gigabytes. Stalled, not largest: a client whose
 *   large answer is being taken is not cut for the holdings of others that take nothing.
 * - At stop, {@link closeIdle} closes every connection with no request in flight at once.
 */
export class ConnectionTracker implements AnswerLedger {
  readonly #connections = new Map<Socket, Connection>();
  /** Served connections with no request in flight, the longest idle first. */
  readonly #idle = new Map<Socket, Connection>();
  readonly #firstRequestTimeoutMs: number;
  readonly #servedLimit: number;
  readonly #onLimit: (action: 'evicted' | 'refused') => void;
  readonly #unreadAnswerTimeoutMs: number | undefined;
  readonly #onUnreadAnswer: () => void;
  readonly #answerBudgetBytes: number;
  readonly #onAnswerBudget: (closed: number) => void;
  /** What each answer holds, until its response closes: by response, with its connection. */
  readonly #heldBy = new WeakMap<ServerResponse, { connection: Connection; bytes: number }>();
  #heldAnswerBytes = 0;
  /** Connections holding answers now. */
  readonly #holders = new Set<Connection>();
  readonly #answerStallMs: number;
  #budgetCheckDue = false;
  #served = 0;

  constructor(server: Server | HttpsServer, options: ConnectionTrackerOptions) {
    this.#firstRequestTimeoutMs = options.firstRequestTimeoutMs;
    const limit = options.maxConnections ?? Number.POSITIVE_INFINITY;
    this.#servedLimit = limit - refusalRoom(limit);
    this.#onLimit = options.onLimit ?? (() => {});
    this.#unreadAnswerTimeoutMs = options.unreadAnswerTimeoutMs;
    this.#onUnreadAnswer = options.onUnreadAnswer ?? (() => {});
    this.#answerBudgetBytes = options.answerBudgetBytes ?? Number.POSITIVE_INFINITY;
    this.#onAnswerBudget = options.onAnswerBudget ?? (() => {});
    this.#answerStallMs = options.answerStallMs ?? 1_000;
    if (Number.isFinite(limit)) server.maxConnections = limit;
    // Over HTTPS a request's socket is the TLS socket, which exists once the handshake is done.
    const event = server instanceof HttpsServer ? 'secureConnection' : 'connection';
    server.on(event, (socket: Socket) => this.#opened(socket));
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
   * Counts a request on its connection; the caller calls requestEnded() on the result when the
   * response is finished or abandoned (its 'close' event), so that a request costs one listener.
   */
  requestStarted(request: IncomingMessage): Connection | undefined {
    const connection = this.#connections.get(request.socket);
    if (!connection) return undefined;
    connection.inFlight++;
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

  /** Whether a request arrived on a connection opened past the limit (answer 503 and close). */
  isRefused(request: IncomingMessage): boolean {
    return this.#connections.get(request.socket)?.refused === true;
  }

  /** Bytes of answers held now for clients that have not taken them, over every connection. */
  get heldAnswerBytes(): number {
    return this.#heldAnswerBytes;
  }

  /**
   * Counts `bytes` of an answer (a body, a page of a list) as held for its client until
   * releaseAnswer(), or until answerClosed() when its response closes; past the budget, the
   * connections whose answers stand still are closed (see #keepAnswerBudget), once this turn is over.
   */
  holdAnswer(response: ServerResponse, bytes: number): void {
    const connection = this.#connections.get(response.req.socket);
    if (!connection || bytes <= 0) return;
    const held = this.#heldBy.get(response);
    if (held) held.bytes += bytes;
    else this.#heldBy.set(response, { connection, bytes });
    connection.heldAnswerBytes += bytes;
    this.#holders.add(connection);
    this.#heldAnswerBytes += bytes;
    if (this.#heldAnswerBytes > this.#answerBudgetBytes && !this.#budgetCheckDue) {
      this.#budgetCheckDue = true;
      setImmediate(() => this.#keepAnswerBudget());
    }
  }

  /** Counts `bytes` of a response's answer as taken (a page of a list, all written). */
  releaseAnswer(response: ServerResponse, bytes: number): void {
    const held = this.#heldBy.get(response);
    if (!held) return;
    const released = Math.min(bytes, held.bytes);
    held.bytes -= released;
    if (held.connection.gone) return;
    held.connection.heldAnswerBytes -= released;
    if (held.connection.heldAnswerBytes <= 0) {
      this.#holders.delete(held.connection);
      held.connection.answersMovedAt = undefined;
    }
    this.#heldAnswerBytes -= released;
  }

  /** Counts what a response still held as released: it has finished, or its client left. */
  answerClosed(response: ServerResponse): void {
    const held = this.#heldBy.get(response);
    if (!held) return;
    this.releaseAnswer(response, held.bytes);
    this.#heldBy.delete(response);
  }

  /** Closes every connection that has no request in flight (keep-alive and silent ones alike). */
  closeIdle(): void {
    for (const [socket, state] of this.#connections) {
      if (state.inFlight === 0) socket.destroy();
    }
  }

  #opened(socket: Socket): void {
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
        socket.destroy();
      }
    }
  }

  /**
   * Closes connections whose answers have stood still for answerStallMs, those holding the most
   * first, until what the others hold fits the budget; looks again after answerStallMs while the
   * total is over it.
   */
  #keepAnswerBudget(): void {
    this.#budgetCheckDue = false;
    const now = performance.now();
    let held = this.#heldAnswerBytes;
    const stalled: Connection[] = [];
    for (const connection of this.#holders) {
      const { socket } = connection;
      // Already closing: what it holds is about to be released.
      if (socket.destroyed) {
        held -= connection.heldAnswerBytes;
        continue;
      }
      // Written to the socket, less what is still buffered: what the kernel took.
      const passedOn = socket.bytesWritten - socket.writableLength;
      if (connection.answersMovedAt === undefined || passedOn !== connection.answersPassedOn) {
        connection.answersMovedAt = now;
        connection.answersPassedOn = passedOn;
      } else if (now - connection.answersMovedAt >= this.#answerStallMs) {
        stalled.push(connection);
      }
    }
    if (held <= this.#answerBudgetBytes) return;
    stalled.sort((a, b) => b.heldAnswerBytes - a.heldAnswerBytes);
    let closed = 0;
    for (const connection of stalled) {
      if (held <= this.#answerBudgetBytes) break;
      // Its answers are released as it is forgotten, once its socket has closed.
      held -= connection.heldAnswerBytes;
      connection.socket.destroy();
      closed++;
    }
    if (closed > 0) this.#onAnswerBudget(closed);
    if (held > this.#answerBudgetBytes) {
      this.#budgetCheckDue = true;
      setTimeout(() => this.#keepAnswerBudget(), this.#answerStallMs).unref();
    }
  }

  /** Forgets a connection at once (its socket's 'close' comes later), destroying it if evicted. */
  #close(connection: Connection, reason: 'evicted' | 'closed'): void {
    clearTimeout(connection.firstRequestTimer);
    // Released with it: answers queued behind a pipelined one never see their response close.
    connection.gone = true;
    this.#heldAnswerBytes -= connection.heldAnswerBytes;
    connection.heldAnswerBytes = 0;
    this.#holders.delete(connection);
    this.#connections.delete(connection.socket);
    this.#idle.delete(connection.socket);
    if (!connection.refused) this.#served--;
    if (reason === 'evicted') connection.socket.destroy();
  }
}
