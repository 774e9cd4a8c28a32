/** Exponential backoff with jitter, for tries made again after a failure. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/**
 * The wait before the next try after `failures` failures in a row: its ceiling doubles from
 * `initialMs` up to `maxMs`, and the wait is drawn between half of it and all of it, so that
 * clients cut off together do not all come back together.
 */
export function backoffDelay(backoff: BackoffOptions, failures: number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(failures, 30));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/**
 * How long after a move to a connection made with a renewed certificate failed (a registration's,
 * or a gateway's calls to a service) it is tried again, at first and at most: the first try after
 * the other side reads its CA file again (every 5 s by default), so that a renewal taken before the
 * other side trusts its CA (a CA rotation's step 2 done before step 1 reached it) moves once it
 * does, rather than at the next renewal, which may be weeks away, or cut at the rotation's last step.
 */
export const MOVE_RETRY: BackoffOptions = { initialMs: 6_000, maxMs: 300_000 };
