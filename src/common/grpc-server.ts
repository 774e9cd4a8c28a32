import type { Http2SecureServer, Http2Server, ServerHttp2Session } from 'node:http2';
import { type AddressInfo, isIP, type Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { type ChannelOptions, type Server, ServerCredentials } from '@grpc/grpc-js';
import { addressGroupOf } from './address-group.js';
import { formatHostPort } from './config.js';
import { ConnectionRoom, type RoomKept, waitingRoom } from './connection-room.js';
import { lookupAll, lookupWithin } from './host-lookup.js';
import { limiterOf } from './log-limiter.js';
import type { Logger } from './logger.js';
import { sameIpAddress } from './loopback.js';
import { defaultGrpcMaxConnections } from './max-connections.js';
import { logPlaintextClients } from './plaintext-client-log.js';
import { DEFAULT_UNREAD_ANSWER_TIMEOUT_MS, UnreadAnswerWatch } from './unread-answer-watch.js';
import { DEFAULT_WHOLE_REQUEST_TIMEOUT_MS, WholeRequestWatch } from './whole-request-watch.js';

/** How often and how patiently both sides ping an idle HTTP/2 connection. */
export interface KeepaliveOptions {
  /** Interval between pings. */
  timeMs: number;
  /** How long a ping may stay unanswered before the connection is dropped. */
  timeoutMs: number;
}

/**
 * The largest request a service takes (its `grpc.max_receive_message_length`): the largest the shop
 * has is a CreateGoods with a 64 KiB description. The gateway's body limit may not pass it.
 */
export const SERVICE_MAX_REQUEST_BYTES = 1024 * 1024;

/**
 * Keepalive by default: a peer that vanished without closing its connection is noticed within about
 * 15 s (one ping interval plus its timeout), well inside the design's 30 s.
 */
export const DEFAULT_KEEPALIVE: KeepaliveOptions = { timeMs: 10_000, timeoutMs: 5_000 };

/** grpc-js channel or server options for a keepalive setting. */
export function keepaliveChannelOptions({ timeMs, timeoutMs }: KeepaliveOptions): ChannelOptions {
  return {
    'grpc.keepalive_time_ms': timeMs,
    'grpc.keepalive_timeout_ms': timeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
  };
}

/** How long a connection to a gRPC server may stay without a call before it is closed (GOAWAY). */
export const DEFAULT_MAX_CONNECTION_IDLE_MS = 5 * 60_000;

/**
 * grpc-js server options that close a connection with no call for `idleMs`: keepalive closes a peer
 * that does not answer pings (a raw socket, an HTTP/2 preface and nothing more) within about 15 s,
 * but not one that answers them and never calls, which would hold its descriptor forever. A client
 * channel so closed connects again on its next call.
 */
export function idleConnectionOptions(idleMs = DEFAULT_MAX_CONNECTION_IDLE_MS): ChannelOptions {
  return { 'grpc.max_connection_idle_ms': idleMs };
}

/**
 * Calls (HTTP/2 streams) one connection to a gRPC server may hold open at once. Without it a client
 * could open any number on each connection, each waiting on something only the client decides (a
 * reflection stream, a Register, a request never half-closed before WholeRequestWatch ends it).
 * Honest clients must never meet it: a grpc-js client past it does not fail but queues its calls
 * in its HTTP/2 session until one ends, silently, up to their deadlines, where the service would
 * have answered RESOURCE_EXHAUSTED at once. The gateway sends every call to an instance over one
 * connection, and a service holds at most --max-calls-in-flight (128) calls and twice as many
 * waiting, answering the rest at once, so 1,024 leaves room for a raised --max-calls-in-flight,
 * health Watch calls and calls in transit. A client that opens more than this anyway breaks the
 * protocol: Node closes its connection (GOAWAY), its calls with it.
 */
export const MAX_CONCURRENT_STREAMS = 1024;

/** grpc-js server options that bound the calls open at once on each connection (see MAX_CONCURRENT_STREAMS). */
export function streamLimitOptions(maxStreams = MAX_CONCURRENT_STREAMS): ChannelOptions {
  return { 'grpc.max_concurrent_streams': maxStreams };
}

/** The connections a listening server takes (see {@link listen}). */
export interface ConnectionLimit {
  /**
   * Most connections open at once on each address; past it one with no call open is closed (see
   * ConnectionRoom). By default what keeps every address bound within the process's open files
   * (defaultGrpcMaxConnections).
   */
  maxConnections?: number;
  /** Where a connection so closed is told, at most once per interval (see LogLimiter). */
  log?: Logger;
  /** How long a connection this side has ended may wait for the peer to end its side (default 10 s). */
  halfOpenGraceMs?: number;
  /** How long a call may hold an answer its client takes nothing of (default 30 s; see UnreadAnswerWatch). */
  unreadAnswerTimeoutMs?: number;
  /** How long a call of a one-message method may wait for its whole request (default 10 s; see WholeRequestWatch). */
  wholeRequestTimeoutMs?: number;
}

/** The connection limits a component's server options may give (the distributor's, a service's). */
export type ConnectionLimitOptions = Pick<
  ConnectionLimit,
  'maxConnections' | 'unreadAnswerTimeoutMs' | 'wholeRequestTimeoutMs'
>;

/**
 * What {@link listen} takes from a component's server options: the limits they give, and `log`; a
 * limit they leave out takes listen's default.
 */
export function connectionLimitOf(options: ConnectionLimitOptions, log: Logger): ConnectionLimit {
  return {
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    log,
    ...(options.unreadAnswerTimeoutMs === undefined
      ? {}
      : { unreadAnswerTimeoutMs: options.unreadAnswerTimeoutMs }),
    ...(options.wholeRequestTimeoutMs === undefined
      ? {}
      : { wholeRequestTimeoutMs: options.wholeRequestTimeoutMs }),
  };
}

/**
 * Binds a built server to host:port (0: any free port) with its credentials (plaintext by default)
 * and resolves with the port it got. At most `limit.maxConnections` connections (by default as many
 * as keep every address bound, with the admin port, within three quarters of the open-file limit:
 * defaultGrpcMaxConnections) are open at once on each address bound, so that a flood of
 * sockets cannot take the descriptors and memory the process needs; past it, one with no call open
 * is closed to make room (see ConnectionRoom). grpc-js has no such setting: the room watches the
 * HTTP/2 servers grpc-js made for the port.
 */
export async function listen(
  server: Server,
  host: string,
  port: number,
  credentials: ServerCredentials = ServerCredentials.createInsecure(),
  limit: ConnectionLimit = {},
): Promise<number> {
  const known = new Set(http2ServersOf(server));
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(formatHostPort({ host, port }), credentials, (error, boundPort) => {
      if (error) reject(error);
      else resolve(boundPort);
    });
  });
  const added = http2ServersOf(server).filter((http2Server) => !known.has(http2Server));
  if (limit.log && isIP(host) === 0) await warnUnbound(host, bound, added, limit.log);
  // One room per address: by default they share the open files between them.
  const maxConnections = limit.maxConnections ?? defaultGrpcMaxConnections(added.length);
  for (const http2Server of added) {
    const graceMs = limit.halfOpenGraceMs ?? HALF_OPEN_GRACE_MS;
    // On a TLS port, the socket that ends is the TLS one: its raw socket never says 'finish'.
    http2Server.on(http2Server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) =>
      closeWhenHalfOpen(socket, graceMs),
    );
    const { log } = limit;
    // A plaintext client on a TLS port fails in Node's TLS layer, which grpc-js never hears of.
    if (log && http2Server instanceof TlsServer) logPlaintextClients(http2Server, log);
    const told = (action: RoomKept, fromGroup?: string): void => {
      if (!log) return;
      limiterOf(log).warn(
        `grpc-connection-limit ${action}`,
        {
          event: 'connection-limit',
          action,
          maxConnections,
          ...(fromGroup === undefined ? {} : { addressGroup: fromGroup }),
        },
        ROOM_KEPT_MESSAGES[action],
      );
    };
    const room = new ConnectionRoom(http2Server, maxConnections, told);
    roomsOf.set(server, [...(roomsOf.get(server) ?? []), room]);
    const unreadAnswerTimeoutMs = limit.unreadAnswerTimeoutMs ?? DEFAULT_UNREAD_ANSWER_TIMEOUT_MS;
    const unreadAnswers = new UnreadAnswerWatch(
      () => room.openCalls(),
      unreadAnswerTimeoutMs,
      (peer, stalledMs) => {
        if (!log) return;
        limiterOf(log).warn(
          'grpc-unread-answer',
          {
            event: 'unread-answer',
            unreadAnswerTimeoutMs,
            stalledMs,
            ...(peer === undefined ? {} : { addressGroup: addressGroupOf(peer) }),
          },
          stalledMs === unreadAnswerTimeoutMs
            ? `a client took (almost) nothing of its answers for ${stalledMs} ms: its call was reset`
            : `an answer went nowhere for ${stalledMs} ms while its connection took others: its call was reset`,
        );
      },
    );
    const wholeRequestTimeoutMs = limit.wholeRequestTimeoutMs ?? DEFAULT_WHOLE_REQUEST_TIMEOUT_MS;
    const requestStreams = requestStreamingOf(server);
    const wholeRequests = new WholeRequestWatch(
      () => room.openCallsByMethod(),
      requestStreams,
      wholeRequestTimeoutMs,
      (peer) => {
        if (!log) return;
        limiterOf(log).debug(
          'grpc-request-not-whole',
          {
            event: 'request-not-whole',
            wholeRequestTimeoutMs,
            ...(peer === undefined ? {} : { addressGroup: addressGroupOf(peer) }),
          },
          `a call's request did not arrive whole (its client did not half-close) within ${wholeRequestTimeoutMs} ms: it was reset`,
        );
      },
    );
    http2Server.once('close', () => {
      unreadAnswers.stop();
      wholeRequests.stop();
    });
    // A hard stop past the room, should its count ever be wrong: Node closes what comes past it
    // before anyone sees it. The room keeps the count at the limit, or past it by the connections
    // waiting for their first call, closing synchronously; the next to come must still reach the
    // room, which makes way for it in the waiting room.
    http2Server.maxConnections = maxConnections + waitingRoom(maxConnections) + 1;
    http2Server.on('drop', () => told('refused'));
  }
  return bound;
}

/** The IP addresses HTTP/2 servers listen on, in their order. */
function addressesOf(http2Servers: readonly (Http2Server | Http2SecureServer)[]): string[] {
  return http2Servers.flatMap((http2Server) => {
    const address = http2Server.address() as AddressInfo | string | null;
    return address !== null && typeof address === 'object' ? [address.address] : [];
  });
}

/**
 * The IP addresses a server listens on, in the order grpc-js bound them (that of the addresses a
 * host name resolved to): those it could bind of them, where a name's first resolved address may
 * be another machine's or have its port taken by another process.
 */
export function boundAddressesOf(server: Server): string[] {
  return addressesOf(http2ServersOf(server).filter((http2Server) => http2Server.listening));
}

/**
 * Warns when a host name resolves to addresses the server could not bind: grpc-js binds every
 * address a name resolves to that it can, and succeeds if one is bound, telling the others' errors
 * only at its INFO verbosity (off). Found giving --host a name that also resolved to another
 * machine's address: the service said "listening on name:port" alone. Looked up again here, as
 * grpc-js did; a name that no longer resolves (within START_LOOKUP_TIMEOUT_MS) says nothing.
 */
async function warnUnbound(
  host: string,
  port: number,
  added: readonly (Http2Server | Http2SecureServer)[],
  log: Logger,
): Promise<void> {
  const bound = addressesOf(added);
  let resolved: readonly string[];
  try {
    resolved = [...new Set(await lookupWithin(lookupAll, host))];
  } catch {
    return;
  }
  const unbound = resolved.filter((address) => !bound.some((one) => sameIpAddress(address, one)));
  if (unbound.length === 0) return;
  log.warn(
    { event: 'unbound-address', host, port, bound, unbound },
    `${host} resolves to ${resolved.join(', ')}: listening on ${bound.map((one) => formatHostPort({ host: one, port })).join(', ')} only, ` +
      `not on ${unbound.join(', ')} (not an address of this machine, or port ${port} taken there)`,
  );
}

const ROOM_KEPT_MESSAGES: Record<RoomKept, string> = {
  evicted: 'connection limit reached: closed a connection with no call open to make room',
  displaced:
    'connection limit reached with a call open on every connection: closed the newest connection of the address holding the most, to make room for another address',
  refused:
    'connection limit reached with a call open on every connection, and no address holding more than the new one: the new connection was closed',
};

/** How long a connection this side has ended may wait for the peer to end its side. */
const HALF_OPEN_GRACE_MS = 10_000;

/** The connection rooms of each server that {@link listen} bound, one per address, for {@link shutdown}. */
const roomsOf = new WeakMap<Server, ConnectionRoom[]>();

/**
 * Whether a method of a grpc-js server has its client stream its request (client-streaming and
 * bidi), from grpc-js's private map of handlers, read at each look so that services added after
 * binding count; throws, like http2ServersOf, if a grpc-js release keeps them elsewhere.
 */
function requestStreamingOf(server: Server): (path: string) => boolean {
  const handlers = (server as unknown as { handlers?: unknown }).handlers;
  if (!(handlers instanceof Map)) {
    throw new Error(
      'this grpc-js keeps its handlers elsewhere: calls whose request never arrives cannot be bounded',
    );
  }
  return (path) => {
    const type = (handlers.get(path) as { type?: string } | undefined)?.type;
    return type === 'bidi' || type === 'clientStream';
  };
}

/**
 * Destroys a connection `graceMs` after this side ended it, if the peer has not closed it
 * by then. grpc-js closes an idle connection gracefully (GOAWAY, then ending the socket) and stops
 * its keepalive there, so a peer that never closes its side would keep the socket, counted against
 * `maxConnections`, for ever.
 */
function closeWhenHalfOpen(socket: Socket, graceMs: number): void {
  socket.once('finish', () => {
    const timer = setTimeout(() => socket.destroy(), graceMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

/**
 * The HTTP/2 servers a grpc-js server made for its ports: grpc-js keeps them in a private map, which
 * the project reaches for what grpc-js has no setting for (a connection limit, stream admission).
 * Throws if a grpc-js release keeps them elsewhere, so that an upgrade cannot drop a bound silently.
 */
export function http2ServersOf(server: Server): (Http2Server | Http2SecureServer)[] {
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map)) {
    throw new Error('this grpc-js keeps its HTTP/2 servers elsewhere: its connections cannot be bounded');
  }
  return [...http2Servers.keys()] as (Http2Server | Http2SecureServer)[];
}

/**
 * The HTTP/2 sessions open on a server's ports, as grpc-js itself keeps them (by port, from the
 * moment each was accepted: grpc-js's 'session' listener is wired at the bind, where a listener of
 * ours wired once `listen` resolved would miss those accepted meanwhile, as during its lookup of a
 * host name).
 */
export function http2SessionsOf(
  server: Server,
): { http2Server: Http2Server | Http2SecureServer; sessions: ServerHttp2Session[] }[] {
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map)) {
    throw new Error('this grpc-js keeps its HTTP/2 servers elsewhere: their sessions cannot be found');
  }
  return [...http2Servers].map(([http2Server, record]) => {
    const sessions = (record as { sessions?: unknown } | undefined)?.sessions;
    if (!(sessions instanceof Set)) {
      throw new Error('this grpc-js keeps the sessions of its ports elsewhere: they cannot be found');
    }
    return { http2Server, sessions: [...sessions] as ServerHttp2Session[] };
  });
}

/**
 * Stops a server: new calls are refused at once, calls in flight get `graceMs` to finish, and
 * whatever is left after that is cancelled, its connections destroyed: grpc-js's forceShutdown
 * leaves a connection that never became an HTTP/2 session (a client that never sent its preface),
 * and the server's close waits for it.
 */
export function shutdown(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(force);
      resolve();
    };
    const force = setTimeout(() => {
      server.forceShutdown();
      for (const room of roomsOf.get(server) ?? []) room.destroyAll();
    }, graceMs);
    force.unref();
    // Once every port has closed, its connections are all gone, calls and all. grpc-js's own
    // callback may never come: it waits for each session with close(), which never calls back on
    // a session already destroyed and not yet closed (one its client reset, or a room closed, in
    // the turn the stop began: likely under a flood of connections), and the stop hung for ever.
    const http2Servers = http2ServersOf(server).filter((http2Server) => http2Server.listening);
    let open = http2Servers.length;
    for (const http2Server of http2Servers) {
      http2Server.once('close', () => {
        open -= 1;
        if (open === 0) done();
      });
    }
    server.tryShutdown(done);
  });
}
