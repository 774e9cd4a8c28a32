import type { X509Certificate } from 'node:crypto';
import type { ServerHttp2Session } from 'node:http2';
import { type TLSSocket, Server as TlsServer } from 'node:tls';
import type { Server } from '@grpc/grpc-js';
import { http2ServersOf, http2SessionsOf } from './grpc-server.js';
import { chainTrustedBy, peerChainOf } from './peer-chain.js';

/** A TLS connection of a gRPC server whose client certificate no longer chains to its CA file. */
export interface UntrustedSession {
  readonly session: ServerHttp2Session;
  /** The client's address and port, as grpc-js names a call's peer (call.getPeer()). */
  readonly peer: string;
  readonly address: string | undefined;
  readonly port: number | undefined;
}

/**
 * The TLS connections open on a gRPC server's ports whose client certificate chain (verified at
 * their handshake) no longer chains to `authorities`, the server's CA file as just taken; and the
 * peers of those that still do. All the connections grpc-js holds are read, those accepted before
 * `listen` resolved too (see http2SessionsOf). A connection without a client certificate (TLS
 * without a CA file asks for none) was never trusted for a CA, so is never among them; nor is any
 * with `authorities` empty (no CA file: no client certificate is asked for).
 */
export function sessionsNoLongerTrusted(
  server: Server,
  authorities: readonly X509Certificate[],
): { untrusted: UntrustedSession[]; trustedPeers: Set<string> } {
  const untrusted: UntrustedSession[] = [];
  const trustedPeers = new Set<string>();
  if (authorities.length === 0) return { untrusted, trustedPeers };
  const tlsSessions = http2SessionsOf(server).flatMap(({ http2Server, sessions }) =>
    http2Server instanceof TlsServer ? sessions : [],
  );
  for (const session of tlsSessions) {
    const socket = session.socket as TLSSocket | undefined;
    if (session.destroyed || !socket?.authorized) continue;
    const chain = peerChainOf(socket);
    if (chain.length === 0) continue;
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    if (chainTrustedBy(chain, authorities)) trustedPeers.add(peer);
    else untrusted.push({ session, peer, address: socket.remoteAddress, port: socket.remotePort });
  }
  return { untrusted, trustedPeers };
}

/** How long a connection whose certificate's CA was removed may take to finish what it has under way. */
export const UNTRUSTED_SESSION_GRACE_MS = 1_000;

/**
 * Closes a connection no longer trusted: GOAWAY at once, so that no new call is taken on it (its
 * client makes a new connection, whose handshake the new CA file judges), and the statuses already
 * sent still go out; whatever has not ended after `graceMs` is cut with the connection.
 */
export function closeUntrustedSession(
  session: ServerHttp2Session,
  graceMs = UNTRUSTED_SESSION_GRACE_MS,
): void {
  session.close();
  setTimeout(() => session.destroy(), graceMs).unref();
}

/**
 * Closes the TLS connections of a gRPC server whose handshake ends after a change of its CA file
 * with a client certificate that no longer chains to it. A handshake is checked against the CAs of
 * its start (its secure context), so one begun before the change and ended after it (a client
 * holding back its certificate, up to the handshake timeout) escaped sessionsNoLongerTrusted,
 * which sees only connections made. From the first change on, every connection made is checked as
 * it opens (a signature verified, beside the handshake's own) for the life of the server, since no
 * public API tells when a handshake began. Such a connection carries no call yet: it is destroyed,
 * and `onClosed` told its client's address and port.
 */
export class LateHandshakeCheck {
  #trusted: readonly X509Certificate[] | undefined;
  readonly #onClosed: (address: string | undefined, port: number | undefined) => void;

  constructor(onClosed: (address: string | undefined, port: number | undefined) => void) {
    this.#onClosed = onClosed;
  }

  /** Follows the connections of `server`'s TLS ports: call once it listens. */
  watch(server: Server): void {
    for (const http2Server of http2ServersOf(server)) {
      if (!(http2Server instanceof TlsServer)) continue;
      http2Server.on('secureConnection', (socket: TLSSocket) => this.#check(socket));
    }
  }

  /** The CA file just taken: connections made from now on must chain to it. */
  caTaken(authorities: readonly X509Certificate[]): void {
    if (authorities.length > 0) this.#trusted = authorities;
  }

  #check(socket: TLSSocket): void {
    const trusted = this.#trusted;
    if (trusted === undefined || socket.destroyed || !socket.authorized) return;
    const chain = peerChainOf(socket);
    if (chain.length === 0 || chainTrustedBy(chain, trusted)) return;
    this.#onClosed(socket.remoteAddress, socket.remotePort);
    socket.destroy();
  }
}
