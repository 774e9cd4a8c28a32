import { status } from '@grpc/grpc-js';
import { ServiceError } from '../../common/service-error.js';

/** Bounds of {@link HashingLimiter}. */
export interface HashingLimits {
  /** Hashes computed at once. Each Argon2id check is one thread busy for about 12 ms with 19 MiB:
   * on this project's 2-core machine a third one adds no throughput, only memory. */
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
  /**
   * Whether the call already waited in a queue of its own before this one (sign-ins of one account
   * wait for each other: sign-in-throttle.ts): short of time then, it is refused as by a full queue.
   */
  queuedBefore?: boolean;
}

/**
 * 2 at once (one per core, 38 MiB of Argon2id memory, returned when the checks end), 64 waiting:
 * about 0.4 s of queue at 12 ms a check, well inside the gateway's 5 s deadline. A shorter queue
 * refuses sooner, but clients that do not honour Retry-After (a closed-loop load generator, a naive
 * retry loop) then spin on the refusals and starve the hashing itself: measured with `npm run bench`
 * under scrypt, 16 waiting cut successful sign-ins from 10/s to 4/s. Whatever the count, a call that
 * the queue could not answer before its deadline is refused at once (see {@link HashingLimiter.run}).
 */
export const DEFAULT_HASHING_LIMITS: HashingLimits = Object.freeze({ maxConcurrent: 2, maxWaiting: 64 });

/**
 * A call starts only with this many typical tasks' time left before its deadline: its own task, and
 * as much again because a check takes longer than usual when the cores get busier (measured: with
 * half a task of margin, loaded test runs still saw calls time out).
 */
const START_MARGIN_TASKS = 2;
/** The least time before its deadline at which a waiting call gives up, before any task was timed. */
const MIN_MARGIN_MS = 20;

/** The answer to a call whose deadline is shorter than a password check takes. */
export const DEADLINE_TOO_SHORT = 'The deadline is too short for a password check';

/** The answer when the queue is full or too slow: the gateway turns it into 429 with Retry-After. */
export const TOO_MANY_SIGN_INS = 'Too many password checks at once; try again shortly';

/**
 * Runs password hashing with bounded concurrency and a bounded queue. A slow hash is the point of
 * password storage, so an overloaded queue refuses (RESOURCE_EXHAUSTED, which the gateway answers
 * with 429 and Retry-After) rather than let a caller wait past its deadline for a 504: at once when
 * the queue is full or would not reach the call in time, and later, still before the deadline, if
 * the queue turns out slower than estimated.
 */
export class HashingLimiter {
  readonly #limits: HashingLimits;
  readonly #waiting: Waiter[] = [];
  #running = 0;
  /**
   * How long a task takes, once one has finished: a moving average, so that one slow check (the
   * cores are shared) does not make the queue refuse everyone for a while.
   */
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
   * Runs `task` when a slot is free. A call is refused at once when the queue is full, or when, once
   * a task has been timed, the queue ahead of it and its own task would outlast its deadline (ms
   * since the epoch). A waiting call leaves the queue, refused, when less than two typical tasks'
   * time is left before its deadline; a call whose caller has gone is dropped when its turn comes
   * (or sooner, when a new call finds the queue with it), and one with less than that time left is
   * refused: a hash finished after the caller stopped waiting is work for nobody.
   */
  async run<T>(
    task: () => Promise<T>,
    { isCancelled = () => false, deadline = Number.POSITIVE_INFINITY, queuedBefore = false }: RunOptions = {},
  ): Promise<T> {
    const waits = this.#running >= this.#limits.maxConcurrent;
    if (waits) {
      this.#dropCancelled();
      const turnsAhead = Math.ceil((this.#waiting.length + 1) / this.#limits.maxConcurrent);
      if (this.#wouldMiss(deadline, 0)) throw queuedBefore ? tooManySignIns() : this.#deadlineTooShort();
      if (this.#waiting.length >= this.#limits.maxWaiting || this.#wouldMiss(deadline, turnsAhead)) {
        throw tooManySignIns();
      }
      await this.#wait(deadline, isCancelled);
    } else {
      this.#running++;
    }
    // Here this call holds a slot, either taken above or handed over by the call that finished.
    try {
      if (isCancelled()) throw callerGone();
      // Short of time after a wait: the queue's doing. Without one: the deadline's own.
      if (this.#wouldMiss(deadline, 0)) {
        throw waits || queuedBefore ? tooManySignIns() : this.#deadlineTooShort();
      }
      const started = Date.now();
      const result = await task();
      const tookMs = Date.now() - started;
      this.#typicalMs = this.#typicalMs === undefined ? tookMs : 0.8 * this.#typicalMs + 0.2 * tookMs;
      return result;
    } finally {
      const next = this.#waiting.shift();
      if (next) next.takeTurn();
      else this.#running--;
    }
  }

  /**
   * Waits in the queue until a finishing call hands its slot over, or refuses the call when its
   * deadline comes within the start margin first (a stalled queue still answers 429, not 504).
   */
  #wait(deadline: number, isCancelled: () => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        isCancelled,
        takeTurn: () => {
          clearTimeout(timer);
          resolve();
        },
        drop: () => {
          clearTimeout(timer);
          reject(callerGone());
        },
      };
      if (deadline !== Number.POSITIVE_INFINITY) {
        const marginMs = Math.max(START_MARGIN_TASKS * (this.#typicalMs ?? 0), MIN_MARGIN_MS);
        timer = setTimeout(
          () => {
            const index = this.#waiting.indexOf(waiter);
            if (index >= 0) this.#waiting.splice(index, 1);
            reject(tooManySignIns());
          },
          Math.max(0, deadline - marginMs - Date.now()),
        );
        timer.unref();
      }
      this.#waiting.push(waiter);
    });
  }

  /**
   * Takes the calls whose callers have gone out of the queue. Otherwise each kept its place until
   * its turn: callers that left (a gateway's clients gone) filled the queue, and a live call was
   * refused as by a full one, or as too far back for its deadline, until the running checks ended.
   */
  #dropCancelled(): void {
    for (let index = this.#waiting.length - 1; index >= 0; index--) {
      const waiter = this.#waiting[index]!;
      if (!waiter.isCancelled()) continue;
      this.#waiting.splice(index, 1);
      waiter.drop();
    }
  }

  /**
   * The answer to a call whose own deadline leaves too little time for a check even with nobody
   * ahead of it: not the queue's fault, so not RESOURCE_EXHAUSTED (a client would retry it, with the
   * same deadline, for ever), but DEADLINE_EXCEEDED with the time a check needs. The caller's doing,
   * so not logged as the service's fault.
   */
  #deadlineTooShort(): ServiceError {
    const neededMs = Math.ceil(START_MARGIN_TASKS * (this.#typicalMs ?? 0));
    return new ServiceError(
      status.DEADLINE_EXCEEDED,
      `${DEADLINE_TOO_SHORT}: allow at least ${neededMs} ms`,
      {
        callersDoing: true,
      },
    );
  }

  /**
   * Whether a call would likely miss `deadline` after waiting `turnsAhead` typical tasks for a slot
   * (each slot frees up once per typical task), keeping the start margin. Never, before a task has
   * been timed or without a deadline.
   */
  #wouldMiss(deadline: number, turnsAhead: number): boolean {
    if (this.#typicalMs === undefined || deadline === Number.POSITIVE_INFINITY) return false;
    return Date.now() + (turnsAhead + START_MARGIN_TASKS) * this.#typicalMs > deadline;
  }
}

/** A call in the queue. */
interface Waiter {
  /** Whether its caller has gone. */
  isCancelled(): boolean;
  /** Hands this call the slot of a call that finished. */
  takeTurn(): void;
  /** Refuses this call, taken out of the queue because its caller has gone. */
  drop(): void;
}

/** The end of a call whose caller has gone: nobody reads it, but its handler must end. */
function callerGone(): ServiceError {
  return new ServiceError(status.CANCELLED, 'The caller went away');
}

/** The refusal of a password check that the queue cannot take or reach in time. */
export function tooManySignIns(): ServiceError {
  return new ServiceError(status.RESOURCE_EXHAUSTED, TOO_MANY_SIGN_INS);
}
