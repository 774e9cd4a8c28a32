import { status } from '@grpc/grpc-js';
import { addressGroupOf } from '../common/address-group.js';
import type { Logger } from '../common/logger.js';
import type { ServiceError } from '../common/service-error.js';
import { LruMap } from './lru-map.js';

/**
 * How long the repeats of a refusal kind from a peer stay at debug: then the next one is a warning
 * again, so that a peer that was refused once long ago (a missing token, say) and comes back (with
 * a guessed token) is seen again at the default log level.
 */
export const REFUSAL_LOG_INTERVAL_MS = 10 * 60_000;

/**
 * Logs the calls the distributor refuses: the first refusal of each kind (status code) from a peer
 * address group (see addressGroupOf: an IPv6 peer by its /64, within which it could take a new
 * address for every call) at warn, with the address, and the repeats within `intervalMs` at debug.
 * An operator sees every misconfigured or hostile peer at least every interval, and a peer retrying
 * or flooding cannot flood the log. The groups remembered are capped, so the memory is bounded too.
 */
export class RefusalLog {
  /** Kind and group → when its refusal was last logged at warn. */
  readonly #seen: LruMap<string, number>;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #now: () => number;

  constructor(
    log: Logger,
    peers: number,
    { intervalMs = REFUSAL_LOG_INTERVAL_MS, now = () => performance.now() } = {},
  ) {
    this.#log = log;
    this.#seen = new LruMap(peers);
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** Logs that a call from `peer` was refused with `error`. */
  refused(peer: string, error: ServiceError, fields: Record<string, unknown> = {}): void {
    const group = addressGroupOf(peer);
    const key = `${error.code} ${group}`;
    const now = this.#now();
    const warnedAt = this.#seen.get(key);
    const warn = warnedAt === undefined || now - warnedAt >= this.#intervalMs;
    if (warn) this.#seen.set(key, now);
    const entry = { event: 'refused', peer, code: status[error.code], ...fields };
    if (warn) {
      this.#log.warn(entry, `${error.message} (refusals of this kind from ${group} are now logged at debug)`);
    } else {
      this.#log.debug(entry, error.message);
    }
  }
}
