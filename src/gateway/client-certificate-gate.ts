import type { Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { FirstBytesWait } from './first-bytes-wait.js';

/** Options of {@link gateClientCertificates}. */
export interface ClientCertificateGateOptions {
  /** How long a refused connection may take to send its request (then it is closed). */
  firstByteTimeoutMs: number;
  /**
   * Given each connection whose client certificate did not check out (none, or not the client
   * CA's), paused, once its first bytes are read: answer it and close it.
   */
  onRefused: (socket: TLSSocket) => void;
}

/**
 * Hands an HTTPS server's connections to HTTP only when their client certificate checked out
 * against the client CA (`socket.authorized`), and the others to `onRefused`, which can answer
 * them in HTTP over the finished handshake, saying why. Refused by TLS itself
 * (`rejectUnauthorized`), a client with no certificate read a bare TLS alert, and one with a
 * certificate of another CA a reset ("Connection reset by peer", SSL_ERROR_SYSCALL over TLS 1.2),
 * while the gateway logged nothing. The server must be created with `requestCert` and
 * `rejectUnauthorized: false`: no connection that failed the check reaches the HTTP server, whose
 * listeners are called here only for those that passed.
 */
export function gateClientCertificates(
  server: HttpsServer,
  options: ClientCertificateGateOptions,
): ClientCertificateGate {
  // The HTTP server's own listener (and any added before this), which parses requests on the socket.
  const httpListeners = server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
  server.removeAllListeners('secureConnection');
  const waiting = new FirstBytesWait(options.firstByteTimeoutMs);
  server.on('secureConnection', (socket: TLSSocket) => {
    if (checkedOut(socket)) {
      for (const listener of httpListeners) listener.call(server, socket);
      return;
    }
    // No HTTP server holds it: a reset would be an unhandled 'error' on this socket.
    socket.on('error', ignore);
    // Answered once the client has sent its request: written before it, some clients take the
    // answer for a connection closed under them.
    waiting.watch(socket, () => options.onRefused(socket));
  });
  return { destroyWaiting: () => waiting.destroyWaiting() };
}

/** The refused connections that have not sent their request yet. */
export interface ClientCertificateGate {
  /** Closes them: at stop, the server's close would wait for each up to `firstByteTimeoutMs`. */
  destroyWaiting(): void;
}

/**
 * Whether a connection's client certificate checked out. `authorized` alone is not enough: node:tls
 * says authorized a TLS 1.3 session resumed without a peer certificate (it takes it for a PSK), and
 * a refused client, whose handshake now completes, is given session tickets; resuming one, a client
 * that never sent a certificate was served. A session resumed from a checked certificate keeps it.
 */
function checkedOut(socket: TLSSocket): boolean {
  return socket.authorized && Object.keys(socket.getPeerCertificate()).length > 0;
}

function ignore(): void {}
