import { LruMap } from './lru-map.js';
import { TokenBucket } from './token-bucket.js';

/** Options of {@link PeerRateLimiter}. */
export interface PeerRateLimiterOptions {
  /** Tokens a peer gets back per second. */
  ratePerSecond: number;
  /** Tokens a peer holds at most: what it may spend at once after a quiet spell. */
  burst: number;
  /** Peers remembered at once; the least recently seen is forgotten first. */
  peers: number;
  /** The clock, in milliseconds. */
  now?: () => number;
}

/**
 * A token bucket per peer address: each registration spends one token, and a peer without one is
 * refused until its bucket refills. A bucket idle long enough to be full again is the same as no
 * bucket, so such buckets are dropped as they are passed; together with the cap on peers this keeps
 * the state bounded without a timer.
 */
export class PeerRateLimiter {
  readonly #buckets: LruMap<string, TokenBucket>;
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;

  constructor({ ratePerSecond, burst, peers, now = () => performance.now() }: PeerRateLimiterOptions) {
    this.#buckets = new LruMap(peers);
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#now = now;
  }

  /** Peers whose bucket is not full. */
  get trackedPeers(): number {
    return this.#buckets.size;
  }

  /** Spends a token of `peer`'s: false when it has none left. */
  tryTake(peer: string): boolean {
    const now = this.#now();
    this.#forgetRefilled(now);
    let bucket = this.#buckets.get(peer);
    if (!bucket) {
      bucket = new TokenBucket(this.#rate, this.#burst, now);
      this.#buckets.set(peer, bucket);
    }
    return bucket.tryTake(now);
  }

  /**
   * Buckets iterate least recently used first, and every bucket is full again within burst/rate of
   * its last use: dropping full buckets from the front until one is not drops at least every bucket
   * idle that long.
   */
  #forgetRefilled(now: number): void {
    for (const [peer, bucket] of this.#buckets) {
      if (bucket.fullAt > now) return;
      this.#buckets.delete(peer);
    }
  }
}
