import { status } from '@grpc/grpc-js';
import { ServiceError } from '../../common/service-error.js';

/** Bounds of {@link HashingLimiter}. */
export interface HashingLimits {
  /** Hashes computed at once. scrypt is memory-hard: on this project's 2-core machine a third or
   * fourth concurrent hash adds no throughput, only 8 MiB of memory each. */
  maxConcurrent: number;
  /** Calls allowed to wait for a turn; more than this is refused at once. */
  maxWaiting: number;
}

/** 2 at once, 16 waiting: at about 8 hashes a second, a waiting call starts within about 2 s. */
export const DEFAULT_HASHING_LIMITS: HashingLimits = Object.freeze({ maxConcurrent: 2, maxWaiting: 16 });

/** The answer when the queue is full: the gateway turns it into 429 with Retry-After. */
export const TOO_MANY_SIGN_INS = 'Too many password checks at once; try again shortly';

/**
 * Runs password hashing with bounded concurrency and a bounded queue. A slow hash is the point of
 * password storage, so overload must be refused quickly (RESOURCE_EXHAUSTED) rather than queued
 * until every caller's deadline passes; a waiting call whose caller has gone is skipped.
 */
export class HashingLimiter {
  readonly #limits: HashingLimits;
  readonly #waiting: Array<() => void> = [];
  #running = 0;

  constructor(limits: HashingLimits = DEFAULT_HASHING_LIMITS) {
    this.#limits = limits;
  }

  /** Runs `task` when a slot is free; `isCancelled` is checked again when its turn comes. */
  async run<T>(task: () => Promise<T>, isCancelled: () => boolean = () => false): Promise<T> {
    if (this.#running >= this.#limits.maxConcurrent) {
      if (this.#waiting.length >= this.#limits.maxWaiting) {
        throw new ServiceError(status.RESOURCE_EXHAUSTED, TOO_MANY_SIGN_INS);
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    // Here this call holds a slot, either taken above or handed over by the call that finished.
    try {
      if (isCancelled()) throw new ServiceError(status.CANCELLED, 'The caller went away');
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
