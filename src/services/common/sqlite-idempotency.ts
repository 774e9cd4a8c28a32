import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Database, Statement } from 'better-sqlite3';
import type { TraceSpan } from '../../common/trace-span.js';
import { transactionOn } from './database-telemetry.js';
import {
  IDEMPOTENCY_SWEEP_BATCH,
  IDEMPOTENCY_SWEEP_MAX_BATCHES,
  type IdempotencyClaim,
  isExpired,
  type JournalRow,
  journalSettings,
  type Once,
  type Outcome,
  outcomeFor,
} from './idempotency.js';
import { operationOf, type SqliteCall, type SqliteStoreOptions, sqliteCaller } from './sqlite-database.js';

/**
 * The journal table of one service in SQLite (see idempotency.ts). `created_at` is in ms since the
 * epoch, by the store's clock; the key is compared byte for byte (BINARY collation).
 */
export function sqliteIdempotencySchema(table: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (
      idem_key TEXT NOT NULL PRIMARY KEY,
      method TEXT NOT NULL,
      fingerprint BLOB NOT NULL,
      code INTEGER NOT NULL,
      message TEXT NOT NULL,
      response BLOB NOT NULL,
      created_at INTEGER NOT NULL
    ) STRICT`,
    `CREATE INDEX IF NOT EXISTS ${table}_created_at ON ${table} (created_at)`,
  ];
}

/**
 * Keys and outcomes of one service's writes in its SQLite file.
 *
 * better-sqlite3 is synchronous, so a write and its row are one synchronous IMMEDIATE transaction:
 * no other call of this process can run a statement in between, and another process sharing the file
 * waits for the write lock (busy timeout) and then finds the row.
 */
export class SqliteIdempotencyJournal {
  readonly #db: Database;
  readonly #call: SqliteCall;
  readonly #table: string;
  readonly #retentionMs: number;
  readonly #now: () => number;
  readonly #find: Statement<[string], JournalRow>;
  readonly #insert: Statement<[string, string, Buffer, number, string, Uint8Array, number]>;
  readonly #forget: Statement<[string]>;
  readonly #sweep: Statement<[number, number]>;

  /**
   * Prepares the statements; the table must exist (its schema is part of the store's). The store's
   * options give the keys' retention and clock, and what times the journal's operations with the
   * store's own.
   */
  constructor(db: Database, table: string, options: SqliteStoreOptions = {}) {
    this.#db = db;
    this.#call = sqliteCaller(db, options.observer);
    this.#table = table;
    ({ retentionMs: this.#retentionMs, now: this.#now } = journalSettings(options.idempotency));
    this.#find = db.prepare(
      `SELECT method, fingerprint, code, message, response, created_at AS createdAt FROM ${table} WHERE idem_key = ?`,
    );
    this.#insert = db.prepare(
      `INSERT INTO ${table} (idem_key, method, fingerprint, code, message, response, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#forget = db.prepare(`DELETE FROM ${table} WHERE idem_key = ?`);
    this.#sweep = db.prepare(
      `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE created_at <= ? ORDER BY created_at LIMIT ?)`,
    );
  }

  /**
   * The outcome recorded for a live key, undefined if none; FAILED_PRECONDITION for another request.
   * `parent` is the span of the call it is made for (see SqliteCall).
   */
  async recall(claim: IdempotencyClaim, parent?: TraceSpan): Promise<Outcome | undefined> {
    return this.#call(operationOf(this.#find), () => this.#recall(claim), parent);
  }

  /**
   * Runs `write` and records its outcome under the claim's key, in one transaction; or, when the key
   * is live, answers its recorded outcome without writing. `write` must be synchronous. `parent` is
   * the span of the call it is made for.
   */
  async run<Result>(once: Once<Result>, write: () => Result, parent?: TraceSpan): Promise<Outcome> {
    const { claim } = once;
    return this.#call(
      transactionOn(this.#table),
      () =>
        this.#db
          .transaction(() => {
            const earlier = this.#recall(claim);
            if (earlier) return earlier;
            const outcome = once.outcomeOf(write());
            this.#insert.run(
              claim.key,
              claim.method,
              claim.fingerprint,
              outcome.code,
              outcome.message,
              outcome.response,
              this.#now(),
            );
            return outcome;
          })
          .immediate(),
      parent,
    );
  }

  /** Deletes expired keys, at most a bounded number per call; resolves with how many. */
  async sweep(): Promise<number> {
    const cutoff = this.#now() - this.#retentionMs;
    let deleted = 0;
    for (let batch = 0; batch < IDEMPOTENCY_SWEEP_MAX_BATCHES; batch++) {
      // SQLite's statements run on the event loop: calls are answered between two batches, not
      // held for a whole sweep (20,000 rows took about 300 ms in one go).
      if (batch > 0) await nextTurn();
      const changes = await this.#call(
        operationOf(this.#sweep),
        () => this.#sweep.run(cutoff, IDEMPOTENCY_SWEEP_BATCH).changes,
      );
      deleted += changes;
      if (changes < IDEMPOTENCY_SWEEP_BATCH) break;
    }
    return deleted;
  }

  #recall(claim: IdempotencyClaim): Outcome | undefined {
    const row = this.#find.get(claim.key);
    if (!row) return undefined;
    if (isExpired(row, this.#now(), this.#retentionMs)) {
      // An expired key is as good as unused; its row goes now rather than at the next sweep.
      this.#forget.run(claim.key);
      return undefined;
    }
    return outcomeFor(row, claim);
  }
}
