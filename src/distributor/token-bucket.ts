/**
 * A token bucket: it holds up to `burst` tokens, gets `ratePerSecond` back each second, and each
 * action spends one. An action without a token is refused. Times are in milliseconds.
 */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;

  constructor(ratePerSecond: number, burst: number, now: number) {
    this.#ratePerMs = ratePerSecond / 1_000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#at = now;
  }

  /** When the bucket is full again if nothing more is spent: from then on it is as good as new. */
  get fullAt(): number {
    return this.#at + (this.#burst - this.#tokens) / this.#ratePerMs;
  }

  /** Spends a token: false when there is none. */
  tryTake(now: number): boolean {
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, now - this.#at) * this.#ratePerMs);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
