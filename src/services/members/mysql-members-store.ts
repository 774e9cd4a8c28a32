import type { RowDataPacket } from 'mysql2/promise';
import { driverErrorCode } from '../common/database-errors.js';
import { MysqlDatabase, type MysqlStoreOptions } from '../common/mysql-database.js';
import type { CreateMemberResult, MemberCredentials, MembersStore } from './members-store.js';

/**
 * The members table in MySQL. The username is VARBINARY, compared byte for byte: MySQL's text
 * collations, even the _bin ones, ignore trailing spaces ("a" and "a " would collide) and the
 * default ones ignore case, and SQLite does neither. The service bounds it to 128 characters,
 * at most 512 bytes of UTF-8.
 */
export const MYSQL_MEMBERS_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS members (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username VARBINARY(512) NOT NULL,
    password_hash VARCHAR(255) CHARACTER SET ascii NOT NULL,
    UNIQUE KEY members_username (username)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
] as const;

type MemberRow = MemberCredentials & RowDataPacket;

/** The accounts in MySQL, through one bounded pool. */
export class MysqlMembersStore implements MembersStore {
  readonly kind = 'mysql';
  readonly #db: MysqlDatabase;

  /** Creates the pool; the table is created on first use (see MysqlDatabase). */
  constructor(options: MysqlStoreOptions) {
    this.#db = new MysqlDatabase({ ...options, schema: MYSQL_MEMBERS_SCHEMA });
  }

  async createMember(username: string, passwordHash: string): Promise<CreateMemberResult> {
    try {
      const result = await this.#db.change('INSERT INTO members (username, password_hash) VALUES (?, ?)', [
        username,
        passwordHash,
      ]);
      return { created: true, id: result.insertId };
    } catch (error) {
      if (driverErrorCode(error) === 'ER_DUP_ENTRY') return { created: false };
      throw error;
    }
  }

  async findMember(username: string): Promise<MemberCredentials | undefined> {
    const [row] = await this.#db.select<MemberRow>(
      'SELECT id, password_hash AS passwordHash FROM members WHERE username = ?',
      [username],
    );
    return row ? { id: row.id, passwordHash: row.passwordHash } : undefined;
  }

  async deleteMember(username: string): Promise<void> {
    await this.#db.change('DELETE FROM members WHERE username = ?', [username]);
  }

  async updatePasswordHash(id: number, oldHash: string, newHash: string): Promise<boolean> {
    const result = await this.#db.change(
      'UPDATE members SET password_hash = ? WHERE id = ? AND password_hash = ?',
      [newHash, id, oldHash],
    );
    return result.affectedRows === 1;
  }

  ping(): Promise<void> {
    return this.#db.ping();
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}
