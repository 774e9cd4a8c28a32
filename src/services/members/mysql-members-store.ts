import type { RowDataPacket } from 'mysql2/promise';
import { ServiceError } from '../../common/service-error.js';
import type { TraceSpan } from '../../common/tracing.js';
import { driverErrorCode } from '../common/database-errors.js';
import type { IdempotencyClaim, Once, Outcome } from '../common/idempotency.js';
import { MysqlDatabase, type MysqlStoreOptions, type SqlExecutor } from '../common/mysql-database.js';
import { MysqlIdempotencyJournal, mysqlIdempotencySchema } from '../common/mysql-idempotency.js';
import type { CreateMemberResult, MemberCredentials, MembersStore } from './members-store.js';

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
] as const;

type MemberRow = MemberCredentials & RowDataPacket;

/** The accounts in MySQL, through one bounded pool. */
export class MysqlMembersStore implements MembersStore {
  readonly kind = 'mysql';
  readonly #db: MysqlDatabase;
  readonly #journal: MysqlIdempotencyJournal;

  /** Creates the pool; the tables are created on first use (see MysqlDatabase). */
  constructor({ idempotency, ...options }: MysqlStoreOptions) {
    this.#db = new MysqlDatabase({ ...options, schema: MYSQL_MEMBERS_SCHEMA });
    this.#journal = new MysqlIdempotencyJournal(this.#db, 'members_idempotency', idempotency);
  }

  createMember(username: string, passwordHash: string, parent?: TraceSpan): Promise<CreateMemberResult> {
    return insertMember(this.#db.forCall(parent), username, passwordHash);
  }

  createMemberOnce(
    username: string,
    passwordHash: string,
    once: Once<CreateMemberResult>,
    parent?: TraceSpan,
  ): Promise<Outcome> {
    return this.#journal.run(once, (sql) => insertMember(sql, username, passwordHash), parent);
  }

  async findMember(username: string, parent?: TraceSpan): Promise<MemberCredentials | undefined> {
    const [row] = await this.#db
      .forCall(parent)
      .select<MemberRow>('SELECT id, password_hash AS passwordHash FROM members WHERE username = ?', [
        username,
      ]);
    return row ? { id: row.id, passwordHash: row.passwordHash } : undefined;
  }

  deleteMember(username: string, parent?: TraceSpan): Promise<void> {
    return removeMember(this.#db.forCall(parent), username);
  }

  deleteMemberOnce(username: string, once: Once<void>, parent?: TraceSpan): Promise<Outcome> {
    return this.#journal.run(once, (sql) => removeMember(sql, username), parent);
  }

  recall(claim: IdempotencyClaim, parent?: TraceSpan): Promise<Outcome | undefined> {
    return this.#journal.recall(claim, parent);
  }

  sweepIdempotencyKeys(): Promise<number> {
    return this.#journal.sweep();
  }

  async updatePasswordHash(
    id: number,
    oldHash: string,
    newHash: string,
    parent?: TraceSpan,
  ): Promise<boolean> {
    const result = await this.#db
      .forCall(parent)
      .change('UPDATE members SET password_hash = ? WHERE id = ? AND password_hash = ?', [
        newHash,
        id,
        oldHash,
      ]);
    return result.affectedRows === 1;
  }

  ping(): Promise<void> {
    return this.#db.ping();
  }

  close(timeoutMs?: number): Promise<void> {
    return this.#db.close(timeoutMs);
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

async function removeMember(sql: SqlExecutor, username: string): Promise<void> {
  await sql.change('DELETE FROM members WHERE username = ?', [username]);
}
