import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { ServiceError } from '../common/service-error.js';
import { GetDescriptorSetResponse } from '../gen/distributor.js';
import { validateDescriptorSet } from './node-validation.js';
import type { RegistrationLimits } from './registration-limits.js';

/** A descriptor set, identified by the SHA-256 of its bytes. */
export interface DescriptorSet {
  /** The SHA-256 of `bytes`: 32 bytes. */
  readonly sha256: Buffer;
  /** `sha256` in hex: the key the store and its clients use. */
  readonly key: string;
  readonly bytes: Buffer;
  /** The keys of the REST routes its `google.api.http` options declare (see validateDescriptorSet). */
  readonly routeKeys: readonly string[];
  /** The gRPC services it defines, by full name. */
  readonly services: readonly string[];
}

/** A set the store holds: a {@link DescriptorSet} with its GetDescriptorSet answer, encoded once. */
export interface HeldDescriptorSet extends DescriptorSet {
  /** GetDescriptorSetResponse { descriptor_set }: the same bytes for every caller. */
  readonly response: Buffer;
}

interface Holding {
  readonly set: HeldDescriptorSet;
  /** Listed nodes that use it. */
  refs: number;
}

/** The SHA-256 of `bytes` as the store knows it. */
export function descriptorSetKey(sha256: Uint8Array): string {
  return Buffer.from(sha256).toString('hex');
}

function exhausted(message: string): ServiceError {
  return new ServiceError(status.RESOURCE_EXHAUSTED, message);
}

/**
 * The distinct descriptor sets of the listed nodes: one copy per SHA-256, counted by the nodes that
 * use it and dropped when the last one leaves. The instances of one service register the same
 * bytes, so a thousand of them cost one copy, one validation (a parse and the HttpRule checks) and
 * one fetch by a gateway.
 *
 * Bounded like the node list: the distinct sets take at most `limits.descriptorSetsBytes` in all, and
 * the sets of one name at most `nameShare` of that, so that no caller can fill the store for
 * everyone. A set already held costs nothing more, so a new instance of a listed service always fits.
 */
export class DescriptorSetStore {
  readonly #limits: RegistrationLimits;
  readonly #sets = new Map<string, Holding>();
  /** Per name: the distinct sets its nodes use, each with how many of its nodes use it. */
  readonly #byName = new Map<string, Map<string, number>>();
  readonly #nameBytes = new Map<string, number>();
  #bytes = 0;

  constructor(limits: RegistrationLimits) {
    this.#limits = limits;
  }

  /** Bytes of the distinct sets held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** How many distinct sets are held. */
  get size(): number {
    return this.#sets.size;
  }

  /** The set held under a SHA-256 (as bytes or hex), if any node still uses it. */
  get(sha256: Uint8Array | string): HeldDescriptorSet | undefined {
    return this.#sets.get(typeof sha256 === 'string' ? sha256 : descriptorSetKey(sha256))?.set;
  }

  /**
   * The SHA-256 a node's descriptor set is known by: the one it announced when the store holds that
   * set (the bytes sent, if any, are not even hashed: the node gets the set it named, which it could
   * have named alone), else the hash of its bytes (`announced`, if given, must match:
   * INVALID_ARGUMENT otherwise). Hashing 14 KB for every instance of a service that registers is
   * most of what a registration costs the registry.
   */
  digest(bytes: Buffer, announced: Buffer): Buffer {
    if (bytes.length === 0 || (announced.length > 0 && this.#sets.has(descriptorSetKey(announced)))) {
      return announced;
    }
    const sha256 = createHash('sha256').update(bytes).digest();
    if (announced.length > 0 && !sha256.equals(announced)) {
      throw new ServiceError(
        status.INVALID_ARGUMENT,
        'invalid registration: descriptor_set_sha256 is not the SHA-256 of descriptor_set',
      );
    }
    return sha256;
  }

  /**
   * The set of SHA-256 `sha256` (see {@link digest}) for a node registering under `name`: the copy
   * held, or else the `bytes` sent, parsed. A set not held yet is checked for room before it is
   * parsed, so that a caller cannot make the distributor parse sets it would refuse anyway.
   *
   * `replacing`, the key of the set of the entry this node takes the place of (same identity, so
   * same name), gives back the room that entry alone holds, as the node list's budget does.
   *
   * Throws FAILED_PRECONDITION (no bytes, and a hash the store does not hold), RESOURCE_EXHAUSTED
   * (no room) or INVALID_ARGUMENT (a set that does not parse or declares invalid routes).
   */
  resolve(name: string, sha256: Buffer, bytes: Buffer, replacing?: string): DescriptorSet {
    const key = descriptorSetKey(sha256);
    const held = this.#sets.get(key)?.set;
    if (held) return held;
    if (bytes.length === 0) {
      throw new ServiceError(
        status.FAILED_PRECONDITION,
        `the distributor holds no descriptor set ${key}: register again with descriptor_set`,
      );
    }
    this.#checkRoom(name, key, bytes.length, replacing);
    return { sha256, key, bytes, ...validateDescriptorSet(bytes, this.#limits) };
  }

  /**
   * Throws RESOURCE_EXHAUSTED unless a node of `name` may start using `set`; `replacing` as in
   * {@link resolve}.
   */
  check(name: string, set: DescriptorSet, replacing?: string): void {
    this.#checkRoom(name, set.key, set.bytes.length, replacing);
  }

  /** Counts one more node of `name` using `set`, storing it if it is new. Call {@link check} first. */
  hold(name: string, set: DescriptorSet): void {
    let holding = this.#sets.get(set.key);
    if (!holding) {
      const response = Buffer.from(GetDescriptorSetResponse.encode({ descriptorSet: set.bytes }).finish());
      holding = { set: { ...set, response }, refs: 0 };
      this.#sets.set(set.key, holding);
      this.#bytes += set.bytes.length;
    }
    holding.refs++;
    let sets = this.#byName.get(name);
    if (!sets) {
      sets = new Map();
      this.#byName.set(name, sets);
    }
    const uses = sets.get(set.key) ?? 0;
    if (uses === 0) this.#nameBytes.set(name, (this.#nameBytes.get(name) ?? 0) + set.bytes.length);
    sets.set(set.key, uses + 1);
  }

  /** Counts one node of `name` less using the set `key`; the set goes when no node uses it. */
  release(name: string, key: string): void {
    const holding = this.#sets.get(key);
    const sets = this.#byName.get(name);
    const uses = sets?.get(key);
    if (!holding || !sets || uses === undefined) return;
    if (uses > 1) sets.set(key, uses - 1);
    else {
      sets.delete(key);
      const left = (this.#nameBytes.get(name) ?? 0) - holding.set.bytes.length;
      if (sets.size === 0) {
        this.#byName.delete(name);
        this.#nameBytes.delete(name);
      } else this.#nameBytes.set(name, left);
    }
    if (--holding.refs === 0) {
      this.#sets.delete(key);
      this.#bytes -= holding.set.bytes.length;
    }
  }

  #checkRoom(name: string, key: string, size: number, replacing?: string): void {
    const total = this.#limits.descriptorSetsBytes;
    const share = Math.floor(total * this.#limits.nameShare);
    // A replaced entry that is the last of its name (or of all) to use its set gives that room back.
    const replaced = replacing === undefined || replacing === key ? undefined : this.#sets.get(replacing);
    const freedByName =
      replaced && this.#byName.get(name)?.get(replaced.set.key) === 1 ? replaced.set.bytes.length : 0;
    const freed = replaced?.refs === 1 ? replaced.set.bytes.length : 0;
    if (!this.#byName.get(name)?.has(key)) {
      const nameBytes = (this.#nameBytes.get(name) ?? 0) - freedByName + size;
      if (nameBytes > share) {
        throw exhausted(
          `too much registered under the name ${name}: its distinct descriptor sets would take ` +
            `${nameBytes} bytes, over their share of ${share}`,
        );
      }
    }
    if (!this.#sets.has(key) && this.#bytes - freed + size > total) {
      throw exhausted(
        `the registry is full: the distinct descriptor sets would take ${this.#bytes - freed + size} bytes, ` +
          `over the ${total} it holds`,
      );
    }
  }
}
