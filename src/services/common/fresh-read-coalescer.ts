/** A read running for one key, and the callers it will answer. */
interface Flight<V> {
  readonly promise: Promise<V>;
}

/** The next read of a key: callers join it while the current one runs; it starts when that ends. */
interface NextFlight<V> extends Flight<V> {
  start(): void;
}

/**
 * Answers concurrent reads of the same key with one read, without ever answering a caller with a
 * read that started before it arrived: a caller that finds a read of its key running waits for the
 * next one, which starts when the running one ends and answers every caller that arrived in between.
 * So each answer reflects every write acknowledged before its call, as a read of its own would,
 * and under load one query (and one encoding of its answer) serves many callers instead of one each.
 *
 * A failed read fails the callers that joined it, and only them; the next read is tried afresh.
 */
export class FreshReadCoalescer<K, V> {
  readonly #running = new Map<K, Flight<V>>();
  readonly #next = new Map<K, NextFlight<V>>();

  /** The value of `key`, from a read that starts no earlier than this call. */
  read(key: K, load: () => Promise<V>): Promise<V> {
    if (!this.#running.has(key)) return this.#start(key, load).promise;
    let next = this.#next.get(key);
    if (!next) {
      next = this.#deferred(key, load);
      this.#next.set(key, next);
    }
    return next.promise;
  }

  /** Keys with a read running. */
  get running(): number {
    return this.#running.size;
  }

  #start(key: K, load: () => Promise<V>): Flight<V> {
    const promise = Promise.resolve().then(load);
    const flight = { promise };
    this.#running.set(key, flight);
    const settled = (): void => {
      if (this.#running.get(key) !== flight) return;
      this.#running.delete(key);
      const next = this.#next.get(key);
      if (next) {
        this.#next.delete(key);
        next.start();
      }
    };
    promise.then(settled, settled);
    return flight;
  }

  #deferred(key: K, load: () => Promise<V>): NextFlight<V> {
    let resolve!: (value: V) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<V>((done, fail) => {
      resolve = done;
      reject = fail;
    });
    return {
      promise,
      start: () => {
        this.#start(key, load).promise.then(resolve, reject);
      },
    };
  }
}
