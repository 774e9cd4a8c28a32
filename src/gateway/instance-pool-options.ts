import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';
import type { BackoffOptions } from '../common/backoff.js';
import type { ClientCallTelemetry } from '../common/grpc-client-telemetry.js';
import type { UntrustedConnection } from './untrusted-connection.js';
import type { Upstream } from './upstream.js';

/** Options of InstancePool (instance-pool.ts). */
export interface InstancePoolOptions {
  /** grpc-js options of every channel (keepalive, message sizes). */
  channelOptions?: ChannelOptions;
  /**
   * The credentials of a channel to a component registered under `name` (default: plaintext). With
   * TLS they check that the server's certificate names that component (secure naming), so a
   * listing that points at someone else's server gets no traffic.
   */
  credentialsFor?: (name: string) => ChannelCredentials;
  /** Channel options that go with those credentials (secure naming), added to `channelOptions`. */
  namingOptionsFor?: (name: string) => ChannelOptions;
  /** Counts, times and traces every call made through InstancePool.call; none: nothing is. */
  calls?: ClientCallTelemetry | undefined;
  /**
   * How long a channel may go on connecting, or failed to, before a new channel replaces it;
   * default 10,000 ms.
   * grpc-js has no connect timeout: an attempt to a host that drops packets waits on one TCP connect
   * until the kernel gives up, and once the host is back learns it only at the next retransmission
   * of its SYN, up to half a minute later. A new channel sends a new SYN at once.
   */
  connectTimeoutMs?: number;
  /**
   * Told when a channel that had not connected was replaced, to say so; `again` when the channel
   * replaced was itself a replacement that never connected (an instance down for a while is
   * replaced every timeout: said once, then quietly). `attempts` says how it failed to connect:
   * `failed` when an attempt ended in failure within the timeout (refused, reset, no route to
   * the host, a failed handshake), `hung` when none ended (a host that drops packets, a peer that never speaks HTTP/2),
   * `unresolved` when the host name it is listed at resolved to no address on this host,
   * `dropped` when its attempts failed although their TLS handshakes completed: the instance
   * closed each connection just after, as a server does with a client certificate it refuses.
   * `handshakeFailure`: why the last TLS handshake failed, when one did.
   */
  onConnectTimeout?: (
    upstream: Upstream,
    timeoutMs: number,
    again: boolean,
    attempts: ConnectAttempts,
    handshakeFailure: string | undefined,
  ) => void;
  /** See {@link IDLE_RECONNECT_INTERVAL_MS} (the default). */
  idleReconnectIntervalMs?: number;
  /**
   * How long the instance has to answer a health check sent over the same connection after a call
   * on it passed its deadline, before it is passed over: a new channel replaces the old one, which
   * keeps its calls until they end; default {@link SILENCE_CHECK_TIMEOUT_MS}.
   * A host that went silent (power lost, cable pulled, packets dropped) leaves its connection READY
   * in grpc-js until keepalive gives up (about 15 s), and round robin meanwhile gives it its share of
   * calls, each held until its deadline. A slow handler that waits (on its database, on a timer) does
   * not fail the check: the server answers it while the slow call runs. One that blocks the
   * instance's event loop (a synchronous SQLite statement waiting out its 2 s busy timeout, a large
   * page encoded at once) does, and so cannot be told from a dead host yet: see silentConnectionCutMs.
   */
  silenceCheckTimeoutMs?: number;
  /**
   * How long after the health check the old connection may have brought no byte at all before it is
   * taken for dead and closed, with the calls held on it (a GET among them is retried elsewhere, a
   * POST is 504 "cut off"); default {@link SILENT_CONNECTION_CUT_MS}. An instance whose event loop
   * was only blocked answers everything at once when it is free, before this, and its calls complete.
   */
  silentConnectionCutMs?: number;
  /** Told when an unanswered health check has an instance passed over, to say so. */
  onUnansweredCheck?: (upstream: Upstream, timeoutMs: number) => void;
  /** Told when a connection brought nothing after its health check and was closed, to say so. */
  onSilentConnection?: (upstream: Upstream, silentMs: number) => void;
  /**
   * Told when keepalive closed an instance's connection (a ping unanswered) and the instance has no
   * other, to say so: it is out of reach until a new one is made (see Upstream.wentSilent).
   */
  onKeepaliveLoss?: (upstream: Upstream) => void;
  /**
   * Told when a connection made to move an instance's calls to the gateway's renewed certificate
   * (see InstancePool.renewConnections) failed, to say so: the instance's calls stay on the
   * connection they were on. `handshakeFailure`: why its TLS handshake failed, when it did.
   */
  onMoveFailed?: (upstream: Upstream, handshakeFailure: string | undefined, retry: MoveRetry) => void;
  /** Backoff between tries of a move that failed (see renewConnections); MOVE_RETRY by default. */
  moveRetry?: BackoffOptions;
  /** Told when an instance's calls moved to a connection made with the renewed certificate. */
  onMoved?: (upstream: Upstream) => void;
  /**
   * Told once per connection that InstancePool.stopUsingUntrusted stopped using, to say so:
   * its server's certificate no longer chains to the CA file.
   */
  onUntrustedServer?: (upstream: Upstream, connection: UntrustedConnection) => void;
}

/** When a move that failed is tried again (see InstancePool.renewConnections). */
export interface MoveRetry {
  /** How many moves of this instance failed in a row, this one included, since the renewal. */
  readonly failures: number;
  /** In how long the next try comes. */
  readonly inMs: number;
}

/** See {@link InstancePoolOptions.silenceCheckTimeoutMs}. */
export const SILENCE_CHECK_TIMEOUT_MS = 1_000;

/** See {@link InstancePoolOptions.silentConnectionCutMs}: above SQLite's 2 s busy timeout, which blocks. */
export const SILENT_CONNECTION_CUT_MS = 3_000;

/** How the attempts of a channel that did not connect in time went (see InstancePoolOptions.onConnectTimeout). */
export type ConnectAttempts = 'failed' | 'hung' | 'unresolved' | 'dropped';

/** See {@link InstancePoolOptions.connectTimeoutMs}. */
export const UPSTREAM_CONNECT_TIMEOUT_MS = 10_000;

/**
 * How often, at most, a channel that went idle is connected again without a call. grpc-js resets
 * its backoff once a connection is made, so a peer that takes a connection and closes it at once
 * (a server at its connection limit, which closes the connection that never called, another
 * gateway's idle one; a proxy that sends GOAWAY at once) was otherwise dialled again without pause,
 * hundreds of times a second, and two gateways idle on a full service closed each other's in turn.
 */
export const IDLE_RECONNECT_INTERVAL_MS = 5_000;
