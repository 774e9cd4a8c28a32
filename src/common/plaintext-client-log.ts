import type { TLSSocket, Server as TlsServer } from 'node:tls';
import { addressGroupOf, unmappedAddress } from './address-group.js';
import type { Logger } from './logger.js';

/**
 * The handshake errors of a client that spoke no TLS at all, as OpenSSL names them: an HTTP/2
 * preface, or anything else not a TLS record ("wrong version number"), an HTTP/1 request ("http
 * request") or proxy request ("https proxy request"). A client that speaks TLS and fails for
 * another reason (no certificate, a certificate of another CA) is not one of them.
 */
const PLAINTEXT_CODES = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_HTTPS_PROXY_REQUEST',
]);

/**
 * The handshake error of a TLS client that presented no certificate to a server that requires one
 * (mutual TLS): a tool run without its certificate, or somebody without one of the CA's. (A client
 * with a certificate of another CA is dropped by Node after the handshake, without an error: see
 * the 'keylog' listener below.)
 */
const NO_CERTIFICATE_CODE = 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE';

/** Verification errors of a client certificate that is of the CA but not valid now (OpenSSL's codes). */
const CLOCK_CODES = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** One line per address (an IPv6 one per /64) within this long: a plaintext client retries every second or so. */
export const PLAINTEXT_CLIENT_LOG_INTERVAL_MS = 60_000;

/** Addresses remembered at once; past it the one told longest ago is forgotten (a scan of many). */
export const PLAINTEXT_CLIENT_MAX_ADDRESSES = 1024;

/**
 * Warns when a client speaks plaintext to a TLS port, speaks TLS without the client certificate
 * the port requires, or presents one the port's CA file does not issue (or an expired one), once per address group (see addressGroupOf) and kind per interval. Node drops such a client in its TLS
 * layer, before grpc-js sees a connection, and says nothing; the client sees a connection closed
 * without a reason. Listens to the TLS server's own 'tlsClientError' event.
 */
export function logPlaintextClients(
  server: TlsServer,
  log: Logger,
  { intervalMs = PLAINTEXT_CLIENT_LOG_INTERVAL_MS, maxAddresses = PLAINTEXT_CLIENT_MAX_ADDRESSES } = {},
): void {
  // Kind and address group → when it was last told, least recently told first. By group, as the
  // distributor's refusals are: an IPv6 client can take a new address of its /64 for every
  // connection, and each would be a line.
  const toldAt = new Map<string, number>();
  /** Whether `kind` from `address` is to be told now; remembers that it was. */
  const news = (kind: string, address: string): boolean => {
    const key = `${kind} ${addressGroupOf(address)}`;
    const now = performance.now();
    const before = toldAt.get(key);
    if (before !== undefined && now - before < intervalMs) return false;
    toldAt.delete(key);
    toldAt.set(key, now);
    if (toldAt.size > maxAddresses) toldAt.delete(toldAt.keys().next().value!);
    return true;
  };
  const addressOf = (socket: TLSSocket): string =>
    socket.remoteAddress === undefined ? 'an unknown address' : unmappedAddress(socket.remoteAddress);
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    const noCertificate = error.code === NO_CERTIFICATE_CODE;
    if (error.code === undefined || (!noCertificate && !PLAINTEXT_CODES.has(error.code))) return;
    const address = addressOf(socket);
    if (!news(noCertificate ? 'no-certificate' : 'plaintext', address)) return;
    if (noCertificate) {
      log.warn(
        { event: 'no-client-certificate', address, errorCode: error.code },
        `a client at ${address} presented no certificate to this mutual-TLS port and was refused; a tool needs one issued by this component's CA (the operator certificate of npm run certs)`,
      );
      return;
    }
    log.warn(
      { event: 'plaintext-client', address, errorCode: error.code },
      `a client at ${address} spoke plaintext to this TLS port; give it TLS files (TLS_DIR (--tls-dir), or TLS_CA, TLS_CERT and TLS_KEY)`,
    );
  });
  // A client certificate the CA file does not issue (a host given another npm run certs run's
  // files), or an expired one, passes OpenSSL's handshake: Node checks it just after and destroys
  // the socket without an event, so neither side said why. 'keylog' is the server's one event that
  // hands over each TLS socket during its handshake (its lines, the session's secrets, are ignored);
  // the socket's authorizationError then tells at its close.
  // Only a port that requires a client certificate refuses one: elsewhere the listener would make
  // Node hand over every handshake's secrets for nothing. (Set when the port is made, for good: a
  // component has a CA file, or not, from its start.)
  const { requestCert, rejectUnauthorized } = server as TlsServer & {
    requestCert?: boolean;
    rejectUnauthorized?: boolean;
  };
  if (!requestCert || !rejectUnauthorized) return;
  const watched = new WeakSet<TLSSocket>();
  server.on('keylog', (_line: Buffer, socket: TLSSocket) => {
    if (watched.has(socket)) return;
    watched.add(socket);
    // Read now: a destroyed socket no longer knows its peer.
    const address = addressOf(socket);
    socket.once('close', () => {
      // A string (OpenSSL's code) despite its type; unset when the certificate was taken.
      const reason = socket.authorizationError as unknown as string | undefined;
      if (socket.authorized || !reason) return;
      if (!news('untrusted-certificate', address)) return;
      const why = CLOCK_CODES.has(reason)
        ? `a certificate that is not valid now (${reason}): renew it (npm run certs), or set the clock of the host that is wrong`
        : `a certificate that this component's CA file (TLS_CA, or ca.crt in TLS_DIR) does not issue (${reason}): give it one of this CA, or add its CA to this CA file`;
      log.warn(
        { event: 'untrusted-client-certificate', address, errorCode: reason },
        `a client at ${address} presented ${why}; it was refused`,
      );
    });
  });
}
