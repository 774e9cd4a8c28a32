/**
 * The distributor's words when it refuses a call for its registry token (UNAUTHENTICATED): written
 * for any client, and read by the project's own registration client, which tells its operator
 * which setting to fix (see tokenRefusalHint).
 */
export const REGISTRY_TOKEN_REFUSALS = {
  missing: 'missing credentials: send the registry token as metadata "authorization: Bearer <token>"',
  wrong: 'invalid credentials: the registry token is wrong',
} as const;
