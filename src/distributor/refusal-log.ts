import { status } from '@grpc/grpc-js';
import { addressGroupOf } from '../common/address-group.js';
import type { Logger } from '../common/logger.js';
import type { ServiceError } from '../common/service-error.js';
import { LruMap } from './lru-map.js';

/**
 * Logs the calls the distributor refuses: the first refusal of each kind (status code) from a peer
 * address group (see addressGroupOf: an IPv6 peer by its /64, within which it could take a new
 * address for every call) at warn, with the address, and the repeats at debug. An operator sees
 * every misconfigured or hostile peer once, and a peer retrying or flooding cannot flood the log.
 * The groups remembered are capped, so the memory is bounded too.
 */
export class RefusalLog {
  readonly #seen: LruMap<string, true>;
  readonly #log: Logger;

  constructor(log: Logger, peers: number) {
    this.#log = log;
    this.#seen = new LruMap(peers);
  }

  /** Logs that a call from `peer` was refused with `error`. */
  refused(peer: string, error: ServiceError, fields: Record<string, unknown> = {}): void {
    const group = addressGroupOf(peer);
    const key = `${error.code} ${group}`;
    const first = this.#seen.get(key) === undefined;
    if (first) this.#seen.set(key, true);
    const entry = { event: 'refused', peer, code: status[error.code], ...fields };
    if (first) {
      this.#log.warn(entry, `${error.message} (refusals of this kind from ${group} are now logged at debug)`);
    } else {
      this.#log.debug(entry, error.message);
    }
  }
}
