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
} as const;

/**
 * How the distributor ends a registration (ABORTED) that a newer one of the same node replaced: read
 * by the registration client, which then keeps its backoff and says that another process may hold
 * the same address.
 */
export const NODE_REPLACED = 'replaced by a newer registration of the same node';
