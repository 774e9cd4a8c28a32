import { SqliteError, type Statement } from 'better-sqlite3';
import type { TraceSpan } from '../../common/trace-span.js';
import type { Once, Outcome } from '../common/idempotency.js';
import {
  operationOf,
  type SqliteStoreOptions,
  sqliteColumnsAdded,
  sqliteIdLimit,
} from '../common/sqlite-database.js';
import { sqliteIdempotencySchema } from '../common/sqlite-idempotency.js';
import { SqliteServiceStore } from '../common/sqlite-service-store.js';
import {
  type CreateMemberResult,
  type MemberCredentials,
  type MembersStore,
  type RecordedFailures,
  type SignInFailureBounds,
  sweepFailures,
  sweepMembersExpired,
} from './members-store.js';

/**
 * The members table in SQLite; TEXT compares byte for byte (BINARY collation), as usernames must.
 * And its idempotency keys (see idempotency.ts).
 */
export const SQLITE_MEMBERS_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS members (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
  ) STRICT`,
  sqliteIdLimit('members'),
  ...sqliteIdempotencySchema('members_idempotency'),
  // Failed sign-ins in a row per username, known or not (see SignInThrottle), shared by the
  // instances on this file. Times in ms and versions in µs since the epoch, by SQLite's clock.
  `CREATE TABLE IF NOT EXISTS sign_in_failures (
    username TEXT NOT NULL PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    turn_until_ms INTEGER NOT NULL DEFAULT 0,
    turn_holder TEXT NOT NULL DEFAULT ''
  ) STRICT, WITHOUT ROWID`,
  'CREATE INDEX IF NOT EXISTS sign_in_failures_last ON sign_in_failures (last_failure_ms)',
  // The turn columns came after the table first shipped (b69c9cb): a file made then gets them here.
  sqliteColumnsAdded('sign_in_failures', {
    turn_until_ms: 'INTEGER NOT NULL DEFAULT 0',
    turn_holder: "TEXT NOT NULL DEFAULT ''",
  }),
] as const;

/**
 * A batch of a sweep of the oldest keys (see sweepFailures): those with at most so many failures,
 * from a last failure on, so that it reads the index sign_in_failures_last from there rather than
 * from its start. Exported for the test of its query plan.
 */
export const SQLITE_DELETE_OLDEST_FAILURES = `DELETE FROM sign_in_failures WHERE username IN
  (SELECT username FROM sign_in_failures WHERE failures <= ? AND last_failure_ms >= ?
  ORDER BY last_failure_ms LIMIT ?)
  RETURNING last_failure_ms AS lastMs`;

/** Now by SQLite's clock, in ms and in µs (to the ms: 'subsec' has no finer grain). */
const NOW_MS = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
const NOW_US = "CAST(unixepoch('subsec') * 1000000 AS INTEGER)";
const FAILURES_OF = `SELECT failures AS count, ${NOW_MS} - last_failure_ms AS sinceLastMs, version
  FROM sign_in_failures WHERE username = ?`;

/** The accounts in one SQLite file (the default when no MySQL is configured). */
export class SqliteMembersStore extends SqliteServiceStore implements MembersStore {
  readonly #insert;
  readonly #find;
  readonly #delete;
  readonly #updateHash;
  readonly #failuresOf;
  readonly #recordFailure;
  readonly #forgetFailures;
  readonly #claimTurn;
  readonly #releaseTurn;
  readonly #deleteOlder;
  readonly #countKeys;
  readonly #deleteOldest;

  /** Opens (or creates) the file and its tables. */
  constructor(file: string, options: SqliteStoreOptions = {}) {
    super(file, SQLITE_MEMBERS_SCHEMA, 'members_idempotency', options);
    this.#insert = this.db.prepare<[string, string]>(
      'INSERT INTO members (username, password_hash) VALUES (?, ?)',
    );
    this.#find = this.db.prepare<[string], MemberCredentials>(
      'SELECT id, password_hash AS passwordHash FROM members WHERE username = ?',
    );
    this.#delete = this.db.prepare<[string]>('DELETE FROM members WHERE username = ?');
    this.#updateHash = this.db.prepare<[string, number, string]>(
      'UPDATE members SET password_hash = ? WHERE id = ? AND password_hash = ?',
    );
    this.#failuresOf = this.db.prepare<[string], RecordedFailures>(FAILURES_OF);
    // Every assignment of an UPSERT reads the row as it was: failures from the old last failure.
    this.#recordFailure = this.db.prepare<[string, number], RecordedFailures>(
      `INSERT INTO sign_in_failures (username, failures, last_failure_ms, version)
      VALUES (?, 1, ${NOW_MS}, ${NOW_US})
      ON CONFLICT (username) DO UPDATE SET
        failures = CASE WHEN last_failure_ms < excluded.last_failure_ms - ? THEN 1 ELSE failures + 1 END,
        last_failure_ms = excluded.last_failure_ms,
        version = max(version + 1, excluded.version),
        turn_until_ms = 0
      RETURNING failures AS count, 0 AS sinceLastMs, version`,
    );
    this.#forgetFailures = this.db.prepare<[string], RecordedFailures>(
      `UPDATE sign_in_failures SET failures = 0, version = max(version + 1, ${NOW_US}), turn_until_ms = 0
      WHERE username = ?
      RETURNING failures AS count, ${NOW_MS} - last_failure_ms AS sinceLastMs, version`,
    );
    this.#claimTurn = this.db.prepare<[number, string, string, number]>(
      `UPDATE sign_in_failures SET turn_until_ms = ${NOW_MS} + ?, turn_holder = ?
      WHERE username = ? AND version = ? AND turn_until_ms <= ${NOW_MS}`,
    );
    this.#releaseTurn = this.db.prepare<[string, string]>(
      'UPDATE sign_in_failures SET turn_until_ms = 0 WHERE username = ? AND turn_holder = ?',
    );
    // SQLite's DELETE has no LIMIT (unless built with it): the keys are chosen by a subquery.
    this.#deleteOlder = this.db.prepare<[number, number]>(
      `DELETE FROM sign_in_failures WHERE username IN (SELECT username FROM sign_in_failures
      WHERE last_failure_ms < ${NOW_MS} - ? ORDER BY last_failure_ms LIMIT ?)`,
    );
    this.#countKeys = this.db.prepare<[], { keys: number }>('SELECT COUNT(*) AS keys FROM sign_in_failures');
    this.#deleteOldest = this.db.prepare<[number, number, number], { lastMs: number }>(
      SQLITE_DELETE_OLDEST_FAILURES,
    );
  }

  async createMember(
    username: string,
    passwordHash: string,
    parent?: TraceSpan,
  ): Promise<CreateMemberResult> {
    return this.call(operationOf(this.#insert), () => this.#create(username, passwordHash), parent);
  }

  createMemberOnce(
    username: string,
    passwordHash: string,
    once: Once<CreateMemberResult>,
    parent?: TraceSpan,
  ): Promise<Outcome> {
    return this.journal.run(once, () => this.#create(username, passwordHash), parent);
  }

  async findMember(username: string, parent?: TraceSpan): Promise<MemberCredentials | undefined> {
    return this.call(operationOf(this.#find), () => this.#find.get(username), parent);
  }

  async deleteMember(username: string, parent?: TraceSpan): Promise<void> {
    this.call(operationOf(this.#delete), () => this.#delete.run(username), parent);
  }

  deleteMemberOnce(username: string, once: Once<void>, parent?: TraceSpan): Promise<Outcome> {
    return this.journal.run(
      once,
      () => {
        this.#delete.run(username);
      },
      parent,
    );
  }

  override sweepExpired(): Promise<number> {
    return sweepMembersExpired(
      () => this.journal.sweep(),
      (bounds) => this.sweepSignInFailures(bounds),
    );
  }

  async updatePasswordHash(
    id: number,
    oldHash: string,
    newHash: string,
    parent?: TraceSpan,
  ): Promise<boolean> {
    return this.call(
      operationOf(this.#updateHash),
      () => this.#updateHash.run(newHash, id, oldHash).changes === 1,
      parent,
    );
  }

  async signInFailures(key: string, parent?: TraceSpan): Promise<RecordedFailures | undefined> {
    return this.call(operationOf(this.#failuresOf), () => this.#failuresOf.get(key), parent);
  }

  async recordSignInFailure(
    key: string,
    forgetAfterMs: number,
    parent?: TraceSpan,
  ): Promise<RecordedFailures> {
    return this.call(
      operationOf(this.#recordFailure),
      () => this.#recordFailure.get(key, forgetAfterMs)!,
      parent,
    );
  }

  async forgetSignInFailures(key: string, parent?: TraceSpan): Promise<RecordedFailures | undefined> {
    return this.call(operationOf(this.#forgetFailures), () => this.#forgetFailures.get(key), parent);
  }

  async claimSignInTurn(
    key: string,
    version: number,
    holder: string,
    holdMs: number,
    parent?: TraceSpan,
  ): Promise<boolean> {
    return this.call(
      operationOf(this.#claimTurn),
      () => this.#claimTurn.run(holdMs, holder, key, version).changes === 1,
      parent,
    );
  }

  async releaseSignInTurn(key: string, holder: string, parent?: TraceSpan): Promise<void> {
    this.call(operationOf(this.#releaseTurn), () => this.#releaseTurn.run(key, holder), parent);
  }

  sweepSignInFailures(bounds: SignInFailureBounds): Promise<number> {
    const run = async (statement: Statement<unknown[]>, ...values: unknown[]) =>
      this.call(operationOf(statement), () => statement.run(...values).changes);
    return sweepFailures(
      {
        deleteOlderThan: (forgetAfterMs, limit) => run(this.#deleteOlder, forgetAfterMs, limit),
        countKeys: async () => this.call(operationOf(this.#countKeys), () => this.#countKeys.get()!.keys),
        deleteOldest: async (maxFailures, limit, fromMs) => {
          const gone = await this.call(operationOf(this.#deleteOldest), () =>
            this.#deleteOldest.all(maxFailures ?? Number.MAX_SAFE_INTEGER, fromMs, limit),
          );
          return {
            deleted: gone.length,
            lastMs: gone.length === 0 ? undefined : Math.max(...gone.map((row) => row.lastMs)),
          };
        },
      },
      bounds,
    );
  }

  /** Inserts an account; a taken username is an answer. Inside a transaction, only this statement is undone. */
  #create(username: string, passwordHash: string): CreateMemberResult {
    try {
      return { created: true, id: Number(this.#insert.run(username, passwordHash).lastInsertRowid) };
    } catch (error) {
      if (error instanceof SqliteError && error.code === 'SQLITE_CONSTRAINT_UNIQUE')
        return { created: false };
      throw error;
    }
  }
}
