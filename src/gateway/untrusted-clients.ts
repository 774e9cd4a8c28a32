import type { X509Certificate } from 'node:crypto';
import type { Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../common/logger.js';
import { chainTrustedBy, peerChainOf } from '../common/peer-chain.js';
import type { Connection, ConnectionTracker } from './connection-tracker.js';

/** Options of {@link closeUntrustedClients}. */
export interface UntrustedClientsOptions {
  /** The HTTPS server's connections, those the client-certificate gate let through. */
  connections: ConnectionTracker;
  log: Logger;
  /** How long the answers under way on a connection closed may take (see Connection.closeAfterAnswers). */
  graceMs: number;
  /** The client CA file, and the setting that gave it ("--https-client-ca (GATEWAY_HTTPS_CLIENT_CA)"), for the log. */
  caFile?: string;
  setting?: string;
}

/** What the client-CA file's watcher tells (TlsRefreshOptions.onCaTaken). */
export interface UntrustedClients {
  caTaken(authorities: readonly X509Certificate[]): void;
}

/**
 * Closes the HTTPS connections whose client certificate no longer chains to a CA of the client-CA
 * file once a changed one was taken: TLS checks a client's CA at its handshake only, so a client of
 * a CA removed (because it leaked) kept its keep-alive connections, and was served on them, until
 * it left. Each is closed as a keep-alive connection is (see Connection.closeAfterAnswers: the
 * answers under way go, saying `Connection: close`), with one warning (`untrusted-after-ca-change`,
 * the client's address and its certificate's issuer). Its client's next connection is a new
 * handshake, which the new file refuses (answered 403 by the client-certificate gate): a session
 * ticket of before does not resume, since a new secure context has new ticket keys. Connections
 * still chaining to a CA of the file are left alone (a CA added closes none), and so are those the
 * gate refused, which are already being answered and closed.
 *
 * A handshake begun before the change is checked against the CAs of before (its secure context is
 * the one of its start) and may end after the check: from the first change on, every connection
 * served is checked as it opens too (a signature verified, beside the handshake's own), for as
 * long as the gateway runs, since no public API tells when a handshake began.
 *
 * Call after gateClientCertificates, so that this sees a connection once the tracker serves it.
 */
export function closeUntrustedClients(
  server: HttpsServer,
  options: UntrustedClientsOptions,
): UntrustedClients {
  const { connections, log, graceMs } = options;
  const file = `the client CA file${options.caFile === undefined ? '' : ` "${options.caFile}"`}${options.setting === undefined ? '' : ` (${options.setting})`}`;
  let trusted: readonly X509Certificate[] | undefined;
  const check = (connection: Connection, authorities: readonly X509Certificate[]): void => {
    const socket = connection.socket as TLSSocket;
    if (connection.closing || socket.destroyed || !socket.authorized) return;
    const chain = peerChainOf(socket);
    // No client certificate: none is asked for without a client CA, and with one the gate serves none.
    if (chain.length === 0 || chainTrustedBy(chain, authorities)) return;
    const inFlight = connection.inFlight;
    log.warn(
      {
        event: 'untrusted-after-ca-change',
        peer: socket.remoteAddress,
        port: socket.remotePort,
        issuer: chain[0]!.issuer,
        requestsInFlight: inFlight,
      },
      `closed the HTTPS connection of ${socket.remoteAddress}:${socket.remotePort}${inFlight === 0 ? '' : ` once its ${inFlight === 1 ? 'request in flight is' : `${inFlight} requests in flight are`} answered`}: its client certificate's CA is no longer in ${file}`,
    );
    connection.closeAfterAnswers(graceMs);
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    if (trusted === undefined) return;
    const connection = connections.of(socket);
    if (connection) check(connection, trusted);
  });
  return {
    caTaken(authorities) {
      // A file of no CA is refused before it is taken (checkTlsMaterial): never a reason to close all.
      if (authorities.length === 0) return;
      trusted = authorities;
      for (const connection of [...connections.connections()]) check(connection, authorities);
    },
  };
}
