import { status } from '@grpc/grpc-js';
import type { RowDataPacket } from 'mysql2/promise';
import { ServiceError } from '../../common/service-error.js';
import type { TraceSpan } from '../../common/trace-span.js';
import { driverErrorCode } from '../common/database-errors.js';
import type { Once, Outcome } from '../common/idempotency.js';
import type { MysqlStoreOptions } from '../common/mysql-database-options.js';
import { mysqlIdempotencySchema } from '../common/mysql-idempotency.js';
import { MYSQL_NOW_MS, MYSQL_NOW_US } from '../common/mysql-now.js';
import { mysqlColumnsAdded } from '../common/mysql-schema.js';
import { MysqlServiceStore } from '../common/mysql-service-store.js';
import type { SqlExecutor } from '../common/sql-executor.js';
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
 * The members table in MySQL, and its idempotency keys (see idempotency.ts). The username is
 * VARBINARY, compared byte for byte: MySQL's text collations, even the _bin ones, ignore trailing
 * spaces ("a" and "a " would collide) and the default ones ignore case, and SQLite does neither. The
 * service bounds it to 128 characters, at most 512 bytes of UTF-8.
 */
export const MYSQL_MEMBERS_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS members (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username VARBINARY(512) NOT NULL,
    password_hash VARCHAR(255) CHARACTER SET ascii NOT NULL,
    UNIQUE KEY members_username (username)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ...mysqlIdempotencySchema('members_idempotency'),
  // Failed sign-ins in a row per username, known or not (see SignInThrottle), shared by every
  // instance on this database. Times in ms and versions in µs since the epoch, by MySQL's clock.
  `CREATE TABLE IF NOT EXISTS sign_in_failures (
    username VARBINARY(512) NOT NULL PRIMARY KEY,
    failures INT NOT NULL,
    last_failure_ms BIGINT NOT NULL,
    version BIGINT NOT NULL,
    turn_until_ms BIGINT NOT NULL DEFAULT 0,
    turn_holder VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '',
    KEY sign_in_failures_last (last_failure_ms)
  ) ENGINE=InnoDB`,
  // The turn columns came after the table first shipped (b69c9cb): a database set up then gets them.
  mysqlColumnsAdded('sign_in_failures', {
    turn_until_ms: 'BIGINT NOT NULL DEFAULT 0',
    turn_holder: "VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT ''",
  }),
] as const;

/**
 * A batch of a sweep of the oldest keys (see sweepFailures): the `limit` oldest keys with at most so
 * many failures from a last failure on, read from the index sign_in_failures_last from there.
 */
const MYSQL_OLDEST_FAILURES = `SELECT username, last_failure_ms AS lastMs FROM sign_in_failures
  WHERE failures <= ? AND last_failure_ms >= ? ORDER BY last_failure_ms LIMIT ?`;
/** Keys deleted by name per statement of a batch (see MYSQL_DELETE_FAILURES_BY_NAME). */
const DELETE_BY_NAME = 500;
/**
 * Deletes named keys still within so many failures and last failed no later than the batch read.
 * `last_failure_ms + 0`: compared so, it names no index, and the rows are found by the primary key
 * (as the names were; MariaDB took sign_in_failures_last for the range from the oldest key).
 */
const MYSQL_DELETE_FAILURES_BY_NAME = `DELETE FROM sign_in_failures WHERE failures <= ?
  AND last_failure_ms + 0 <= ? AND username IN (${Array(DELETE_BY_NAME).fill('?').join(', ')})`;

const FAILURES_OF = `SELECT failures AS count, ${MYSQL_NOW_MS} - last_failure_ms AS sinceLastMs, version
  FROM sign_in_failures WHERE username = ?`;

type FailuresRow = RecordedFailures & RowDataPacket;

type MemberRow = MemberCredentials & RowDataPacket;

/** The accounts in MySQL, through one bounded pool. */
export class MysqlMembersStore extends MysqlServiceStore implements MembersStore {
  /** Creates the pool; the tables are created on first use (see MysqlDatabase). */
  constructor(options: MysqlStoreOptions) {
    super(options, MYSQL_MEMBERS_SCHEMA, 'members_idempotency');
  }

  createMember(username: string, passwordHash: string, parent?: TraceSpan): Promise<CreateMemberResult> {
    return insertMember(this.db.forCall(parent), username, passwordHash);
  }

  createMemberOnce(
    username: string,
    passwordHash: string,
    once: Once<CreateMemberResult>,
    parent?: TraceSpan,
  ): Promise<Outcome> {
    return this.journal.run(once, (sql) => insertMember(sql, username, passwordHash), parent);
  }

  async findMember(username: string, parent?: TraceSpan): Promise<MemberCredentials | undefined> {
    const [row] = await this.db
      .forCall(parent)
      .select<MemberRow>('SELECT id, password_hash AS passwordHash FROM members WHERE username = ?', [
        username,
      ]);
    return row ? { id: row.id, passwordHash: row.passwordHash } : undefined;
  }

  deleteMember(username: string, parent?: TraceSpan): Promise<void> {
    return removeMember(this.db.forCall(parent), username);
  }

  deleteMemberOnce(username: string, once: Once<void>, parent?: TraceSpan): Promise<Outcome> {
    return this.journal.run(once, (sql) => removeMember(sql, username), parent);
  }

  async updatePasswordHash(
    id: number,
    oldHash: string,
    newHash: string,
    parent?: TraceSpan,
  ): Promise<boolean> {
    const result = await this.db
      .forCall(parent)
      .change('UPDATE members SET password_hash = ? WHERE id = ? AND password_hash = ?', [
        newHash,
        id,
        oldHash,
      ]);
    return result.affectedRows === 1;
  }

  async signInFailures(key: string, parent?: TraceSpan): Promise<RecordedFailures | undefined> {
    const [row] = await this.db.forCall(parent).select<FailuresRow>(FAILURES_OF, [key]);
    return row && recordOf(row);
  }

  async recordSignInFailure(
    key: string,
    forgetAfterMs: number,
    parent?: TraceSpan,
  ): Promise<RecordedFailures> {
    const sql = this.db.forCall(parent);
    // The assignments run in order, each reading what those before it wrote: failures first, from
    // the old last failure. (VALUES() rather than an alias of the new row: MariaDB has only it.)
    await sql.change(
      `INSERT INTO sign_in_failures (username, failures, last_failure_ms, version)
      VALUES (?, 1, ${MYSQL_NOW_MS}, ${MYSQL_NOW_US})
      ON DUPLICATE KEY UPDATE
        failures = IF(last_failure_ms < VALUES(last_failure_ms) - ?, 1, failures + 1),
        last_failure_ms = VALUES(last_failure_ms),
        version = GREATEST(version + 1, VALUES(version)),
        turn_until_ms = 0`,
      [key, forgetAfterMs],
    );
    // Read apart (MySQL has no RETURNING): what another instance changed since is only newer.
    const [row] = await sql.select<FailuresRow>(FAILURES_OF, [key]);
    if (!row) throw new ServiceError(status.UNAVAILABLE, 'Sign-in failure not recorded');
    return recordOf(row);
  }

  async forgetSignInFailures(key: string, parent?: TraceSpan): Promise<RecordedFailures | undefined> {
    const sql = this.db.forCall(parent);
    const result = await sql.change(
      `UPDATE sign_in_failures SET failures = 0, version = GREATEST(version + 1, ${MYSQL_NOW_US}), turn_until_ms = 0
      WHERE username = ?`,
      [key],
    );
    if (result.affectedRows === 0) return undefined;
    const [row] = await sql.select<FailuresRow>(FAILURES_OF, [key]);
    return row && recordOf(row);
  }

  async claimSignInTurn(
    key: string,
    version: number,
    holder: string,
    holdMs: number,
    parent?: TraceSpan,
  ): Promise<boolean> {
    const result = await this.db.forCall(parent).change(
      `UPDATE sign_in_failures SET turn_until_ms = ${MYSQL_NOW_MS} + ?, turn_holder = ?
      WHERE username = ? AND version = ? AND turn_until_ms <= ${MYSQL_NOW_MS}`,
      [holdMs, holder, key, version],
    );
    return result.affectedRows === 1;
  }

  async releaseSignInTurn(key: string, holder: string, parent?: TraceSpan): Promise<void> {
    await this.db
      .forCall(parent)
      .change('UPDATE sign_in_failures SET turn_until_ms = 0 WHERE username = ? AND turn_holder = ?', [
        key,
        holder,
      ]);
  }

  sweepSignInFailures(bounds: SignInFailureBounds): Promise<number> {
    const sql = this.db.forCall(undefined);
    // LIMIT as a string: MySQL 8 refuses a prepared LIMIT that mysql2 sends as a double.
    const deleted = async (statement: string, values: unknown[]) =>
      (await sql.change(statement, values as never)).affectedRows;
    return sweepFailures(
      {
        deleteOlderThan: (forgetAfterMs, limit) =>
          deleted(
            `DELETE FROM sign_in_failures WHERE last_failure_ms < ${MYSQL_NOW_MS} - ? ORDER BY last_failure_ms LIMIT ?`,
            [forgetAfterMs, String(limit)],
          ),
        countKeys: async () => {
          const [row] = await sql.select<{ keys: number } & RowDataPacket>(
            'SELECT COUNT(*) AS `keys` FROM sign_in_failures',
          );
          return Number(row?.keys ?? 0);
        },
        deleteOldest: async (maxFailures, limit, fromMs) => {
          const most = maxFailures ?? Number.MAX_SAFE_INTEGER;
          // The batch's keys by a read that locks nothing, then deleted by name. A DELETE that
          // chose them itself would read the index from the oldest key on and lock every key it
          // read, those it keeps too (guessed accounts past their free failures): their failures
          // written meanwhile waited for it, up to a second a batch, or failed as deadlocks.
          const batch = await sql.select<{ username: Buffer; lastMs: number | string } & RowDataPacket>(
            MYSQL_OLDEST_FAILURES,
            [most, fromMs, String(limit)],
          );
          const last = batch.at(-1);
          if (last === undefined) return { deleted: 0, lastMs: undefined };
          const lastMs = Number(last.lastMs);
          let gone = 0;
          for (let start = 0; start < batch.length; start += DELETE_BY_NAME) {
            const names = batch.slice(start, start + DELETE_BY_NAME).map((row) => row.username);
            // Always as many names, the last repeated: one prepared statement whatever the batch.
            while (names.length < DELETE_BY_NAME) names.push(names.at(-1)!);
            // Kept if failed again since the read (a later last failure, more failures).
            gone += await deleted(MYSQL_DELETE_FAILURES_BY_NAME, [most, lastMs, ...names]);
          }
          return { deleted: gone, lastMs };
        },
      },
      bounds,
    );
  }

  override sweepExpired(): Promise<number> {
    return sweepMembersExpired(
      () => this.journal.sweep(),
      (bounds) => this.sweepSignInFailures(bounds),
    );
  }
}

/** Inserts an account; a taken username is an answer. Inside a transaction, only this statement is undone. */
async function insertMember(sql: SqlExecutor, username: string, passwordHash: string) {
  try {
    const result = await sql.change('INSERT INTO members (username, password_hash) VALUES (?, ?)', [
      username,
      passwordHash,
    ]);
    return { created: true, id: result.insertId } as const;
  } catch (error) {
    if (isTakenUsername(error)) return { created: false } as const;
    throw error;
  }
}

/**
 * Whether an INSERT failed on the username's unique key. InnoDB on MySQL also says ER_DUP_ENTRY,
 * on PRIMARY, once the ids reach the INT column's largest: that is no taken username.
 */
export function isTakenUsername(error: unknown): boolean {
  if (driverErrorCode(error) !== 'ER_DUP_ENTRY') return false;
  const underlying = error instanceof ServiceError ? error.cause : error;
  const message =
    (underlying as { sqlMessage?: unknown; message?: unknown }).sqlMessage ?? (underlying as Error).message;
  return typeof message === 'string' && message.includes('members_username');
}

/** A row of FAILURES_OF as numbers (BIGINT and computed columns may come as strings). */
function recordOf(row: FailuresRow): RecordedFailures {
  return { count: Number(row.count), sinceLastMs: Number(row.sinceLastMs), version: Number(row.version) };
}

async function removeMember(sql: SqlExecutor, username: string): Promise<void> {
  await sql.change('DELETE FROM members WHERE username = ?', [username]);
}
