import { status } from '@grpc/grpc-js';

/**
 * What a component that retries on its own (the registration with the distributor) does when a
 * call ends with a status. Decided here, once, in the spirit of moleculer's `retryable` errors:
 *
 * - `transient`: the link or the peer failed (UNAVAILABLE, a deadline, a reset stream, a restart,
 *   a takeover by a newer registration): retry with backoff, warning only when the reason changes.
 * - `refused`: the peer said no for a reason that can clear by itself: a limit (RESOURCE_EXHAUSTED:
 *   too many nodes, a rate), a node id held by another live registration (ALREADY_EXISTS), a state
 *   that may change (FAILED_PRECONDITION, NOT_FOUND, OUT_OF_RANGE). Retry with backoff, but warn at
 *   every refusal: the node is not routed meanwhile.
 * - `permanent`: the same request gets the same answer until a person changes something, so retrying
 *   only hides the problem. INVALID_ARGUMENT (the node description breaks a rule), UNAUTHENTICATED
 *   (a wrong or missing token or certificate), PERMISSION_DENIED (the certificate may not use this
 *   name), UNIMPLEMENTED (the address is a gRPC server that is not a distributor). Give up and say so.
 */
export type RetryClass = 'transient' | 'refused' | 'permanent';

const PERMANENT: ReadonlySet<status> = new Set([
  status.INVALID_ARGUMENT,
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
  status.UNIMPLEMENTED,
]);

const REFUSED: ReadonlySet<status> = new Set([
  status.RESOURCE_EXHAUSTED,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.NOT_FOUND,
  status.OUT_OF_RANGE,
]);

/** How a call that ended with `code` should be retried; see {@link RetryClass}. */
export function retryClassOf(code: status): RetryClass {
  if (PERMANENT.has(code)) return 'permanent';
  if (REFUSED.has(code)) return 'refused';
  return 'transient';
}
