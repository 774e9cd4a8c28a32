/**
 * Counts by key that tell which key counts the most in O(1) amortized: keys are kept in buckets by
 * count, and the highest bucket in use is followed as counts move. A scan of every key for the most
 * cost as much as the keys held for each look-up: the stream admission looks it up for every stream
 * past its bound, so that 20,000 connections of 2 waiting streams each cost 270 µs a stream, the
 * loop 10 s for 40,000 streams (stream-admission.ts).
 *
 * The highest bucket rises at most by what an add adds and falls past empty buckets only, so the
 * falls cost no more in all than the rises.
 */
export class CountBuckets<Key> {
  readonly #counts = new Map<Key, number>();
  /** The keys of each count in use, in the order they came to it. */
  readonly #buckets = new Map<number, Set<Key>>();
  #most = 0;

  count(key: Key): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Adds `delta` (negative: takes away) to a key's count; one brought to 0 or below is forgotten. */
  add(key: Key, delta: number): void {
    const before = this.#counts.get(key) ?? 0;
    const after = before + delta;
    if (before > 0) this.#leave(key, before);
    if (after > 0) {
      this.#counts.set(key, after);
      let bucket = this.#buckets.get(after);
      if (!bucket) {
        bucket = new Set();
        this.#buckets.set(after, bucket);
      }
      bucket.add(key);
      if (after > this.#most) this.#most = after;
    } else {
      this.#counts.delete(key);
    }
    while (this.#most > 0 && !this.#buckets.has(this.#most)) this.#most -= 1;
  }

  /** Forgets a key. */
  delete(key: Key): void {
    const count = this.#counts.get(key);
    if (count !== undefined) this.add(key, -count);
  }

  /** The most any key counts (0 when none). */
  get most(): number {
    return this.#most;
  }

  /** The keys counting the most, the first to reach that count first. */
  mostKeys(): Iterable<Key> {
    return this.#buckets.get(this.#most) ?? [];
  }

  /** The first key to reach the most any key counts; undefined when none counts. */
  firstOfMost(): Key | undefined {
    for (const key of this.mostKeys()) return key;
    return undefined;
  }

  get size(): number {
    return this.#counts.size;
  }

  #leave(key: Key, count: number): void {
    const bucket = this.#buckets.get(count);
    bucket?.delete(key);
    if (bucket?.size === 0) this.#buckets.delete(count);
  }
}
