import type { Logger } from '../common/logger.js';
import { clientCertificateRefusedHint, tlsMismatchHint } from '../common/tls-mismatch-hint.js';
import type { ConnectAttempts, InstancePoolOptions } from './instance-pool-options.js';
import { UNTRUSTED_CONNECTION_GRACE_MS } from './untrusted-connection.js';

/**
 * What a connect timeout's warning says of the attempts, for the operator to look in the right place.
 * An attempt fails at once, too, when this host has no route to the instance (its link down:
 * ENETUNREACH, EHOSTUNREACH), which is the network's fault, not the instance's.
 */
const CONNECT_ATTEMPTS: Record<ConnectAttempts, string> = {
  failed:
    'its attempts failed (connection refused or reset, no route to its host, or a failed TLS handshake: is it running there, and is the network between up?)',
  hung: 'its attempt got no answer (a host or firewall that drops packets, or a peer that accepts and never speaks gRPC)',
  // Found listing a service at a DNS name the gateway's host did not know: the warning said the
  // attempts failed and asked whether the instance ran, while none was ever made.
  unresolved:
    "its host name resolves to no address on this gateway's host (not in its DNS or /etc/hosts: is the name the instance gives as --advertise-host one this host can resolve?)",
  // Found with split CAs, a service's CA file lacking the gateway's CA: only "its attempts failed",
  // though the gateway's own handshakes had completed and the service had refused its certificate.
  dropped: 'its TLS handshakes completed, but it closed each connection just after',
};

/** What the instance pool tells of its connections to the services. */
export type UpstreamEvents = Pick<
  InstancePoolOptions,
  | 'onConnectTimeout'
  | 'onUnansweredCheck'
  | 'onSilentConnection'
  | 'onUntrustedServer'
  | 'onKeepaliveLoss'
  | 'onMoved'
  | 'onMoveFailed'
>;

/**
 * The gateway's log lines about its connections to the services, each with its `event` and in
 * words an operator can act on: what happened, what the gateway does about it, where to look.
 */
export function upstreamEventLog(log: Logger): UpstreamEvents {
  return {
    onConnectTimeout: (upstream, timeoutMs, again, attempts, handshakeFailure) =>
      log[again ? 'debug' : 'warn'](
        {
          event: 'upstream-connect-timeout',
          upstream: upstream.key,
          timeoutMs,
          attempts,
          handshakeFailure,
        },
        again
          ? `still no connection to ${upstream.key}; trying a new one`
          : `no connection to ${upstream.key} within ${timeoutMs} ms: ${
              handshakeFailure === undefined
                ? `${CONNECT_ATTEMPTS[attempts]}${attempts === 'dropped' ? clientCertificateRefusedHint(upstream.key) : ''}`
                : `its TLS handshake failed (${handshakeFailure})${tlsMismatchHint(handshakeFailure, true, upstream.key)}`
            }; trying a new one (every ${timeoutMs} ms until it connects)`,
      ),
    onUnansweredCheck: (upstream, timeoutMs) =>
      log.info(
        { event: 'upstream-unanswered-check', upstream: upstream.key, timeoutMs },
        `${upstream.key} did not answer a health check within ${timeoutMs} ms after a call's deadline passed; passed over while a new connection is made`,
      ),
    onSilentConnection: (upstream, silentMs) =>
      log.warn(
        { event: 'upstream-silent-connection', upstream: upstream.key, silentMs },
        `${upstream.key} sent nothing for ${silentMs} ms after a health check that followed a call's deadline: its connection is taken for dead and closed, with the calls on it`,
      ),
    onUntrustedServer: (upstream, { peer, issuer }) =>
      log.warn(
        { event: 'untrusted-after-ca-change', upstream: upstream.key, peer, issuer },
        `stopped sending requests to ${upstream.key} over its connection to ${peer}: its certificate's CA${issuer === undefined ? '' : ` (${issuer})`} is no longer in the TLS CA file; calls on it have ${UNTRUSTED_CONNECTION_GRACE_MS} ms to end, and a new connection must pass a handshake with the new CA file`,
      ),
    onKeepaliveLoss: (upstream) =>
      log.warn(
        { event: 'upstream-keepalive-loss', upstream: upstream.key },
        `${upstream.key} went silent (a keepalive ping unanswered, and the close of its connection): it is out of reach until a new connection is made (requests only it serves are answered 503 at once)`,
      ),
    onMoved: (upstream) =>
      log.debug(
        { event: 'upstream-moved', upstream: upstream.key },
        `${upstream.key}: calls moved to a connection made with the renewed certificate`,
      ),
    // Told once per instance and renewal: the tries after it fail the same way until the service changes.
    onMoveFailed: (upstream, handshakeFailure, retry) =>
      log[retry.failures === 1 ? 'warn' : 'debug'](
        { event: 'upstream-move-failed', upstream: upstream.key, handshakeFailure, retryInMs: retry.inMs },
        `could not connect to ${upstream.key} with the renewed certificate${
          handshakeFailure === undefined
            ? ''
            : ` (its TLS handshake failed: ${handshakeFailure}${tlsMismatchHint(handshakeFailure, true, upstream.key)})`
        }: its requests stay on the connection made with the certificate before, which a service closes once its CA file no longer holds that certificate's CA; trying again in ${Math.round(retry.inMs / 1000)} s (then less and less often) until it holds`,
      ),
  };
}
