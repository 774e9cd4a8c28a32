import { type ChannelCredentials, type ChannelOptions, connectivityState } from '@grpc/grpc-js';
import { DistributorServiceClient } from '../gen/distributor.js';

/**
 * How long a connection attempt to the distributor may last before a new one is made, by default:
 * gRPC's connection-backoff spec gives an attempt 20 s at least; a TCP connect and a TLS handshake
 * take far less on any link a shop runs on, and the sooner a hung attempt is replaced, the sooner a
 * node is registered again once the distributor's host can be reached.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

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
  #closed = false;

  constructor(
    address: string,
    credentials: ChannelCredentials,
    options: ChannelOptions,
    readonly connectTimeoutMs = CONNECT_TIMEOUT_MS,
  ) {
    // A shared subchannel would be the hung one again: grpc-js keys its pool by address and options.
    this.#make = () =>
      new DistributorServiceClient(address, credentials, { ...options, 'grpc.use_local_subchannel_pool': 1 });
    this.#client = this.#make();
  }

  /** The client to make calls with now; a later one after a replacement. */
  get client(): DistributorServiceClient {
    return this.#client;
  }

  /**
   * If the channel is still connecting, replaces it with a new one and says so; calls still waiting
   * on the old channel fail with UNAVAILABLE. A channel that is connected, idle or failed (it tries
   * again by its own backoff) is kept.
   */
  replaceIfConnecting(): boolean {
    if (this.#closed) return false;
    if (this.#client.getChannel().getConnectivityState(false) !== connectivityState.CONNECTING) return false;
    const hung = this.#client;
    this.#client = this.#make();
    hung.close();
    return true;
  }

  close(): void {
    this.#closed = true;
    this.#client.close();
  }
}
