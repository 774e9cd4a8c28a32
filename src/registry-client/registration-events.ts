import type { StatusObject } from '@grpc/grpc-js';
import type { NodeState, Snapshot } from '../gen/distributor.js';

/** What a RegistrationClient tells its owner: each event it emits, with its arguments. */
export interface RegistrationEvents {
  /** A new node list arrived (with `watchNodes`, or from a distributor of the first contract). */
  snapshot: [snapshot: Snapshot];
  /** The distributor has the node listed in this state (after registering, and after each change). */
  state: [state: NodeState];
  /** The distributor accepted the registration under this id (again, after every reconnection). */
  registered: [nodeId: string];
  /** The stream ended; a new attempt follows unless the client was stopped or the end is a refusal for good. */
  disconnected: [status: StatusObject];
  /**
   * The distributor refused the node for a reason no retry changes (a `permanent` status of
   * retry-policy.ts: a bad token, a name the certificate may not use, an invalid description). The
   * client has given up: the node stays unregistered, so its owner should stop and say so.
   */
  refused: [status: StatusObject];
}
