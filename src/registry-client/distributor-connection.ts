import type { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { type ChannelCredentials, type ChannelOptions, connectivityState } from '@grpc/grpc-js';
import { serverStillTrusted } from '../common/peer-chain.js';
import { channelOptionsFor } from '../common/proxy-choice.js';
import { SocketClosingCredentials } from '../common/socket-closing-credentials.js';
import { DistributorServiceClient } from '../gen/distributor.js';

/**
 * How long a connection attempt to the distributor may last before a new one is made, by default:
 * gRPC's connection-backoff spec gives an attempt 20 s at least; a TCP connect and a TLS handshake
 * take far less on any link a shop runs on, and the sooner a hung attempt is replaced, the sooner a
 * node is registered again once the distributor's host can be reached.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The least time between two resolutions of the distributor's host name. grpc-js resolves a name
 * again when a connection is lost, but by default no sooner than 30 s after the last resolution: a
 * distributor moved to another address under its DNS name (stopped, started on another host, the
 * name pointed there) was dialled at its old address until then, or until the channel was replaced
 * after CONNECT_TIMEOUT_MS; measured across network namespaces, gateways and services registered
 * again 8 to 13 s after the move, past the gateways' restart grace (7 s), so every gateway's
 * /readyz answered 503 meanwhile. Resolutions happen only while the connection is down.
 */
export const DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS = 1_000;

/**
 * The client of one distributor, whose channel is replaced when a connection attempt hangs.
 *
 * grpc-js has no connect timeout: an attempt to a host that drops packets (down, or behind a
 * firewall that drops) waits on one TCP connect until the kernel gives up, about two minutes, and
 * the channel tries nothing else meanwhile. Once the host is back, that socket learns it only at
 * its next SYN retransmission, up to a minute later. A new channel (with a subchannel of its own,
 * not grpc-js's shared one) sends a new SYN at once.
 */
export class DistributorConnection {
  readonly #make: () => DistributorServiceClient;
  #client: DistributorServiceClient;
  /** The client's credentials, to end its connection attempt when it is replaced. */
  #credentials: SocketClosingCredentials | undefined;
  /** Since when (performance.now()) the channel has been failed, if it is. */
  #failedSince: number | undefined;
  #closed = false;

  constructor(
    address: string,
    credentials: ChannelCredentials,
    options: ChannelOptions,
    readonly connectTimeoutMs = CONNECT_TIMEOUT_MS,
    /** Asked of each connection once its handshake completed: an error refuses it (see SocketClosingCredentials). */
    refuse?: (connection: Socket) => Error | undefined,
  ) {
    // A shared subchannel would be the hung one again: grpc-js keys its pool by address and options.
    this.#make = () => {
      this.#credentials = new SocketClosingCredentials(credentials, undefined, refuse);
      return new DistributorServiceClient(
        address,
        this.#credentials,
        channelOptionsFor(address, {
          'grpc.dns_min_time_between_resolutions_ms': DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS,
          ...options,
          'grpc.use_local_subchannel_pool': 1,
        }),
      );
    };
    this.#client = this.#make();
    this.#follow(this.#client);
  }

  /**
   * The client to make calls with now; a later one after a replacement. A channel failed for
   * `connectTimeoutMs` is replaced here: grpc-js reports it TRANSIENT_FAILURE until an attempt
   * succeeds, however long its next attempt hangs, and fails every call at once meanwhile, so no
   * stream waits on it to be cut (see replaceIfConnecting).
   */
  get client(): DistributorServiceClient {
    if (
      !this.#closed &&
      this.#failedSince !== undefined &&
      performance.now() - this.#failedSince >= this.connectTimeoutMs
    ) {
      this.#replace();
    }
    return this.#client;
  }

  /**
   * If the channel is still connecting, replaces it with a new one and says so; calls still waiting
   * on the old channel fail with UNAVAILABLE. A channel that is connected, idle or failed is kept
   * (a failed one fails calls at once; see `client`).
   */
  replaceIfConnecting(): boolean {
    if (this.#closed) return false;
    if (this.#client.getChannel().getConnectivityState(false) !== connectivityState.CONNECTING) return false;
    this.#replace();
    return true;
  }

  #replace(): void {
    const hung = this.#client;
    const hungCredentials = this.#credentials;
    this.#client = this.#make();
    this.#failedSince = undefined;
    this.#follow(this.#client);
    hung.close();
    hungCredentials?.destroySockets();
  }

  /** Follows the state of the current client's channel, for how long it has been failed. */
  #follow(client: DistributorServiceClient): void {
    const channel = client.getChannel();
    const follow = (): void => {
      const state = channel.getConnectivityState(false);
      if (this.#client !== client || state === connectivityState.SHUTDOWN) return;
      if (state !== connectivityState.TRANSIENT_FAILURE) this.#failedSince = undefined;
      else this.#failedSince ??= performance.now();
      channel.watchConnectivityState(state, Infinity, follow);
    };
    follow();
  }

  /** This side's address of the current channel's connection, if it has one (see SocketClosingCredentials). */
  localEndpoint(): { address: string; port: number } | undefined {
    return this.#credentials?.localEndpoint();
  }

  /** Whether the channel speaks TLS. */
  get secure(): boolean {
    return this.#credentials?._isSecure() ?? false;
  }

  /**
   * Whether the server of every connection the channel has open still chains to `authorities` (the
   * CA file as it is now; see serverStillTrusted). A handshake still under way is not among them.
   */
  trustedBy(authorities: readonly X509Certificate[]): boolean {
    return (this.#credentials?.securedConnections() ?? []).every((connection) =>
      serverStillTrusted(connection, authorities),
    );
  }

  /** Closes the client and ends its connections at once, calls on them or not: for a server no longer trusted. */
  closeNow(): void {
    this.#closed = true;
    this.#client.close();
    this.#credentials?.destroySockets();
  }

  /** Closes the client, and ends its connection attempt if it is still connecting (see #replace). */
  close(): void {
    this.#closed = true;
    const connected = this.#client.getChannel().getConnectivityState(false) === connectivityState.READY;
    this.#client.close();
    if (!connected) this.#credentials?.destroySockets();
  }
}
