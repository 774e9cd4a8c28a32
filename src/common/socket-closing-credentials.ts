import type { Socket } from 'node:net';
import { ChannelCredentials } from '@grpc/grpc-js';

type SecureConnector = ReturnType<ChannelCredentials['_createSecureConnector']>;

/**
 * The credentials of one channel, wrapping its real ones, that remember the sockets it connected, so
 * that a channel given up on while it connects can have its attempt ended: grpc-js's close() leaves
 * an attempt in progress open, and one that got a TCP connection waits for the server's HTTP/2
 * settings without a limit. A channel replaced every connect timeout would leak one socket each
 * time to a peer that accepts and never speaks (a hung process, a proxy holding the connection).
 * An attempt still waiting on its SYN is not reached: the kernel ends it (about two minutes).
 */
export class SocketClosingCredentials extends ChannelCredentials {
  readonly #inner: ChannelCredentials;
  readonly #sockets = new Set<Socket>();
  /**
   * Why the channel's last secure handshake failed (another CA, a certificate for another name,
   * the connection dropped in the handshake), until one succeeds: grpc-js keeps it to itself until
   * a call fails, and a warning about a channel that never connected needs it.
   */
  lastHandshakeFailure: string | undefined;

  constructor(inner: ChannelCredentials) {
    super();
    this.#inner = inner;
  }

  override _isSecure(): boolean {
    return this.#inner._isSecure();
  }

  override _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  override _createSecureConnector(
    ...args: Parameters<ChannelCredentials['_createSecureConnector']>
  ): SecureConnector {
    const connector = this.#inner._createSecureConnector(...args);
    return {
      connect: (socket) => {
        this.#sockets.add(socket);
        socket.once('close', () => this.#sockets.delete(socket));
        const secured = connector.connect(socket);
        secured.then(
          () => {
            this.lastHandshakeFailure = undefined;
          },
          (error: unknown) => {
            this.lastHandshakeFailure = handshakeFailureOf(error);
          },
        );
        return secured;
      },
      waitForReady: () => connector.waitForReady(),
      getCallCredentials: () => connector.getCallCredentials(),
      destroy: () => connector.destroy(),
    };
  }

  /** Bytes received so far on the channel's connections still open: any growth shows its peer alive. */
  bytesRead(): number {
    let total = 0;
    for (const socket of this.#sockets) total += socket.bytesRead;
    return total;
  }

  /** Ends every connection of the channel still open: for a channel closed while it connects. */
  destroySockets(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }
}

/**
 * An error of a handshake in a few words: OpenSSL's reason ("wrong version number") where it gives
 * one, rather than its whole error string (an address, a source file and a line end, which a
 * warning would carry on two lines).
 */
function handshakeFailureOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { reason } = error as { reason?: unknown };
  return typeof reason === 'string' && reason !== '' ? reason : error.message;
}
