import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { FirstBytesWait } from './first-bytes-wait.js';

/** Options of {@link divertPlainHttp}. */
export interface PlainHttpDivertOptions {
  /** How long a new connection may take to send its first byte (then it is closed). */
  firstByteTimeoutMs: number;
  /** Given each connection whose first bytes are plain HTTP, paused, with those bytes read: answer it and close it. */
  onPlainHttp: (socket: Socket) => void;
}

/**
 * Hands an HTTPS server's new connections to TLS only once their first byte shows a TLS record,
 * and the others, plain HTTP sent to the port by mistake (`curl http://...`), to `onPlainHttp`,
 * which can answer them in plain HTTP: TLS alone closes them in its handshake with no word, and the
 * client reports an empty reply. A TLS handshake record starts with byte 22 (0x16), every record
 * with a content type of 20 to 24, and an HTTP request with its method's first letter (an HTTP/2
 * preface too: "PRI"), so one byte tells them apart. Anything else goes to TLS, as before.
 *
 * One read per connection, before TLS takes it: the byte is put back (unshift) and TLS, given the
 * socket as Node lets a caller inject a connection (by emitting 'connection'), reads what the
 * socket holds before anything else. The TLS handshake timeout starts then, so a connection that
 * sends nothing is closed after `firstByteTimeoutMs` by this instead.
 */
export function divertPlainHttp(server: HttpsServer, options: PlainHttpDivertOptions): PlainHttpDivert {
  // The TLS server's own listener, which wraps the socket in a TLSSocket: called once the first byte says TLS.
  const tlsListeners = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const waiting = new FirstBytesWait(options.firstByteTimeoutMs);
  const open = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    // Until TLS takes it, a reset would be an unhandled 'error' on this socket.
    socket.on('error', ignore);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    waiting.watch(socket, (chunk) => {
      if (startsLikeHttp(chunk)) {
        options.onPlainHttp(socket);
        return;
      }
      socket.removeListener('error', ignore);
      socket.unshift(chunk);
      for (const listener of tlsListeners) listener.call(server, socket);
    });
  });
  return {
    destroyWaiting: () => waiting.destroyWaiting(),
    destroyAll: () => {
      for (const socket of open) socket.destroy();
      open.clear();
    },
  };
}

/** The connections an HTTPS server holds before their first byte, which no HTTP-level close reaches. */
export interface PlainHttpDivert {
  /**
   * Closes every connection that has sent nothing yet: at stop, the server's close waits for every
   * connection, and one that stays silent would hold it for `firstByteTimeoutMs`.
   */
  destroyWaiting(): void;
  /**
   * Closes every connection still open, mid-handshake ones included, which the HTTP server's
   * closeAllConnections() does not know: when a stop's grace runs out, none may hold it longer.
   */
  destroyAll(): void;
}

/** Whether bytes begin as an HTTP/1 request (or an HTTP/2 preface) does: an uppercase ASCII letter. */
function startsLikeHttp(bytes: Buffer): boolean {
  const first = bytes[0] ?? 0;
  return first >= 0x41 && first <= 0x5a;
}

function ignore(): void {}
