import { setImmediate as nextTurn } from 'node:timers/promises';
import type { TraceSpan } from '../../common/trace-span.js';
import type { Once, Outcome } from '../common/idempotency.js';
import type { ServiceStore } from '../common/service-store.js';

/** What sign-in needs to know about an account. */
export interface MemberCredentials {
  readonly id: number;
  /** The stored hash, Argon2id or an older scrypt one (see password-hasher.ts); never the password. */
  readonly passwordHash: string;
}

/** The outcome of adding an account: a taken username is an answer, not a failure of the store. */
export type CreateMemberResult =
  | { readonly created: true; readonly id: number }
  | { readonly created: false };

/**
 * Failed sign-ins in a row of one key (an account's username, or a name with no account), as the
 * database holds them for every members instance (see SignInThrottle).
 */
export interface RecordedFailures {
  /** Failures in a row; 0 once a successful sign-in forgot them. */
  readonly count: number;
  /** Since the last failure, in ms by the database's clock (so that hosts' clocks do not matter). */
  readonly sinceLastMs: number;
  /**
   * Grows with every change of the record, so that a read overtaken by a later change is known for
   * what it is: the database's clock in µs, or one more than the last version if that is later.
   */
  readonly version: number;
}

/** What a sweep of sign-in failures keeps (see MembersStore.sweepSignInFailures). */
export interface SignInFailureBounds {
  /** A key whose last failure is older than this is forgotten. */
  readonly forgetAfterMs: number;
  /** Keys kept at most; past it those within `freeFailures` go first, oldest first, then the oldest. */
  readonly maxKeys: number;
  readonly freeFailures: number;
}

/**
 * How long failures are kept and how many keys at most: a day, and 100,000 (a guesser's made-up
 * names come at most as fast as passwords are checked, about 150 a second an instance, and are
 * swept every 10 minutes).
 */
export const SIGN_IN_FAILURE_BOUNDS: SignInFailureBounds = Object.freeze({
  forgetAfterMs: 24 * 60 * 60_000,
  maxKeys: 100_000,
  freeFailures: 5,
});

/**
 * Failed sign-ins in a row per username (known or not), shared by every members instance on the
 * database: what SignInThrottle reads and writes (its "ledger").
 */
export interface SignInFailureLedger {
  /** The failures recorded for `key`, if any. */
  signInFailures(key: string, parent: TraceSpan | undefined): Promise<RecordedFailures | undefined>;
  /**
   * Records one more failure of `key`, counted from none when the last was more than
   * `forgetAfterMs` ago; resolves the record as it is now.
   */
  recordSignInFailure(
    key: string,
    forgetAfterMs: number,
    parent: TraceSpan | undefined,
  ): Promise<RecordedFailures>;
  /** Sets `key`'s failures to none (a successful sign-in); resolves the record, if there is one. */
  forgetSignInFailures(key: string, parent: TraceSpan | undefined): Promise<RecordedFailures | undefined>;
  /**
   * Takes the turn of `key` once its wait is over, for one instance at a time: only if its record
   * is still at `version` (no failure or success since it was read) and no instance holds the turn;
   * held by `holder` (a name made for this claim) until the next failure or success, its release,
   * or `holdMs` (a check that never ends). Resolves whether it was taken.
   */
  claimSignInTurn(
    key: string,
    version: number,
    holder: string,
    holdMs: number,
    parent: TraceSpan | undefined,
  ): Promise<boolean>;
  /** Gives back the turn `holder` took (its check never gave an answer), if it still holds it. */
  releaseSignInTurn(key: string, holder: string, parent: TraceSpan | undefined): Promise<void>;
}

/**
 * The accounts' storage. Usernames are compared exactly: case, spaces and every byte count, the
 * same in SQLite and MySQL. Implementations throw only ServiceErrors (UNAVAILABLE when the database
 * cannot be used, INTERNAL otherwise).
 */
export interface MembersStore extends ServiceStore, SignInFailureLedger {
  /** Adds an account; resolves `{ created: false }` when the username is already taken. */
  createMember(
    username: string,
    passwordHash: string,
    parent: TraceSpan | undefined,
  ): Promise<CreateMemberResult>;
  /** The account of a username, if there is one. */
  findMember(username: string, parent: TraceSpan | undefined): Promise<MemberCredentials | undefined>;
  /** Deletes an account; an unknown username is not an error. */
  deleteMember(username: string, parent: TraceSpan | undefined): Promise<void>;
  /** `createMember` at most once per idempotency key, in one transaction with its key (idempotency.ts). */
  createMemberOnce(
    username: string,
    passwordHash: string,
    once: Once<CreateMemberResult>,
    parent: TraceSpan | undefined,
  ): Promise<Outcome>;
  /** `deleteMember` at most once per idempotency key, in one transaction with its key. */
  deleteMemberOnce(username: string, once: Once<void>, parent: TraceSpan | undefined): Promise<Outcome>;
  /**
   * Replaces an account's password hash, only if it is still `oldHash` (so that a password changed
   * meanwhile is not overwritten). Resolves whether it was replaced.
   */
  updatePasswordHash(
    id: number,
    oldHash: string,
    newHash: string,
    parent: TraceSpan | undefined,
  ): Promise<boolean>;
  /**
   * Deletes the keys whose last failure is older than the bounds' `forgetAfterMs`, then, past
   * `maxKeys`, the oldest (those within their free failures first, a success's zero among them), a
   * batch at a time (see sweepFailures); resolves how many. `sweepExpired` runs it with
   * SIGN_IN_FAILURE_BOUNDS.
   */
  sweepSignInFailures(bounds: SignInFailureBounds): Promise<number>;
}

/** The statements of a sweep of sign-in failures; each deletes at most `limit` keys, oldest first. */
export interface FailureSweepSteps {
  deleteOlderThan(forgetAfterMs: number, limit: number): Promise<number>;
  countKeys(): Promise<number>;
  /**
   * The oldest keys whose last failure is at `fromMs` or later, of those with at most `maxFailures`
   * failures when it is given; resolves how many went and the last failure of the newest the batch
   * chose (where the next batch starts), gone or not.
   */
  deleteOldest(maxFailures: number | undefined, limit: number, fromMs: number): Promise<OldestDeleted>;
}

/** What one batch of FailureSweepSteps.deleteOldest deleted. */
export interface OldestDeleted {
  readonly deleted: number;
  /**
   * The largest `last_failure_ms` among the keys the batch chose, deleted or not (on MySQL a key
   * another sweep deleted first, or that failed again, is chosen but kept); undefined when it chose
   * none, as when no key is left from `fromMs` on.
   */
  readonly lastMs: number | undefined;
}

/** Where a sweep's first batch of the oldest keys starts: before any key's last failure. */
export const OLDEST_FIRST_MS = Number.MIN_SAFE_INTEGER;

/** Keys one statement of a sweep deletes at most: each holds its locks only that long. */
const SWEEP_BATCH = 1_000;
/**
 * Statements of each kind per sweep: 250,000 keys, more than made-up names can add between two
 * sweeps (about 150 a second an instance for 10 minutes).
 */
const SWEEP_MAX_BATCHES = 250;

/** A sweep of sign-in failures (MembersStore.sweepSignInFailures) through a store's statements. */
export async function sweepFailures(steps: FailureSweepSteps, bounds: SignInFailureBounds): Promise<number> {
  let deleted = 0;
  for (let batch = 0; batch < SWEEP_MAX_BATCHES; batch++) {
    // SQLite's statements run on the event loop: calls are answered between two of them.
    if (batch > 0) await nextTurn();
    const gone = await steps.deleteOlderThan(bounds.forgetAfterMs, SWEEP_BATCH);
    deleted += gone;
    if (gone < SWEEP_BATCH) break;
  }
  let excess = (await steps.countKeys()) - bounds.maxKeys;
  for (const maxFailures of [bounds.freeFailures, undefined]) {
    // Each batch starts where the one before ended, so that keys past their free failures among the
    // oldest are read once a sweep, not again by every batch (before, 30,000 made-up names among
    // 100,000 guessed accounts took 2.0 s on SQLite, up to 147 ms a batch on the event loop, and
    // 12.4 s on MariaDB; now 0.2 s and 1.5 s).
    let fromMs = OLDEST_FIRST_MS;
    // A success behind the batches (a key past its free failures that they passed, now at none)
    // is read by one more batch from the oldest key, the last of the pass, before the pass after
    // takes guessed accounts: one more read of the keys past their free failures, only then.
    let lastBatch = false;
    for (let batch = 0; excess > 0 && batch < SWEEP_MAX_BATCHES; batch++) {
      await nextTurn();
      const gone = await steps.deleteOldest(maxFailures, Math.min(excess, SWEEP_BATCH), fromMs);
      deleted += gone.deleted;
      excess -= gone.deleted;
      if (lastBatch) break;
      // Only a batch that chose no key ends the pass: one whose keys another instance's sweep took
      // first deletes none, yet keys within their free failures may follow, to go before a
      // guessed account in the pass after.
      if (gone.lastMs !== undefined) fromMs = gone.lastMs;
      else if (maxFailures !== undefined && fromMs !== OLDEST_FIRST_MS) {
        fromMs = OLDEST_FIRST_MS;
        lastBatch = true;
      } else break;
    }
  }
  return deleted;
}

/**
 * Members' `sweepExpired`: its idempotency keys, then its sign-in failures with
 * SIGN_IN_FAILURE_BOUNDS, the second even if the first failed (whose error is thrown once both
 * ran); resolves how many went in all.
 */
export async function sweepMembersExpired(
  sweepKeys: () => Promise<number>,
  sweepSignInFailures: (bounds: SignInFailureBounds) => Promise<number>,
): Promise<number> {
  const outcomes: PromiseSettledResult<number>[] = [];
  for (const sweep of [sweepKeys, () => sweepSignInFailures(SIGN_IN_FAILURE_BOUNDS)]) {
    outcomes.push(
      await sweep().then(
        (value) => ({ status: 'fulfilled', value }) as const,
        (reason: unknown) => ({ status: 'rejected', reason }) as const,
      ),
    );
  }
  let deleted = 0;
  for (const outcome of outcomes) {
    if (outcome.status === 'rejected') throw outcome.reason;
    deleted += outcome.value;
  }
  return deleted;
}
