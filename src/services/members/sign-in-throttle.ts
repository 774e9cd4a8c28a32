import { randomUUID } from 'node:crypto';
import type { TraceSpan } from '../../common/trace-span.js';
import { type RecordedFailures, SIGN_IN_FAILURE_BOUNDS, type SignInFailureLedger } from './members-store.js';

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
   * Accounts remembered at once in this process; past it one is forgotten, preferably one still
   * within its free failures. About 420 bytes each with a username of 128 characters. (With a
   * ledger, the database holds the counts; this is what the process keeps of them.)
   */
  maxAccounts: number;
}

/**
 * 5 failures in a row are free, then 1 s, 2 s, 4 s … up to 15 minutes between tries: a user who
 * mistypes a few times never waits, and a guesser of one account is down to four tries an hour
 * after 16 failures (with a ledger, on all instances together: see takeTurnAfterWait), instead of
 * as many as the hashing queue runs (about 150 a second). Forgotten a day after the
 * last failure. 20,000 accounts at most in each process, about 8 MiB.
 */
export const DEFAULT_SIGN_IN_THROTTLE: SignInThrottleLimits = Object.freeze({
  freeFailures: SIGN_IN_FAILURE_BOUNDS.freeFailures,
  firstWaitMs: 1_000,
  maxWaitMs: 15 * 60_000,
  forgetAfterMs: SIGN_IN_FAILURE_BOUNDS.forgetAfterMs,
  maxAccounts: 20_000,
});

/**
 * How long a turn after a wait is held for a check at most: a second past its deadline (1 s at
 * least), 11 s without one, 30 s at most.
 */
function holdMs(call: SignInCall): number {
  const left =
    call.deadline !== undefined && Number.isFinite(call.deadline) ? call.deadline - Date.now() : 10_000;
  return Math.round(Math.min(30_000, Math.max(1_000, left + 1_000)));
}

/** `attempt`, giving the ledger's turn back when it ends undecided (a check that never answered). */
function givingBackTurn(attempt: SignInAttempt, giveBack: () => Promise<void>): SignInAttempt {
  let ended = false;
  return {
    matched: () => {
      ended = true;
      return attempt.matched();
    },
    failed: () => {
      ended = true;
      return attempt.failed();
    },
    undecided: () => {
      if (ended) return;
      ended = true;
      // Given back before the sign-ins waiting behind it here are decided (attempt.undecided wakes
      // them): the next one's claim, on another connection of a pool, would else land first and
      // find the turn still held. Not given back (the database away): it ends with its hold.
      giveBack()
        .catch(() => {})
        .finally(() => attempt.undecided());
    },
  };
}

/** One account's failures in a row, and when it may try again (on the throttle's clock). */
interface Failures {
  readonly count: number;
  readonly lastAt: number;
  readonly retryAt: number;
  /** The ledger's version of the record this was learnt from (0: counted here only). */
  readonly version: number;
}

const DONE: Promise<void> = Promise.resolve();

/** A waiting sign-in gives up this long before its deadline, so that its refusal reaches the caller. */
const DEADLINE_MARGIN_MS = 50;
/** How many of the oldest accounts are looked at for one to forget when the throttle is full. */
const EVICTION_SCAN = 64;

/** What {@link SignInThrottle.begin} decides for one sign-in. */
export type SignInTurn =
  /** Let through; `waited`: behind its account's other checks first. */
  | { readonly allowed: true; readonly attempt: SignInAttempt; readonly waited: boolean }
  /**
   * Refused: `failures`, the account must wait `waitMs` after its failures; `busy`, the sign-in
   * waited behind its account's other checks until its deadline was near (or its caller left).
   */
  | { readonly allowed: false; readonly reason: 'failures' | 'busy'; readonly waitMs: number };

/** A sign-in let through: one of its ends is called once its password was checked, or was not. */
export interface SignInAttempt {
  /**
   * The password matched: the account starts again from no failures. Resolves once the ledger
   * knows; rejects if it could not be told (forgotten in this process only).
   */
  matched(): Promise<void>;
  /**
   * The password was wrong, or the account unknown. Resolves once the ledger counted it; rejects
   * if it could not (counted in this process only).
   */
  failed(): Promise<void>;
  /** The check never gave an answer (a fault, a full queue, a caller gone): nothing is counted. */
  undecided(): void;
}

/** What {@link SignInThrottle.begin} knows of the call it decides for. */
export interface SignInCall {
  /** When the caller stops waiting, in ms since the epoch (Date.now()). */
  deadline?: number;
  /** Whether the caller has gone. */
  isCancelled?: () => boolean;
  /** The call's span, for the ledger's database operations (see traceParentOf). */
  parent?: TraceSpan;
}

/** A sign-in waiting for its account's checks before it to end. */
interface Waiter {
  readonly call: SignInCall;
  readonly resolve: (turn: SignInTurn) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Slows down the guessing of one account's password: after a few failed sign-ins in a row, each
 * further one must wait twice as long as the one before, and a sign-in that comes sooner is refused
 * without its password being checked (so it costs no hash, and tells nothing). Unknown usernames
 * are counted like known ones, so that being throttled tells nobody whether an account exists.
 *
 * Guesses sent at once must not all be checked before the first failure is known: an account has
 * at most as many checks running as it has free failures left (and one once they are used up);
 * more wait their turn, in order, and are decided when one ends, or refused shortly before their
 * deadline. So the right password sent many times at once waits, never refused, while a burst of
 * guesses gets the free failures and one more.
 *
 * With a ledger (the members store), failures are counted in the database, so that every members
 * instance on it sees every failure, and a restart forgets nothing: each sign-in reads its
 * account's record before its check (unless this process already knows it must wait), and each
 * failure or success is written before its answer. The process keeps what it learnt, on its
 * monotonic clock, to refuse without asking and to let its own sign-ins of one account through in
 * turn; a read overtaken by a later change is known by the record's version and not learnt.
 * When a wait ends, the first check is one instance's: it takes the account's turn in the ledger
 * (takeTurnAfterWait). Without a ledger (tests), the counts live in the process only.
 *
 * Its cost is that anybody who knows a username can keep its owner waiting too, as with any limit
 * per account; a wait is never longer than `maxWaitMs`.
 */
export class SignInThrottle {
  readonly #limits: SignInThrottleLimits;
  readonly #now: () => number;
  /** In order of last failure, oldest first (a failure moves its account to the end). */
  readonly #failures = new Map<string, Failures>();
  /** Checks running per account: at most as many accounts as calls run at once. */
  readonly #checking = new Map<string, number>();
  /** Sign-ins waiting for a turn, per account, in order of arrival. */
  readonly #waiting = new Map<string, Waiter[]>();
  readonly #ledger: SignInFailureLedger | undefined;
  #throttled = 0;

  constructor(
    limits: SignInThrottleLimits = DEFAULT_SIGN_IN_THROTTLE,
    now: () => number = () => performance.now(),
    ledger?: SignInFailureLedger,
  ) {
    this.#limits = limits;
    this.#now = now;
    this.#ledger = ledger;
  }

  /** Accounts with failures this process knows of now (for metrics). */
  get accounts(): number {
    const now = this.#now();
    this.#forgetOld(now);
    let failing = 0;
    for (const failures of this.#failures.values()) {
      if (failures.count > 0 && now - failures.lastAt < this.#limits.forgetAfterMs) failing++;
    }
    return failing;
  }

  /** Sign-ins refused so far because their account had to wait after its failures (for metrics). */
  get throttled(): number {
    return this.#throttled;
  }

  /**
   * Whether `username` may try now: an attempt to end once its check is done, or the wait it is
   * refused with. A sign-in behind its account's running checks waits for them first.
   */
  async begin(username: string, call: SignInCall = {}): Promise<SignInTurn> {
    this.#forgetOld(this.#now());
    if (this.#ledger) {
      // What this process knows may be behind the ledger, never ahead: a wait it knows of stands.
      const known = this.#refusal(username);
      if (known !== undefined) return known;
      const before = this.#known(username)?.version ?? 0;
      const record = await this.#ledger.signInFailures(username, call.parent);
      // No record of what was learnt from it (forgotten elsewhere, then swept): none here either,
      // else its turn, claimed at a version the ledger no longer has, would be refused for ever.
      if (record === undefined && before !== 0 && this.#known(username)?.version === before) {
        this.#forget(username);
      }
      this.#learn(username, record);
    }
    // Behind others waiting it waits too (in order), unless its account must wait anyway.
    const turn =
      (this.#waiting.has(username) ? this.#refusal(username) : this.#decide(username, call, false)) ??
      (await this.#waitForTurn(username, call));
    return this.#ledger && turn.allowed ? this.#takeTurnAfterWait(this.#ledger, username, turn, call) : turn;
  }

  #waitForTurn(username: string, call: SignInCall): Promise<SignInTurn> {
    return new Promise((resolve) => {
      const waiter: Waiter = { call, resolve, timer: undefined };
      const queue = this.#waiting.get(username);
      if (queue) queue.push(waiter);
      else this.#waiting.set(username, [waiter]);
      if (call.deadline !== undefined && Number.isFinite(call.deadline)) {
        const leftMs = Math.max(0, call.deadline - Date.now() - DEADLINE_MARGIN_MS);
        waiter.timer = setTimeout(() => this.#giveUp(username, waiter), leftMs);
      }
    });
  }

  /**
   * After a wait, the ledger's turn: the first check of an account past its free failures once its
   * wait is over is one instance's, as it is one sign-in's in this process, so that a guesser
   * with a sign-in on each instance still gets one try per wait. Another instance holding it, or a
   * failure written since the read, is a refusal.
   */
  async #takeTurnAfterWait(
    ledger: SignInFailureLedger,
    username: string,
    turn: SignInTurn & { allowed: true },
    call: SignInCall,
  ): Promise<SignInTurn> {
    const known = this.#known(username);
    // Version 0: counted in this process only (the ledger took none of it), nothing to share.
    if (known === undefined || known.count <= this.#limits.freeFailures || known.version === 0) return turn;
    // Named for this claim: a release comes from its holder only, so a check that outlived its hold
    // does not end the turn another instance took since.
    const holder = randomUUID();
    let taken: boolean;
    try {
      taken = await ledger.claimSignInTurn(username, known.version, holder, holdMs(call), call.parent);
    } catch (error) {
      turn.attempt.undecided();
      throw error;
    }
    if (taken)
      return {
        ...turn,
        attempt: givingBackTurn(turn.attempt, () => ledger.releaseSignInTurn(username, holder, call.parent)),
      };
    turn.attempt.undecided();
    // A failure written since the read sets a new wait; a success, none (so this sign-in starts
    // over, once: with no failures past the free ones it takes no turn); else the other instance's
    // check decides.
    this.#learn(username, await ledger.signInFailures(username, call.parent).catch(() => undefined));
    const refusal = this.#refusal(username);
    if (refusal !== undefined) return refusal;
    if ((this.#known(username)?.count ?? 0) <= this.#limits.freeFailures) return this.begin(username, call);
    this.#throttled++;
    return { allowed: false, reason: 'failures', waitMs: this.#limits.firstWaitMs };
  }

  /** The turn of a sign-in of `username` now, or undefined if it must wait for a check to end. */
  #decide(username: string, call: SignInCall, waited: boolean): SignInTurn | undefined {
    const refusal = this.#refusal(username);
    if (refusal !== undefined) return refusal;
    const failures = this.#known(username);
    const checking = this.#checking.get(username) ?? 0;
    if (checking >= Math.max(1, this.#limits.freeFailures - (failures?.count ?? 0))) return undefined;
    this.#checking.set(username, checking + 1);
    const failing = (failures?.count ?? 0) > 0;
    return { allowed: true, attempt: this.#attempt(username, call.parent, failing), waited };
  }

  /** The refusal of a sign-in of `username` that comes before its account's wait is over. */
  #refusal(username: string): SignInTurn | undefined {
    const failures = this.#known(username);
    const now = this.#now();
    if (failures === undefined || now >= failures.retryAt) return undefined;
    this.#throttled++;
    return { allowed: false, reason: 'failures', waitMs: failures.retryAt - now };
  }

  /** `failing`: the account had failures when the attempt was let through (see #tellLedger). */
  #attempt(username: string, parent: TraceSpan | undefined, failing: boolean): SignInAttempt {
    let ended = false;
    const settle = (): void => {
      const left = (this.#checking.get(username) ?? 1) - 1;
      if (left > 0) this.#checking.set(username, left);
      else this.#checking.delete(username);
      this.#wake(username);
    };
    const end = (outcome: 'matched' | 'failed' | 'undecided'): Promise<void> => {
      if (ended) return DONE;
      ended = true;
      if (this.#ledger === undefined || outcome === 'undecided') {
        // The password is known to whoever sent it: what was counted before no longer matters.
        if (outcome === 'matched') this.#forget(username);
        else if (outcome === 'failed') this.#count(username);
        settle();
        return DONE;
      }
      // The sign-ins waiting behind this one are decided once the ledger has it.
      return this.#tellLedger(this.#ledger, username, outcome, parent, failing).finally(settle);
    };
    return {
      matched: () => end('matched'),
      failed: () => end('failed'),
      undecided: () => void end('undecided'),
    };
  }

  /** Writes a check's outcome to the ledger and learns the record; counts it here if that fails. */
  async #tellLedger(
    ledger: SignInFailureLedger,
    username: string,
    outcome: 'matched' | 'failed',
    parent: TraceSpan | undefined,
    failing: boolean,
  ): Promise<void> {
    try {
      if (outcome === 'failed') {
        this.#learn(username, await ledger.recordSignInFailure(username, this.#limits.forgetAfterMs, parent));
      } else if (failing || (this.#known(username)?.count ?? 0) > 0) {
        // Known from the read before the check (or learnt since), even if this process has let go
        // of it meanwhile (a full table): with no failure known, there is nothing to forget.
        const record = await ledger.forgetSignInFailures(username, parent);
        // No record: forgotten elsewhere and swept since the read; none is left here either.
        if (record === undefined) this.#forget(username);
        else this.#learn(username, record);
      }
    } catch (error) {
      if (outcome === 'failed') this.#count(username);
      else this.#forget(username);
      throw error;
    }
  }

  /**
   * Takes what the ledger holds for `username`, unless this process already learnt a later version
   * (a read overtaken by a failure or success written meanwhile).
   */
  #learn(username: string, record: RecordedFailures | undefined): void {
    if (record === undefined) return;
    const known = this.#known(username);
    if (known !== undefined && record.version <= known.version) return;
    const lastAt = this.#now() - Math.max(0, record.sinceLastMs);
    const count = record.sinceLastMs >= this.#limits.forgetAfterMs ? 0 : record.count;
    this.#remember(username, {
      count,
      lastAt,
      retryAt: lastAt + this.#waitAfter(count),
      version: record.version,
    });
  }

  /** Forgets the failures of `username`, keeping the version learnt (see #learn). */
  #forget(username: string): void {
    const known = this.#known(username);
    if (known === undefined || known.version === 0) this.#failures.delete(username);
    else this.#failures.set(username, { ...known, count: 0, retryAt: known.lastAt });
  }

  /** Decides the waiting sign-ins of `username` that can be decided now, in order. */
  #wake(username: string): void {
    const queue = this.#waiting.get(username);
    while (queue !== undefined && queue.length > 0) {
      const waiter = queue[0]!;
      let turn: SignInTurn | undefined;
      if (waiter.call.isCancelled?.()) {
        // Its caller is gone: nobody reads the answer, and nothing is counted.
        turn = { allowed: false, reason: 'busy', waitMs: 0 };
      } else {
        turn = this.#decide(username, waiter.call, true);
        if (turn === undefined) break;
      }
      queue.shift();
      clearTimeout(waiter.timer);
      waiter.resolve(turn);
    }
    if (queue?.length === 0) this.#waiting.delete(username);
  }

  /** A waiting sign-in whose deadline is near: refused, so that its caller hears why. */
  #giveUp(username: string, waiter: Waiter): void {
    const queue = this.#waiting.get(username);
    const index = queue?.indexOf(waiter) ?? -1;
    if (queue === undefined || index < 0) return;
    queue.splice(index, 1);
    if (queue.length === 0) this.#waiting.delete(username);
    waiter.resolve({ allowed: false, reason: 'busy', waitMs: 0 });
  }

  /** Counts one more failure of `username` here and sets when it may try again. */
  #count(username: string): void {
    const now = this.#now();
    const known = this.#known(username);
    const count = (known?.count ?? 0) + 1;
    this.#remember(username, {
      count,
      lastAt: now,
      retryAt: now + this.#waitAfter(count),
      version: known?.version ?? 0,
    });
  }

  /** The wait after `count` failures in a row: none within the free ones, then doubling to the cap. */
  #waitAfter(count: number): number {
    const past = count - this.#limits.freeFailures;
    return past > 0 ? Math.min(this.#limits.maxWaitMs, this.#limits.firstWaitMs * 2 ** (past - 1)) : 0;
  }

  #remember(username: string, failures: Failures): void {
    // Deleted first so that the account moves to the end of the map's order.
    this.#failures.delete(username);
    this.#failures.set(username, failures);
    if (this.#failures.size > this.#limits.maxAccounts) this.#evictOne();
  }

  /**
   * Forgets one account to make room: among the oldest few, one still within its free failures
   * if there is one, else the oldest. So usernames made up by the thousand to fill the throttle
   * push out each other before an account whose guesser has used up its free failures.
   */
  #evictOne(): void {
    let scanned = 0;
    let oldest: string | undefined;
    for (const [username, failures] of this.#failures) {
      oldest ??= username;
      if (failures.count <= this.#limits.freeFailures) {
        this.#failures.delete(username);
        return;
      }
      if (++scanned >= EVICTION_SCAN) break;
    }
    if (oldest !== undefined) this.#failures.delete(oldest);
  }

  /**
   * What this process knows of `username`, unless its last failure is `forgetAfterMs` old: then it
   * is dropped. (#forgetOld stops at the first account that is not, and one learnt from the ledger
   * may have failed last long before those ahead of it in the map.)
   */
  #known(username: string): Failures | undefined {
    const failures = this.#failures.get(username);
    if (failures === undefined || this.#now() - failures.lastAt < this.#limits.forgetAfterMs) return failures;
    this.#failures.delete(username);
    return undefined;
  }

  /** Drops, oldest first, the accounts whose last failure is older than `forgetAfterMs`. */
  #forgetOld(now: number): void {
    for (const [username, failures] of this.#failures) {
      if (now - failures.lastAt < this.#limits.forgetAfterMs) return;
      this.#failures.delete(username);
    }
  }
}
