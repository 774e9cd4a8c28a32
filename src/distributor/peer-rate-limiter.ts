import { LruMap } from './lru-map.js';

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

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per peer address: each registration (or state change) spends one token, and a peer
 * without one is refused until its bucket refills. A bucket idle long enough to be full again is the
 * same as no bucket, so such buckets are dropped as they are passed; together with the cap on peers
 * this keeps the state bounded without a timer.
 */
export class PeerRateLimiter {
  readonly #buckets: LruMap<string, Bucket>;
  readonly #rate: number;
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #now: () => number;

  constructor({ ratePerSecond, burst, peers, now = () => performance.now() }: PeerRateLimiterOptions) {
    this.#buckets = new LruMap(peers);
    this.#rate = ratePerSecond / 1_000;
    this.#burst = burst;
    this.#refillMs = burst / this.#rate;
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
    const bucket = this.#buckets.get(peer);
    const tokens = bucket
      ? Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#rate)
      : this.#burst;
    const allowed = tokens >= 1;
    this.#buckets.set(peer, { tokens: allowed ? tokens - 1 : tokens, at: now });
    return allowed;
  }

  /** Buckets iterate least recently used first, so the ones idle for a full refill are at the front. */
  #forgetRefilled(now: number): void {
    for (const [peer, bucket] of this.#buckets) {
      if (now - bucket.at < this.#refillMs) return;
      this.#buckets.delete(peer);
    }
  }
}
