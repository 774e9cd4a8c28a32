import {
  constants,
  type Http2SecureServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import { addressGroupOf } from './address-group.js';
import { AddressShares } from './address-shares.js';
import type { OpenCall } from './whole-request-watch.js';

/** One connection to a gRPC port, as its room sees it. */
interface Connection {
  readonly socket: Socket;
  /** Both ends' addresses and ports, by which its HTTP/2 session is found. */
  readonly peer: string | undefined;
  /** The group of the address it came from (see addressGroupOf); undefined when the socket had none. */
  readonly group: string | undefined;
  /** Its HTTP/2 session, once there is one: on a plaintext port it has taken the socket over. */
  session: ServerHttp2Session | undefined;
  /** Calls (HTTP/2 streams) open on it now, with the method each names. */
  readonly calls: Map<ServerHttp2Stream, string | undefined>;
  /** Closed, or being closed: no longer counted. */
  gone: boolean;
  /** Came past the room when every other connection had a call open: decided on at its first call. */
  pending: boolean;
  /** Closes it if it is still waiting for its first call after {@link MAX_WAIT_MS}. */
  waitTimer: NodeJS.Timeout | undefined;
}

/**
 * What was closed to keep the room, named as the gateway's connection limit names it: a connection
 * with no call open ("evicted"), one of the connections of the address holding the most, calls
 * open and all ("displaced"), or the one that just came ("refused").
 */
export type RoomKept = 'evicted' | 'displaced' | 'refused';

/** Told what was closed to keep the room; for "displaced", the address group it was taken from. */
export type RoomKeeping = (kept: RoomKept, fromGroup?: string) => void;

/**
 * Keeps at most `max` connections open on one of the HTTP/2 servers grpc-js makes for a port. When
 * a connection comes past it, one is closed to make room: first one that never made a call (a
 * silent socket, a TLS handshake never finished, a client that only answers pings), the oldest
 * first; else the one idle longest since its last call ended. When every one has a call open, the
 * new connection is kept past the room until its first call, for 10 s at most (in a waiting room
 * of its own, see waitingRoom and #wait; it moves into a place that comes free), and then the room
 * is shared out by address (see
 * addressGroupOf): if another address holds more connections than the new one's address does,
 * counting the new one, the newest connection of the address holding the most is closed, calls and
 * all; else the new connection is. A flood of sockets that never call then pushes out each other
 * and idle connections, and a client that calls still gets in (before, Node's own maxConnections
 * closed every new connection once the port was full, the clients that call included); a client
 * that holds connections with calls that never end (a health Watch on each, say) keeps other
 * addresses out of no more than its share of the room; and only a client that calls, past its
 * TLS handshake (and so, with mTLS, one with a certificate), can have another's call closed.
 * Connections from one address (every local client, on 127.0.0.1) are not told apart.
 *
 * Calls are counted on each HTTP/2 session's streams; a session is matched to the socket it came on
 * by both ends' addresses and ports, the same on a TLS socket as on the TCP socket under it (on a
 * port bound to a wildcard address, one peer address and port may reach two local addresses).
 */
export class ConnectionRoom {
  readonly #max: number;
  readonly #onKept: RoomKeeping;
  readonly #bySocket = new WeakMap<Socket, Connection>();
  readonly #byPeer = new Map<string, Connection>();
  /** Connections in the room that never made a call, oldest first... */
  readonly #neverCalled = new Set<Connection>();
  /** ...and by address group. */
  readonly #neverCalledShares = new AddressShares<Connection>();
  /** Open connections that made calls and have none open now, longest idle first. */
  readonly #idle = new Set<Connection>();
  /** Connections open and not being closed. */
  readonly #open = new Set<Connection>();
  /** The same, less those waiting past the room, by the group of the address each came from. */
  readonly #shares = new AddressShares<Connection>();
  /** Connections kept past the room until their first call, by address group... */
  readonly #pending = new AddressShares<Connection>();
  /** ...and in the order they came. */
  readonly #pendingInOrder = new Set<Connection>();
  /** Connections that may wait past the room at once (see waitingRoom). */
  readonly #waitingRoom: number;

  constructor(server: Http2Server | Http2SecureServer, max: number, onKept: RoomKeeping) {
    this.#max = max;
    this.#waitingRoom = waitingRoom(max);
    this.#onKept = onKept;
    // Known before Node makes its session of it (in its own 'connection' listener), made room for
    // after: a socket destroyed before Node has seen it would be handed to a session all the same.
    server.prependListener('connection', (socket: Socket) => this.#accept(socket));
    server.on('connection', (socket: Socket) => this.#makeRoom(socket));
    server.on('session', (session: ServerHttp2Session) => this.#follow(session));
  }

  #accept(socket: Socket): void {
    const connection: Connection = {
      socket,
      peer: peerOf(socket),
      group: socket.remoteAddress === undefined ? undefined : addressGroupOf(socket.remoteAddress),
      session: undefined,
      calls: new Map(),
      gone: false,
      pending: false,
      waitTimer: undefined,
    };
    this.#open.add(connection);
    this.#bySocket.set(socket, connection);
    if (connection.peer !== undefined) this.#byPeer.set(connection.peer, connection);
    if (connection.group !== undefined) this.#shares.add(connection.group, connection);
    this.#addNeverCalled(connection);
    socket.once('close', () => this.#forget(connection));
  }

  /** Connections in the room: open, less those waiting past it for their first call. */
  get #inRoom(): number {
    return this.#open.size - this.#pendingInOrder.size;
  }

  #makeRoom(socket: Socket): void {
    const connection = this.#bySocket.get(socket);
    if (!connection || connection.gone || socket.destroyed) return;
    while (this.#inRoom > this.#max) {
      const victim = this.#neverCalledVictim(connection) ?? first(this.#idle, connection);
      if (!victim) {
        this.#wait(connection);
        return;
      }
      this.#close(victim);
      this.#onKept('evicted');
    }
  }

  /**
   * Keeps a connection past the room until its first call. Past the waiting room, one waiting
   * goes: the oldest of the newcomer's own address when it has another waiting, else the oldest of
   * the address with the most waiting, else the oldest of all; so a flood of sockets from one
   * address that never call turns over its own places, not another's.
   */
  #wait(connection: Connection): void {
    connection.pending = true;
    this.#deleteNeverCalled(connection);
    // Not in the room's shares until it is in the room: a flood waiting outside is nobody's share.
    if (connection.group !== undefined) this.#shares.delete(connection.group, connection);
    this.#pending.add(connection.group ?? '', connection);
    this.#pendingInOrder.add(connection);
    connection.waitTimer = setTimeout(() => {
      if (!connection.pending || connection.gone) return;
      this.#close(connection);
      this.#onKept('evicted');
    }, MAX_WAIT_MS);
    connection.waitTimer.unref();
    if (this.#pendingInOrder.size <= this.#waitingRoom) return;
    const victim = pickFrom(this.#pending, this.#pendingInOrder, connection);
    if (!victim) return;
    this.#close(victim);
    this.#onKept('evicted');
  }

  #stopWaiting(connection: Connection): void {
    if (!connection.pending) return;
    connection.pending = false;
    clearTimeout(connection.waitTimer);
    connection.waitTimer = undefined;
    this.#pending.delete(connection.group ?? '', connection);
    this.#pendingInOrder.delete(connection);
  }

  /** Makes room for a connection kept past it, now that it calls (see the class). */
  #decide(connection: Connection): void {
    this.#stopWaiting(connection);
    if (connection.group !== undefined) this.#shares.add(connection.group, connection);
    if (this.#inRoom <= this.#max) return;
    const victim = this.#neverCalledVictim(connection) ?? first(this.#idle, connection);
    if (victim) {
      this.#close(victim);
      this.#onKept('evicted');
      return;
    }
    const displaced = this.#largerShareThan(connection);
    if (displaced) {
      this.#close(displaced);
      this.#onKept('displaced', displaced.group);
      return;
    }
    this.#close(connection, true);
    this.#onKept('refused');
  }

  /**
   * The newest connection of the address group holding the most, when that is more than the group
   * of `newcomer` holds with it: closing it leaves that group holding no less than the newcomer's.
   * The newest, because the oldest is the likelier to carry what lasts (a registration, a gateway's
   * node list).
   */
  #largerShareThan(newcomer: Connection): Connection | undefined {
    if (newcomer.group === undefined) return undefined;
    const largest = this.#shares.largest();
    if (!largest || largest.group === newcomer.group) return undefined;
    if (largest.held <= this.#shares.heldBy(newcomer.group)) return undefined;
    return this.#shares.newestOf(largest.group);
  }

  /** The calls (HTTP/2 streams) open on the room's connections. */
  *openCalls(): Iterable<ServerHttp2Stream> {
    for (const connection of this.#open) yield* connection.calls.keys();
  }

  /** The same, each with the method it names (its `:path`). */
  *openCallsByMethod(): Iterable<OpenCall> {
    for (const connection of this.#open) yield* connection.calls;
  }

  /**
   * Destroys every connection still open, at the end of a stop's grace: grpc-js's forceShutdown
   * leaves a connection that never became an HTTP/2 session (a client that never sent its preface),
   * and the server's close waits for it.
   */
  destroyAll(): void {
    for (const connection of [...this.#open]) this.#close(connection);
  }

  #follow(session: ServerHttp2Session): void {
    const peer = peerOf(session.socket);
    const connection = peer === undefined ? undefined : this.#byPeer.get(peer);
    if (!connection || connection.gone) return;
    connection.session = session;
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      // A call on a connection refused in this read (closed in the next turn, see #close): grpc-js
      // has it already (its listener comes first) and would run its handler.
      if (connection.gone) {
        refuseCall(stream);
        return;
      }
      connection.calls.set(stream, headers[':path']);
      this.#deleteNeverCalled(connection);
      this.#idle.delete(connection);
      if (connection.pending) this.#decide(connection);
      if (connection.gone) refuseCall(stream);
      stream.once('close', () => {
        connection.calls.delete(stream);
        // Re-added at the end: the order is how long each has been idle.
        if (connection.calls.size === 0 && !connection.gone) this.#idle.add(connection);
      });
    });
  }

  /**
   * Closes a connection, through its session when it has one (which owns a plaintext socket).
   * `fromItsOwnCall`: called from its session's 'stream' event, while nghttp2 is still taking in
   * the read that brought the call, whose message often came in the same read: a session
   * destroyed there has nghttp2 hand that message to a stream already gone, and Node aborts the
   * process (`Assertion failed: onread->IsFunction()` in Http2StreamListener::OnStreamRead; a
   * distributor at its --max-connections with a hundred registering connections from one host died
   * so). Such a connection is closed once that read is done, in the next turn of the event loop.
   */
  #close(connection: Connection, fromItsOwnCall = false): void {
    // Forgotten at once: connections that come in the same turn must find other room.
    this.#forget(connection);
    if (fromItsOwnCall) {
      setImmediate(() => this.#destroy(connection));
      return;
    }
    this.#destroy(connection);
  }

  #destroy(connection: Connection): void {
    // The socket goes first: a session destroyed while it can still write ends each open call with
    // RST_STREAM NO_ERROR, which a grpc-js client reads as INTERNAL "Call ended without gRPC
    // status" (a refused write answered 500 by the gateway, never tried elsewhere), where a
    // connection that just drops is UNAVAILABLE "Connection dropped".
    connection.socket.destroy();
    connection.session?.destroy();
  }

  #forget(connection: Connection): void {
    if (connection.gone) return;
    connection.gone = true;
    const leftRoom = !connection.pending;
    this.#open.delete(connection);
    if (connection.group !== undefined) this.#shares.delete(connection.group, connection);
    if (connection.peer !== undefined && this.#byPeer.get(connection.peer) === connection) {
      this.#byPeer.delete(connection.peer);
    }
    this.#deleteNeverCalled(connection);
    this.#idle.delete(connection);
    this.#stopWaiting(connection);
    if (leftRoom) this.#admitWaiting();
  }

  /**
   * Moves the oldest connection waiting past the room into a place that came free: it is then one
   * that never called, the first to go for room, rather than one kept outside while a connection
   * that called, and is idle, is closed for a newcomer.
   */
  #admitWaiting(): void {
    if (this.#inRoom >= this.#max) return;
    const waiting = first(this.#pendingInOrder, undefined);
    if (!waiting) return;
    this.#stopWaiting(waiting);
    if (waiting.group !== undefined) this.#shares.add(waiting.group, waiting);
    this.#addNeverCalled(waiting);
  }

  #addNeverCalled(connection: Connection): void {
    this.#neverCalled.add(connection);
    this.#neverCalledShares.add(connection.group ?? '', connection);
  }

  #deleteNeverCalled(connection: Connection): void {
    if (!this.#neverCalled.delete(connection)) return;
    this.#neverCalledShares.delete(connection.group ?? '', connection);
  }

  /**
   * The connection in the room that never called to close for `newcomer`, as the waiting room
   * chooses (see #wait): the oldest of the newcomer's own address when it has one, else the oldest
   * of the address with the most, else the oldest of all; so a flood of sockets from one address
   * that never call turns over its own places, not those of a client from another that is about to
   * call.
   */
  #neverCalledVictim(newcomer: Connection): Connection | undefined {
    return pickFrom(this.#neverCalledShares, this.#neverCalled, newcomer);
  }
}

/**
 * Resets a call of a connection refused at its first call, REFUSED_STREAM, which tells its client
 * that it was not processed: grpc-js, whose listener took the stream first, then cancels the call
 * before its handler runs, where the message that came in the same read would have had it run
 * (a write done, its client told the connection dropped) in the turn before the connection closed.
 */
function refuseCall(stream: ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_REFUSED_STREAM);
}

/** How long a connection may wait past the room for its first call (as a TLS handshake may take). */
const MAX_WAIT_MS = 10_000;

/**
 * How many connections may wait past a room of `max` for their first call at once: a tenth of it,
 * at least 4 and at most 64. Node's own hard stop lies past them (see listen in grpc-server.ts).
 */
export function waitingRoom(max: number): number {
  return Math.min(64, Math.max(4, Math.ceil(max / 10)));
}

function peerOf(
  socket: Pick<Socket, 'remoteAddress' | 'remotePort' | 'localAddress' | 'localPort'>,
): string | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || remotePort === undefined) return undefined;
  return `${remoteAddress}|${remotePort}|${localAddress}|${localPort}`;
}

/**
 * Of connections held both by address group and in order, the one to close for `newcomer`: the
 * oldest of its own group when that holds another, else the oldest of the group holding the most
 * when that holds more than one, else the oldest of all; never `newcomer` itself.
 */
function pickFrom(
  shares: AddressShares<Connection>,
  inOrder: ReadonlySet<Connection>,
  newcomer: Connection,
): Connection | undefined {
  const own = newcomer.group ?? '';
  const ownOldest = shares.oldestOf(own);
  if (ownOldest !== undefined && ownOldest !== newcomer) return ownOldest;
  const largest = shares.largest();
  if (largest && largest.held > 1) return shares.oldestOf(largest.group);
  return first(inOrder, newcomer);
}

/** The first connection of `set` other than `except`. */
function first(set: ReadonlySet<Connection>, except: Connection | undefined): Connection | undefined {
  for (const connection of set) if (connection !== except) return connection;
  return undefined;
}
