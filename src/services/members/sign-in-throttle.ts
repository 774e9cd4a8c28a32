/** Bounds of {@link SignInThrottle}. */
export interface SignInThrottleLimits {
  /** Failed sign-ins in a row an account may have before the next one waits. */
  freeFailures: number;
  /** The wait after the first failure past the free ones; each further failure doubles it. */
  firstWaitMs: number;
  /** The longest wait. */
  maxWaitMs: number;
  /** An account with no failed sign-in for this long starts again from none. */
  forgetAfterMs: number;
  /**
   * Accounts remembered at once; past it the one whose last failure is oldest is forgotten. Each
   * takes about 200 bytes with a username of 128 characters.
   */
  maxAccounts: number;
}

/**
 * 5 failures in a row are free, then 1 s, 2 s, 4 s … up to 15 minutes between tries: a user who
 * mistypes a few times never waits, and a guesser of one account is down to four tries an hour
 * after 16 failures, instead of as many as the hashing queue runs (about 150 a second). Forgotten a
 * day after the last failure. 50,000 accounts at most, about 10 MiB.
 */
export const DEFAULT_SIGN_IN_THROTTLE: SignInThrottleLimits = Object.freeze({
  freeFailures: 5,
  firstWaitMs: 1_000,
  maxWaitMs: 15 * 60_000,
  forgetAfterMs: 24 * 60 * 60_000,
  maxAccounts: 50_000,
});

/** One account's failures in a row, and when it may try again (ms since the epoch). */
interface Failures {
  readonly count: number;
  readonly lastAt: number;
  readonly retryAt: number;
}

/** The wait asked of a sign-in refused because another one of its account is being checked. */
const ONE_AT_A_TIME_WAIT_MS = 1_000;

/** What {@link SignInThrottle.begin} decides for one sign-in. */
export type SignInTurn =
  | { readonly allowed: true; readonly attempt: SignInAttempt }
  | { readonly allowed: false; readonly waitMs: number };

/** A sign-in let through: one of its ends is called once its password was checked, or was not. */
export interface SignInAttempt {
  /** The password matched: the account starts again from no failures. */
  matched(): void;
  /** The password was wrong, or the account unknown. */
  failed(): void;
  /** The check never gave an answer (a fault, a full queue, a caller gone): nothing is counted. */
  undecided(): void;
}

/**
 * Slows down the guessing of one account's password: after a few failed sign-ins in a row, each
 * further one must wait twice as long as the one before, and a sign-in that comes sooner is refused
 * without its password being checked (so it costs no hash, and tells nothing). Unknown usernames
 * are counted like known ones, so that being throttled tells nobody whether an account exists.
 *
 * Guesses sent at once would all be checked before the first failure is known: so once an account
 * has failed, it has at most as many checks running as it has free failures left, and one past
 * them. An account with no failure has no such bound (the hashing queue is its bound), so that one
 * account's concurrent sign-ins with the right password, a service's or a benchmark's, pass.
 *
 * Kept in this process's memory: several members instances each count what they see, and a
 * restart forgets. Its cost is that anybody who knows a username can keep its owner waiting too,
 * as with any limit per account; a wait is never longer than `maxWaitMs`.
 */
export class SignInThrottle {
  readonly #limits: SignInThrottleLimits;
  readonly #now: () => number;
  /** In order of last failure, oldest first (a failure moves its account to the end). */
  readonly #failures = new Map<string, Failures>();
  /** Checks running per account: at most as many accounts as the hashing queue holds calls. */
  readonly #checking = new Map<string, number>();
  #throttled = 0;

  constructor(limits: SignInThrottleLimits = DEFAULT_SIGN_IN_THROTTLE, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  /** Accounts whose failures are remembered now (for metrics). */
  get accounts(): number {
    return this.#failures.size;
  }

  /** Sign-ins refused so far because their account had to wait (for metrics). */
  get throttled(): number {
    return this.#throttled;
  }

  /** Whether `username` may try now; if so, the attempt to end once its check is done. */
  begin(username: string): SignInTurn {
    const now = this.#now();
    this.#forgetOld(now);
    const failures = this.#failures.get(username);
    const checking = this.#checking.get(username) ?? 0;
    if (failures !== undefined) {
      const waitMs =
        now < failures.retryAt
          ? failures.retryAt - now
          : checking >= Math.max(1, this.#limits.freeFailures - failures.count)
            ? ONE_AT_A_TIME_WAIT_MS
            : 0;
      if (waitMs > 0) {
        this.#throttled++;
        return { allowed: false, waitMs };
      }
    }
    this.#checking.set(username, checking + 1);
    let ended = false;
    const end = (): boolean => {
      if (ended) return false;
      ended = true;
      const left = (this.#checking.get(username) ?? 1) - 1;
      if (left > 0) this.#checking.set(username, left);
      else this.#checking.delete(username);
      return true;
    };
    return {
      allowed: true,
      attempt: {
        // The password is known to whoever sent it: what was counted before no longer matters.
        matched: () => end() && this.#failures.delete(username),
        failed: () => end() && this.#count(username),
        undecided: end,
      },
    };
  }

  /** Counts one more failure of `username` and sets when it may try again. */
  #count(username: string): void {
    const now = this.#now();
    const count = (this.#failures.get(username)?.count ?? 0) + 1;
    const past = count - this.#limits.freeFailures;
    const waitMs =
      past > 0 ? Math.min(this.#limits.maxWaitMs, this.#limits.firstWaitMs * 2 ** (past - 1)) : 0;
    // Deleted first so that the account moves to the end of the map's order.
    this.#failures.delete(username);
    this.#failures.set(username, { count, lastAt: now, retryAt: now + waitMs });
    if (this.#failures.size > this.#limits.maxAccounts) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
  }

  /** Drops, oldest first, the accounts whose last failure is older than `forgetAfterMs`. */
  #forgetOld(now: number): void {
    for (const [username, failures] of this.#failures) {
      if (now - failures.lastAt < this.#limits.forgetAfterMs) return;
      this.#failures.delete(username);
    }
  }
}
