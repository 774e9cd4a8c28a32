import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { formatHostPort } from '../common/config.js';
import { peerChainOf } from '../common/peer-chain.js';

/** A connection to an instance whose server certificate the CA file no longer trusts, as a log names it. */
export interface UntrustedConnection {
  /** The instance's end of it: "address:port". */
  readonly peer: string;
  /** The issuer of the server's certificate, as its subject reads ("CN=…"), on one line. */
  readonly issuer: string | undefined;
}

/**
 * How long calls in flight on a connection whose server is no longer trusted have to end before it
 * is closed with them: as the distributor gives the registry streams of a removed CA. No new call
 * goes over it meanwhile.
 */
export const UNTRUSTED_CONNECTION_GRACE_MS = 1_000;

/** Why a connection whose handshake began before the CA file changed was refused once it completed. */
export const UNTRUSTED_SERVER =
  "the server's certificate chains to no CA of the TLS CA file taken while its handshake was under way";

/** Names a connection to an untrusted server for a log: the instance's address and its certificate's issuer. */
export function describeUntrusted(connection: Socket): UntrustedConnection {
  const leaf = connection instanceof TLSSocket ? peerChainOf(connection)[0] : undefined;
  return {
    peer: formatHostPort({ host: connection.remoteAddress ?? '?', port: connection.remotePort ?? 0 }),
    issuer: leaf?.issuer.replaceAll('\n', ', '),
  };
}
