import type { IncomingMessage, Server } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';

/** One connection's count of requests in flight; its owner calls requestEnded() once per request. */
export class Connection {
  /** Requests received on it and not yet answered or abandoned. */
  inFlight = 0;
  /** Closes a connection that has not sent its first request in time. */
  firstRequestTimer: NodeJS.Timeout | undefined;

  requestEnded(): void {
    this.inFlight--;
  }
}

/**
 * Watches an HTTP server's connections for what Node's own timeouts miss.
 *
 * - A connection that opens and sends nothing is closed after `firstRequestTimeoutMs`: Node's
 *   headersTimeout counts only from a request's first byte, and closeIdleConnections() does not
 *   count a connection that never sent a request as idle, so a silent socket would otherwise live
 *   forever (and hold a graceful stop until its grace period ran out).
 * - At stop, {@link closeIdle} closes every connection with no request in flight at once.
 */
export class ConnectionTracker {
  readonly #connections = new Map<Socket, Connection>();
  readonly #firstRequestTimeoutMs: number;

  constructor(server: Server | HttpsServer, firstRequestTimeoutMs: number) {
    this.#firstRequestTimeoutMs = firstRequestTimeoutMs;
    // Over HTTPS a request's socket is the TLS socket, which exists once the handshake is done.
    const event = server instanceof HttpsServer ? 'secureConnection' : 'connection';
    server.on(event, (socket: Socket) => this.#opened(socket));
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
    if (connection.firstRequestTimer) {
      clearTimeout(connection.firstRequestTimer);
      connection.firstRequestTimer = undefined;
    }
    return connection;
  }

  /** Closes every connection that has no request in flight (keep-alive and silent ones alike). */
  closeIdle(): void {
    for (const [socket, state] of this.#connections) {
      if (state.inFlight === 0) socket.destroy();
    }
  }

  #opened(socket: Socket): void {
    const timer = setTimeout(() => {
      if (this.#connections.get(socket)?.firstRequestTimer === timer) socket.destroy();
    }, this.#firstRequestTimeoutMs);
    timer.unref();
    const connection = new Connection();
    connection.firstRequestTimer = timer;
    this.#connections.set(socket, connection);
    socket.once('close', () => {
      clearTimeout(this.#connections.get(socket)?.firstRequestTimer);
      this.#connections.delete(socket);
    });
  }
}
