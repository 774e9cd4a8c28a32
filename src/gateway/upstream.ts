import { type Client, connectivityState, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { formatHostPort } from '../common/config.js';
import type { SocketClosingCredentials } from '../common/socket-closing-credentials.js';

/** One upstream address, the component expected there, and its gRPC channel. */
export interface Upstream {
  /** "name@host:port": who is expected at which address. */
  readonly key: string;
  /** The component expected there, whose credentials a replacement channel is made with. */
  readonly name: string;
  /** "host:port" (IPv6 in brackets), as grpc-js dials it. */
  readonly address: string;
  /**
   * Replaced, with its channel, when a connection attempt hangs (see InstancePoolOptions.connectTimeoutMs)
   * or a connected one has gone silent (see InstancePoolOptions.silenceCheckTimeoutMs).
   */
  client: Client;
  /** The client's channel, whose state says whether the instance can take a call now. */
  channel: ReturnType<Client['getChannel']>;
  /** Calls started and not yet finished on this channel. */
  inFlight: number;
  /**
   * Since when (performance.now()) this gateway has failed to connect to the instance: set when a
   * connection attempt failed or outlasted the connect timeout, or a connection was given up on for
   * its silence (see wentSilent), cleared once a channel is connected.
   * The distributor may well list an instance this gateway cannot reach (a partition between the two
   * only): its routes then fail every call here, which readiness must say.
   */
  unreachableSince: number | undefined;
  /**
   * What this gateway last learnt of why it cannot reach the instance, while unreachableSince is
   * set: a kind, never an error's text (the status page shows it, see UnreachableReason).
   */
  unreachableReason: UnreachableReason | undefined;
  /** Whether a health check is asking the instance if its connection still answers (one at a time). */
  checkingSilence: boolean;
  /**
   * Whether a connection to the instance was given up on for its silence since the last channel
   * connected: keepalive closed it (a ping unanswered for the keepalive timeout), or it brought
   * nothing after a health check that followed a call's deadline (see silentConnectionCutMs).
   * Cleared once a channel is connected. The host was then heard from by no means for seconds:
   * waiting out the connect timeout again before its requests are answered at once only made each
   * client wait its deadline (see outOfReach).
   */
  wentSilent: boolean;
  /**
   * How long the instance may stay unreachable (see unreachableSince) before calls are no longer
   * handed to it (see {@link outOfReach}): the pool's connect timeout; not waited once a connection
   * to it went silent (see wentSilent).
   */
  readonly outOfReachAfterMs: number;
}

/**
 * Why an instance is unreachable from this gateway, as far as it knows, in kinds the status page
 * can name without handing its readers more than the address they see already (a TLS failure's
 * text, which may name certificates, stays in the gateway's log): `attempts-fail`, a connection
 * attempt failed (refused, reset, no route to its host); `handshake-fails`, its TLS handshake
 * failed; `connections-dropped`, its TLS handshakes completed and it closed the connections just
 * after (a TLS 1.3 server that does not take the gateway's certificate: split CAs); `unresolved`,
 * its host name resolves to no address here; `no-answer`, an attempt got no answer within the
 * connect timeout (packets dropped, a peer that never speaks gRPC);
 * `went-silent`, its connection was given up on for its silence (see Upstream.wentSilent);
 * `check-unanswered`, a health check after a call's deadline got no answer; `untrusted`, its
 * certificate's CA was taken out of the gateway's CA file (see InstancePool.stopUsingUntrusted), kept
 * while its handshakes fail after (they fail for that reason, as long as it holds that certificate).
 */
export type UnreachableReason =
  | 'attempts-fail'
  | 'handshake-fails'
  | 'connections-dropped'
  | 'unresolved'
  | 'no-answer'
  | 'went-silent'
  | 'check-unanswered'
  | 'untrusted';

/**
 * Why a channel's attempt failed, from what its credentials saw: a handshake that failed, a
 * handshake completed since `handshakesWhenConnected` (its count when the channel was last
 * connected, or made) and the connection dropped after it, no address resolved (grpc-js made no
 * subchannel), or else the connection itself (refused, reset). The handshake of a connection the
 * channel had, and lost, is no sign of a drop: only one completed since.
 */
export function failedAttemptReason(
  credentials: SocketClosingCredentials | undefined,
  handshakesWhenConnected: number,
): UnreachableReason {
  if (credentials === undefined) return 'attempts-fail';
  if (credentials.lastHandshakeFailure !== undefined) return 'handshake-fails';
  if (credentials.handshakesCompleted > handshakesWhenConnected) return 'connections-dropped';
  return credentials.resolvedAddress ? 'attempts-fail' : 'unresolved';
}

/**
 * Where this gateway's channel to an instance stands: `connected` (a call starts at once),
 * `connecting` (an attempt under way), `idle` (no connection now: a call, or the pool, makes one),
 * `failing` (its last attempt failed; grpc-js says so through the attempts after it too).
 */
export type UpstreamConnection = 'connected' | 'connecting' | 'idle' | 'failing';

/** See {@link UpstreamConnection}; undefined for a channel shut down (the instance left). */
export function connectionOf(upstream: Upstream): UpstreamConnection | undefined {
  switch (upstream.channel.getConnectivityState(false)) {
    case connectivityState.READY:
      return 'connected';
    case connectivityState.CONNECTING:
      return 'connecting';
    case connectivityState.IDLE:
      return 'idle';
    case connectivityState.TRANSIENT_FAILURE:
      return 'failing';
    default:
      return undefined;
  }
}

/**
 * Whether a call on this upstream would start now: its channel is connected, or idle (the call
 * connects it). Not while it connects, or after a failure to: a listed instance this gateway
 * cannot reach (a firewall between them, a host that accepts connections and never speaks HTTP/2)
 * holds each call it is given until the deadline, or fails it.
 */
export function canTakeCalls(upstream: Upstream): boolean {
  const state = upstream.channel.getConnectivityState(false);
  return state === connectivityState.READY || state === connectivityState.IDLE;
}

/**
 * Whether this gateway has been unable to reach the instance for longer than its connect timeout
 * (unreachableSince, the same mark as /readyz and /status read), or at all since a connection to it
 * went silent (wentSilent), and cannot take a call now: a partition, a host down. A call handed to it would not fail at once: grpc-js queues calls on a
 * channel that is connecting, and a connection attempt to a host that drops packets lasts until the
 * connect timeout replaces the channel (the calls then fail UNAVAILABLE) or the call's deadline
 * passes (504): each client waited up to the deadline for an answer the gateway could give at once.
 * Not before the connect timeout: a fresh channel (never failed) or an instance that just dropped
 * (a restart, a blip) may connect in a moment, and its calls would then be served. A restarted
 * instance closed its connection (the peer's FIN or reset), which is no silence: it keeps that
 * grace. One whose connection went silent has had it already: keepalive waited 5 s for a ping's
 * answer, or the gateway 3 s for a byte after a call's deadline (a blip, an event loop blocked for a
 * moment, lasts less, and its connection is kept). Counted from then, the partition was answered
 * at once only 16 to 26 s after it began (measured in namespaces), every request meanwhile
 * answered 504 at its deadline. The channel goes on reconnecting meanwhile; once it is READY the
 * instance takes calls again at once.
 */
export function outOfReach(upstream: Upstream, nowMs: number): boolean {
  const since = upstream.unreachableSince;
  return (
    since !== undefined &&
    (upstream.wentSilent || nowMs - since >= upstream.outOfReachAfterMs) &&
    !canTakeCalls(upstream)
  );
}

/**
 * The key of the upstream of a node the distributor lists (InstancePool.get makes it of the
 * dialled address), from the node's id: "name@host:port", an IPv6 host in brackets as the distributor
 * writes it ("goods@[::1]:4001"), or without them as a distributor before 2026-12-06 did
 * ("goods@::1:4001" is the upstream "goods@[::1]:4001" too).
 */
export function upstreamKeyOfNode(nodeId: string): string {
  const at = nodeId.lastIndexOf('@');
  const colon = nodeId.lastIndexOf(':');
  if (at < 0 || colon < at) return nodeId;
  const host = nodeId.slice(at + 1, colon);
  return `${nodeId.slice(0, at)}@${formatHostPort({ host, port: Number(nodeId.slice(colon + 1)) })}`;
}

/** The status of a call asked of an upstream whose channel is closed (see InstancePool.call). */
export function channelClosed(upstream: Upstream): ServiceError {
  const details = `the channel to ${upstream.key} is closed: the instance left the registry, or the gateway is stopping`;
  return Object.assign(new Error(`${status.UNAVAILABLE} UNAVAILABLE: ${details}`), {
    code: status.UNAVAILABLE,
    details,
    metadata: new Metadata(),
  });
}
