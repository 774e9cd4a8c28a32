import type { Socket } from 'node:net';
import { ChannelCredentials } from '@grpc/grpc-js';

type SecureConnector = ReturnType<ChannelCredentials['_createSecureConnector']>;

/**
 * The credentials of one channel, wrapping its real ones, that remember the sockets it connected, so
 * that a channel given up on while it connects can have its attempt ended: grpc-js's close() leaves
 * an attempt in progress open, and one that got a TCP connection waits for the server's HTTP/2
 * settings without a limit. A channel replaced every connect timeout would leak one socket each
 * time to a peer that accepts and never speaks (a hung process, a proxy holding the connection).
 * An attempt still waiting on its SYN is ended as it connects, if it does (see destroySockets).
 */
export class SocketClosingCredentials extends ChannelCredentials {
  readonly #inner: ChannelCredentials;
  readonly #sockets = new Set<Socket>();
  /**
   * The connected sockets still open of the subchannel grpc-js picked last (one connector each), in
   * the order they connected (secured, when secure): see localEndpoint.
   */
  #picked: ReadonlySet<Socket> | undefined;
  /**
   * Why the channel's last secure handshake failed (another CA, a certificate for another name,
   * the connection dropped in the handshake), until one succeeds: grpc-js keeps it to itself until
   * a call fails, and a warning about a channel that never connected needs it.
   */
  lastHandshakeFailure: string | undefined;
  /**
   * Whether grpc-js made a subchannel with these credentials: it makes one for each address the
   * channel's target resolves to, so a channel without one has not resolved its host name (yet).
   */
  resolvedAddress = false;
  /**
   * How many of the channel's TLS handshakes completed, from this side's view (none when
   * plaintext). A TLS 1.3 server checks the client's certificate after the client's side of the
   * handshake is done, and drops a connection whose certificate it does not take: a channel that
   * never connects while its handshakes complete is being refused so (see InstancePool's connect
   * timeout, and failedAttemptReason: the status page's `connections-dropped`).
   */
  handshakesCompleted = 0;
  /**
   * Told when this side ended a connection made (secured, when secure) and its peer said nothing
   * back within PEER_CLOSE_WAIT_MS: neither its own end (a live peer answers a FIN with its own at
   * once) nor a reset, and destroySockets did not end it. That is grpc-js giving up on the
   * connection while its peer is silent: a keepalive ping left unanswered for the keepalive timeout.
   * grpc-js then ends its side and leaves the socket half open, for minutes, to a host that drops
   * packets; a close of grpc-js's own (an idle channel) is answered, and a peer's (a restart, a
   * GOAWAY) comes from it.
   */
  readonly #onSilentClose: (() => void) | undefined;
  /**
   * Asked of each connection once its handshake completed; an error refuses it: the connection is
   * closed, and the attempt fails with that error, as a failed handshake does.
   */
  readonly #refuse: ((connection: Socket) => Error | undefined) | undefined;
  /**
   * Set by destroySockets: the channel is closed, and a connection attempt it had begun without a
   * socket yet (closed in the same turn it was told to connect) still makes one, which grpc-js
   * then keeps open to the peer for good: it is ended as it connects.
   */
  #closedAll = false;
  /** Sockets destroySockets closed: their end says nothing of the peer. */
  readonly #destroyed = new WeakSet<Socket>();
  /**
   * The connections still open whose handshake completed, by what they were secured as (the
   * TLSSocket over the TCP socket, when secure), each with its TCP socket: see securedConnections.
   */
  readonly #secured = new Map<Socket, Socket>();

  constructor(
    inner: ChannelCredentials,
    onSilentClose?: () => void,
    refuse?: (connection: Socket) => Error | undefined,
  ) {
    super();
    this.#inner = inner;
    this.#onSilentClose = onSilentClose;
    this.#refuse = refuse;
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
    this.resolvedAddress = true;
    /** This subchannel's connected sockets still open, in the order they connected. */
    const connected = new Set<Socket>();
    return {
      connect: (socket) => {
        if (this.#closedAll) {
          this.#destroyed.add(socket);
          socket.destroy();
        }
        this.#sockets.add(socket);
        socket.once('close', () => this.#sockets.delete(socket));
        const handshake = connector.connect(socket);
        const refuse = this.#refuse;
        const secured =
          refuse === undefined
            ? handshake
            : handshake.then((result) => {
                const refusal = refuse(result.socket);
                if (refusal === undefined) return result;
                // grpc-js closes the connection of an attempt that failed.
                this.#destroyed.add(socket);
                throw refusal;
              });
        secured.then(
          ({ socket: connection }) => {
            this.lastHandshakeFailure = undefined;
            // A plaintext connection has no handshake: its peer closing it says nothing of a certificate.
            if (this.#inner._isSecure()) this.handshakesCompleted += 1;
            if (!socket.destroyed) {
              connected.add(socket);
              this.#secured.set(connection, socket);
              socket.once('close', () => {
                connected.delete(socket);
                this.#secured.delete(connection);
              });
            }
            if (this.#onSilentClose === undefined) return;
            const onSilentClose = this.#onSilentClose;
            connection.once('finish', () => {
              const wait = setTimeout(() => {
                const answered = connection.readableEnded || connection.errored !== null;
                if (!answered && !this.#destroyed.has(socket)) onSilentClose();
              }, PEER_CLOSE_WAIT_MS);
              wait.unref();
            });
          },
          (error: unknown) => {
            this.lastHandshakeFailure = handshakeFailureOf(error);
          },
        );
        return secured;
      },
      waitForReady: () => connector.waitForReady(),
      // grpc-js asks the picked subchannel for these as it starts a call, right before it has the
      // call's own credentials make their metadata (see localEndpoint).
      getCallCredentials: () => {
        this.#picked = connected;
        return connector.getCallCredentials();
      },
      destroy: () => connector.destroy(),
    };
  }

  /** Bytes received so far on the channel's connections still open: any growth shows its peer alive. */
  bytesRead(): number {
    let total = 0;
    for (const socket of this.#sockets) total += socket.bytesRead;
    return total;
  }

  /**
   * This side's address ("127.0.0.1:53124", "[::1]:53124") of the newest open connection of the
   * subchannel grpc-js picked last: read by a call's credentials as they make its metadata, the
   * connection that call goes out on. Not the channel's newest connection: with two addresses (a
   * name with A and AAAA records), grpc-js connects to the second after 250 ms without an answer
   * from the first, picks whichever answers first and drops the other, which may have connected
   * last (a proof named it, and the distributor refused the call for good).
   */
  localEndpoint(): { address: string; port: number } | undefined {
    let newest: Socket | undefined;
    for (const socket of this.#picked ?? []) newest = socket;
    if (newest?.localAddress === undefined || newest.localPort === undefined) return undefined;
    return { address: newest.localAddress, port: newest.localPort };
  }

  /** Ends every connection of the channel still open: for a channel closed while it connects. */
  destroySockets(): void {
    this.#closedAll = true;
    for (const socket of this.#sockets) {
      this.#destroyed.add(socket);
      socket.destroy();
    }
    this.#sockets.clear();
  }

  /**
   * The channel's connections still open that completed their handshake, as they were secured: a
   * TLSSocket each when secure, whose peer's certificates say whom it was made with (a CA file that
   * changed since may no longer trust them: see InstancePool.stopUsingUntrusted).
   */
  securedConnections(): Socket[] {
    return [...this.#secured.keys()];
  }

  /** Ends one connection of securedConnections, as destroySockets ends them all. */
  destroyConnection(secured: Socket): void {
    const socket = this.#secured.get(secured);
    if (socket === undefined) return;
    this.#destroyed.add(socket);
    socket.destroy();
    secured.destroy();
  }
}

/**
 * How long a peer has to answer this side's end of a connection (with its own end, or a reset)
 * before it is taken for silent (see SocketClosingCredentials' onSilentClose): a round trip, with
 * room for a busy peer.
 */
const PEER_CLOSE_WAIT_MS = 1_000;

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
