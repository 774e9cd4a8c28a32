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

/** What {@link HashingLimiter.run} knows of the call it runs for. */
export interface RunOptions {
  /** Whether the caller has gone. */
  isCancelled?: () => boolean;
  /** When the caller stops waiting, in ms since the epoch. */
  deadline?: number;
}

/**
 * 2 at once, 64 waiting. A shorter queue refuses sooner, but clients that do not honour Retry-After
 * (a closed-loop load generator, a naive retry loop) then spin on the refusals and starve the hashing
 * itself: measured with `npm run bench`, 16 waiting cut successful sign-ins from 10/s to 4/s.
 * Calls that would miss their deadline cost nothing: they are dropped when their turn comes.
 */
export const DEFAULT_HASHING_LIMITS: HashingLimits = Object.freeze({ maxConcurrent: 2, maxWaiting: 64 });

/** The answer when the queue is full: the gateway turns it into 429 with Retry-After. */
export const TOO_MANY_SIGN_INS = 'Too many password checks at once; try again shortly';

/**
 * Runs password hashing with bounded concurrency and a bounded queue. A slow hash is the point of
 * password storage, so a full queue is refused at once (RESOURCE_EXHAUSTED), and a waiting call that
 * could no longer be answered in time is dropped instead of hashed.
 */
export class HashingLimiter {
  readonly #limits: HashingLimits;
  readonly #waiting: Array<() => void> = [];
  #running = 0;
  /** Moving average of how long a task takes, once one has finished. */
  #typicalMs: number | undefined;

  constructor(limits: HashingLimits = DEFAULT_HASHING_LIMITS) {
    this.#limits = limits;
  }

  /** Calls waiting for a turn (the queue's depth, for metrics). */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Tasks holding a slot now. */
  get running(): number {
    return this.#running;
  }

  /**
   * Runs `task` when a slot is free. When its turn comes, a call whose caller has gone is dropped,
   * and so is one whose deadline (ms since the epoch) would pass before a typical task ends: a hash
   * finished after the caller stopped waiting is work for nobody.
   */
  async run<T>(
    task: () => Promise<T>,
    { isCancelled = () => false, deadline = Number.POSITIVE_INFINITY }: RunOptions = {},
  ): Promise<T> {
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
      if (this.#typicalMs !== undefined && Date.now() + this.#typicalMs > deadline) {
        throw new ServiceError(status.DEADLINE_EXCEEDED, 'Not enough time left to check the password');
      }
      const started = Date.now();
      const result = await task();
      const tookMs = Date.now() - started;
      this.#typicalMs = this.#typicalMs === undefined ? tookMs : 0.8 * this.#typicalMs + 0.2 * tookMs;
      return result;
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
