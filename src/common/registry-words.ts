import { PROOF_WINDOW_MS } from './registry-proof.js';

// The distributor's words that the project's own registration client reads back, kept in one place
// so that a change of wording on one side cannot silently end what the other side recognises.

/**
 * The distributor's words when it refuses a call for its registry token (UNAUTHENTICATED): written
 * for any client, and read by the project's own registration client, which tells its operator
 * which setting to fix (see tokenRefusalHint).
 */
export const REGISTRY_TOKEN_REFUSALS = {
  missing: 'missing credentials: send the registry token as metadata "authorization: Bearer <token>"',
  wrong: 'invalid credentials: the registry token is wrong',
  clock: 'invalid credentials: the proof of the registry token was made at a time',
  connection:
    'invalid credentials: the proof of the registry token was made for another connection (a relay between the caller and the distributor?), or sent without TLS as if over it',
} as const;

/**
 * The refusal of a proof of the token (see registry-proof.ts) made too far from the distributor's
 * clock, `offMs` ahead of it (behind if negative): it begins with REGISTRY_TOKEN_REFUSALS.clock.
 */
export function tokenProofTimeRefusal(offMs: number): string {
  const seconds = Math.round(Math.abs(offMs) / 1000);
  return `${REGISTRY_TOKEN_REFUSALS.clock} ${seconds} s ${offMs > 0 ? 'ahead of' : 'behind'} the distributor's clock (at most ${PROOF_WINDOW_MS / 1000} s either way): set the clocks of both hosts right`;
}

/**
 * How the distributor ends a registration (ABORTED) that a newer one of the same node replaced: read
 * by the registration client, which then keeps its backoff and says that another process may hold
 * the same address.
 */
export const NODE_REPLACED = 'replaced by a newer registration of the same node';

/**
 * How the distributor ends a Register or Watch stream (UNAUTHENTICATED) when its CA file changed
 * and the certificate the stream's connection was made with no longer chains to it: read by the
 * registration client, which, unlike at other UNAUTHENTICATED refusals, registers again on a new
 * connection, whose handshake decides (a certificate renewed by a CA still trusted passes; one of
 * the removed CA does not).
 */
export const UNTRUSTED_AFTER_CA_CHANGE =
  "its certificate's CA is no longer trusted by the distributor: its CA file changed, and the certificate this connection was made with does not chain to any CA in it";
