import { status } from '@grpc/grpc-js';
import type { RowDataPacket } from 'mysql2/promise';
import { ServiceError } from '../../common/service-error.js';
import type { TraceSpan } from '../../common/trace-span.js';
import { driverErrorCode } from './database-errors.js';
import {
  IDEMPOTENCY_RETENTION_MS,
  IDEMPOTENCY_SWEEP_BATCH,
  IDEMPOTENCY_SWEEP_MAX_BATCHES,
  type IdempotencyClaim,
  type IdempotencyOptions,
  isExpired,
  type JournalRow,
  type Once,
  type Outcome,
  outcomeFor,
} from './idempotency.js';
import type { MysqlDatabase } from './mysql-database.js';
import { MYSQL_NOW_MS } from './mysql-now.js';
import type { SqlExecutor } from './sql-executor.js';

/**
 * The journal table of one service in MySQL (see idempotency.ts). The key is ASCII compared byte for
 * byte; `code` is NULL only inside the transaction that claimed the key, so no reader ever sees it
 * NULL; `created_at` is in ms since the epoch, by MySQL's clock (before, by the clock of the service
 * instance that wrote it: an instance on a host whose clock ran a day ahead took every other
 * instance's keys for expired, wrote a retried request again, and its sweeps deleted their keys).
 */
export function mysqlIdempotencySchema(table: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (
      idem_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
      method VARCHAR(64) CHARACTER SET ascii NOT NULL,
      fingerprint BINARY(32) NOT NULL,
      code SMALLINT NULL,
      message VARCHAR(1024) NOT NULL DEFAULT '',
      response MEDIUMBLOB NULL,
      created_at BIGINT NOT NULL,
      KEY ${table}_created_at (created_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ];
}

type Row = RowDataPacket & {
  method: string;
  fingerprint: Buffer;
  code: number | null;
  message: string;
  response: Buffer | null;
  createdAt: number | string;
  nowMs: number | string;
};

/**
 * The refusal of a call whose key's claims kept rolling back (three in a row, each another call's
 * write that failed), or whose row vanished between two looks (it cannot in practice: see `run`).
 */
const KEY_BUSY = 'Idempotency-Key is in use by a concurrent request; try again';

/** A claim refused as a duplicate: another call committed the key. */
const COMMITTED_ELSEWHERE = Symbol('committed elsewhere');
/** A claim that lost a deadlock: the claim it waited on rolled back. */
const ROLLED_BACK_ELSEWHERE = Symbol('rolled back elsewhere');
/** A transaction that lost a deadlock after its claim: rolled back, claim and all. */
const ROLLED_BACK_HERE = Symbol('rolled back here');

/**
 * Keys and outcomes of one service's writes in MySQL.
 *
 * A write under a key is one transaction: INSERT the key's row first (the claim), then the write,
 * then the outcome into the row, then COMMIT. A second call with the same key blocks on the claim
 * (InnoDB locks the new primary key until the first commits or rolls back): after a commit it gets a
 * duplicate key, rolls back, and answers the committed outcome; after a rollback its claim goes
 * through and it writes. So exactly one call writes, and the other waits and answers the same.
 *
 * Two or more calls waiting on a claim that rolls back all hold a shared lock on the key and all
 * want it exclusively: InnoDB lets one through and ends the others as deadlock victims (their
 * transactions rolled back, nothing written). A victim looks again as after a duplicate: it then
 * waits on the new claim and answers its outcome, rather than being told the database is unavailable.
 */
export class MysqlIdempotencyJournal {
  readonly #db: MysqlDatabase;
  readonly #table: string;
  readonly #retentionMs: number;
  /** A clock a test gives; else MySQL's (MYSQL_NOW_MS), the one clock of every instance. */
  readonly #now: (() => number) | undefined;

  constructor(db: MysqlDatabase, table: string, options: IdempotencyOptions = {}) {
    this.#db = db;
    this.#table = table;
    this.#retentionMs = options.retentionMs ?? IDEMPOTENCY_RETENTION_MS;
    this.#now = options.now;
  }

  /** Now in SQL, and the parameter it takes: the given clock's time, or MySQL's clock. */
  #nowSql(): { sql: string; params: number[] } {
    return this.#now ? { sql: '?', params: [this.#now()] } : { sql: MYSQL_NOW_MS, params: [] };
  }

  /**
   * The outcome recorded for a live key, undefined if none; FAILED_PRECONDITION for another request.
   * `parent` is the span of the call it is made for (see MysqlDatabase.forCall).
   */
  async recall(claim: IdempotencyClaim, parent?: TraceSpan): Promise<Outcome | undefined> {
    const db = this.#db.forCall(parent);
    const now = this.#nowSql();
    const [row] = await db.select<Row>(
      `SELECT method, fingerprint, code, message, response, created_at AS createdAt, ${now.sql} AS nowMs FROM ${this.#table} WHERE idem_key = ?`,
      [...now.params, claim.key],
    );
    if (!row) return undefined;
    const journalRow = toJournalRow(row);
    if (isExpired(journalRow, Number(row.nowMs), this.#retentionMs)) {
      // An expired key is as good as unused. Its row goes now (that exact row, so a fresh claim
      // made meanwhile by another instance stays), so that the claim below can insert it again.
      await db.change(`DELETE FROM ${this.#table} WHERE idem_key = ? AND created_at = ?`, [
        claim.key,
        journalRow.createdAt,
      ]);
      return undefined;
    }
    return outcomeFor(journalRow, claim);
  }

  /**
   * Runs `write` and records its outcome under the claim's key, in one transaction; or, when the key
   * is live, answers its recorded outcome without writing. `write` runs its statements on the
   * transaction it is given. `parent` is the span of the call it is made for.
   */
  async run<Result>(
    once: Once<Result>,
    write: (sql: SqlExecutor) => Promise<Result>,
    parent?: TraceSpan,
  ): Promise<Outcome> {
    const { claim } = once;
    // A claim refused as a duplicate means a concurrent call committed that key, and the next look
    // finds its row. A claim that lost a deadlock to another waiting on the same key (see above)
    // means the claim it waited on rolled back: it looks again, then waits on the new claim. Only
    // those count: a waiter behind two claims that rolled back and one that committed looks four
    // times and answers the commit; after three claims in a row rolled back, the key is busy. (A
    // duplicate whose row is gone at the next look, expired, cannot repeat for ever: ten looks.)
    let victims = 0;
    for (let looks = 0, rolledBack = 0; rolledBack < 3 && looks < 10; looks++) {
      const earlier = await this.recall(claim, parent);
      if (earlier) return earlier;
      const outcome = await this.#db
        .transaction(
          this.#table,
          async (sql) => {
            try {
              const now = this.#nowSql();
              await sql.change(
                `INSERT INTO ${this.#table} (idem_key, method, fingerprint, created_at) VALUES (?, ?, ?, ${now.sql})`,
                [claim.key, claim.method, claim.fingerprint, ...now.params],
              );
            } catch (error) {
              const code = driverErrorCode(error);
              // After a deadlock InnoDB has rolled the transaction back: its COMMIT commits nothing.
              if (code === 'ER_DUP_ENTRY') return COMMITTED_ELSEWHERE;
              if (code === 'ER_LOCK_DEADLOCK') return ROLLED_BACK_ELSEWHERE;
              throw error;
            }
            const recorded = once.outcomeOf(await write(sql));
            await sql.change(
              `UPDATE ${this.#table} SET code = ?, message = ?, response = ? WHERE idem_key = ?`,
              [recorded.code, recorded.message, Buffer.from(recorded.response), claim.key],
            );
            return recorded;
          },
          parent,
        )
        .catch((error: unknown): typeof ROLLED_BACK_HERE => {
          // The transaction chosen as a deadlock's victim after its claim went in: InnoDB's, between
          // rows, or one of metadata locks, as when a RENAME TABLE swaps a restored copy in for this
          // table and the one the write goes to (it takes the write's table, then waits for the
          // claim's). Nothing of it stays: InnoDB rolls a deadlock's victim back whole, a
          // metadata-lock deadlock undoes only its statement, and the transaction's ROLLBACK on any
          // error the rest. So the write is made again, on the tables there are now, as the client's
          // retry would be, rather than refused (503) for a conflict that has passed. Twice at most,
          // then refused as before.
          if (driverErrorCode(error) !== 'ER_LOCK_DEADLOCK' || ++victims > 2) throw error;
          return ROLLED_BACK_HERE;
        });
      if (outcome === ROLLED_BACK_HERE) continue;
      if (outcome === ROLLED_BACK_ELSEWHERE) rolledBack++;
      else if (outcome !== COMMITTED_ELSEWHERE) return outcome;
    }
    throw new ServiceError(status.ABORTED, KEY_BUSY);
  }

  /** Deletes expired keys, at most a bounded number per call; resolves with how many. */
  async sweep(): Promise<number> {
    let deleted = 0;
    for (let batch = 0; batch < IDEMPOTENCY_SWEEP_MAX_BATCHES; batch++) {
      const now = this.#nowSql();
      const { affectedRows } = await this.#db.change(
        `DELETE FROM ${this.#table} WHERE created_at <= ${now.sql} - ? ORDER BY created_at LIMIT ${IDEMPOTENCY_SWEEP_BATCH}`,
        [...now.params, this.#retentionMs],
      );
      deleted += affectedRows;
      if (affectedRows < IDEMPOTENCY_SWEEP_BATCH) break;
    }
    return deleted;
  }
}

function toJournalRow(row: Row): JournalRow {
  // A row is only visible once committed, with its outcome; a NULL code would be a broken row.
  if (row.code === null) throw new ServiceError(status.ABORTED, KEY_BUSY);
  return {
    method: row.method,
    fingerprint: row.fingerprint,
    code: row.code,
    message: row.message,
    response: row.response ?? Buffer.alloc(0),
    createdAt: Number(row.createdAt),
  };
}
