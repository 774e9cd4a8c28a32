import { type Client, connectivityState, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { formatHostPort } from '../common/config.js';

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
