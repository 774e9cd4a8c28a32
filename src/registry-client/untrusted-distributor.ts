/**
 * How long a registration whose connection's distributor the CA file no longer trusts waits for its
 * move to a new connection before it is ended (see stopUsingUntrusted): as the gateway gives its
 * connections to services (UNTRUSTED_CONNECTION_GRACE_MS).
 */
export const UNTRUSTED_MOVE_TIMEOUT_MS = 1_000;

/** Why a registration ended on a connection whose distributor the CA file no longer trusts (its 'disconnected' status). */
export const UNTRUSTED_DISTRIBUTOR =
  "the distributor's certificate on this connection chains to no CA of this component's CA file any more (it changed)";
