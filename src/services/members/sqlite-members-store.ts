import { SqliteError } from 'better-sqlite3';
import { type Database, openSqliteDatabase, sqliteCall } from '../common/sqlite-database.js';
import type { CreateMemberResult, MemberCredentials, MembersStore } from './members-store.js';

/** The members table in SQLite; TEXT compares byte for byte (BINARY collation), as usernames must. */
export const SQLITE_MEMBERS_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS members (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
  ) STRICT`,
] as const;

/** The accounts in one SQLite file (the default when no MySQL is configured). */
export class SqliteMembersStore implements MembersStore {
  readonly kind = 'sqlite';
  readonly #db: Database;
  readonly #insert;
  readonly #find;
  readonly #delete;
  readonly #updateHash;

  /** Opens (or creates) the file and its table. */
  constructor(file: string) {
    this.#db = openSqliteDatabase(file, SQLITE_MEMBERS_SCHEMA);
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

  async createMember(username: string, passwordHash: string): Promise<CreateMemberResult> {
    return sqliteCall(() => {
      try {
        return { created: true, id: Number(this.#insert.run(username, passwordHash).lastInsertRowid) };
      } catch (error) {
        if (error instanceof SqliteError && error.code === 'SQLITE_CONSTRAINT_UNIQUE')
          return { created: false };
        throw error;
      }
    });
  }

  async findMember(username: string): Promise<MemberCredentials | undefined> {
    return sqliteCall(() => this.#find.get(username));
  }

  async deleteMember(username: string): Promise<void> {
    sqliteCall(() => this.#delete.run(username));
  }

  async updatePasswordHash(id: number, oldHash: string, newHash: string): Promise<boolean> {
    return sqliteCall(() => this.#updateHash.run(newHash, id, oldHash).changes === 1);
  }

  async ping(): Promise<void> {
    sqliteCall(() => this.#db.prepare('SELECT 1').get());
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}
