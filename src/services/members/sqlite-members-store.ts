import { SqliteError } from 'better-sqlite3';
import type { TraceSpan } from '../../common/tracing.js';
import type { IdempotencyClaim, Once, Outcome } from '../common/idempotency.js';
import {
  type Database,
  openSqliteDatabase,
  operationOf,
  type SqliteCall,
  type SqliteStoreOptions,
  sqliteCaller,
  sqliteIdLimit,
} from '../common/sqlite-database.js';
import { SqliteIdempotencyJournal, sqliteIdempotencySchema } from '../common/sqlite-idempotency.js';
import type { CreateMemberResult, MemberCredentials, MembersStore } from './members-store.js';

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
] as const;

/** The accounts in one SQLite file (the default when no MySQL is configured). */
export class SqliteMembersStore implements MembersStore {
  readonly kind = 'sqlite';
  readonly #db: Database;
  readonly #journal: SqliteIdempotencyJournal;
  readonly #call: SqliteCall;
  readonly #insert;
  readonly #find;
  readonly #delete;
  readonly #updateHash;

  /** Opens (or creates) the file and its tables. */
  constructor(file: string, options: SqliteStoreOptions = {}) {
    this.#db = openSqliteDatabase(file, SQLITE_MEMBERS_SCHEMA);
    this.#call = sqliteCaller(this.#db, options.observer);
    this.#journal = new SqliteIdempotencyJournal(this.#db, 'members_idempotency', options);
    this.#insert = this.#db.prepare<[string, string]>(
      'INSERT INTO members (username, password_hash) VALUES (?, ?)',
    );
    this.#find = this.#db.prepare<[string], MemberCredentials>(
      'SELECT id, password_hash AS passwordHash FROM members WHERE username = ?',
    );
    this.#delete = this.#db.prepare<[string]>('DELETE FROM members WHERE username = ?');
    this.#updateHash = this.#db.prepare<[string, number, string]>(
      'UPDATE members SET password_hash = ? WHERE id = ? AND password_hash = ?',
    );
  }

  async createMember(
    username: string,
    passwordHash: string,
    parent?: TraceSpan,
  ): Promise<CreateMemberResult> {
    return this.#call(operationOf(this.#insert), () => this.#create(username, passwordHash), parent);
  }

  createMemberOnce(
    username: string,
    passwordHash: string,
    once: Once<CreateMemberResult>,
    parent?: TraceSpan,
  ): Promise<Outcome> {
    return this.#journal.run(once, () => this.#create(username, passwordHash), parent);
  }

  async findMember(username: string, parent?: TraceSpan): Promise<MemberCredentials | undefined> {
    return this.#call(operationOf(this.#find), () => this.#find.get(username), parent);
  }

  async deleteMember(username: string, parent?: TraceSpan): Promise<void> {
    this.#call(operationOf(this.#delete), () => this.#delete.run(username), parent);
  }

  deleteMemberOnce(username: string, once: Once<void>, parent?: TraceSpan): Promise<Outcome> {
    return this.#journal.run(
      once,
      () => {
        this.#delete.run(username);
      },
      parent,
    );
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
    return this.#call(
      operationOf(this.#updateHash),
      () => this.#updateHash.run(newHash, id, oldHash).changes === 1,
      parent,
    );
  }

  async ping(): Promise<void> {
    // A health probe: not an operation anyone waits for, so neither timed nor traced.
    this.#call(undefined, () => this.#db.prepare('SELECT 1').get());
  }

  async close(): Promise<void> {
    this.#db.close();
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
