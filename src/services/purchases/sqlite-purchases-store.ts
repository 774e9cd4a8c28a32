import { type PageQuery, type StoredPage, takePage } from '../common/paging.js';
import { type Database, openSqliteDatabase, sqliteCall } from '../common/sqlite-database.js';
import type { NewPurchase, PurchaseRecord, PurchasesStore } from './purchases-store.js';

/**
 * The purchases table in SQLite. The date is ISO 8601 text in UTC with milliseconds
 * ("2020-11-04T15:31:47.000Z"): exact, readable, and ordered like the instants it names.
 */
export const SQLITE_PURCHASES_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS purchases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    userid INTEGER NOT NULL,
    goodsid INTEGER NOT NULL,
    date TEXT NOT NULL
  ) STRICT`,
  'CREATE INDEX IF NOT EXISTS purchases_userid ON purchases (userid, id)',
] as const;

interface PurchaseRow {
  id: number;
  goodsid: number;
  date: string;
}

/** The purchase history in one SQLite file (the default when no MySQL is configured). */
export class SqlitePurchasesStore implements PurchasesStore {
  readonly kind = 'sqlite';
  readonly #db: Database;
  readonly #insert;
  readonly #list;

  /** Opens (or creates) the file and its table. */
  constructor(file: string) {
    this.#db = openSqliteDatabase(file, SQLITE_PURCHASES_SCHEMA);
    this.#insert = this.#db.prepare<[number, number, string]>(
      'INSERT INTO purchases (userid, goodsid, date) VALUES (?, ?, ?)',
    );
    this.#list = this.#db.prepare<[number, number, number], PurchaseRow>(
      'SELECT id, goodsid, date FROM purchases WHERE userid = ? AND id > ? ORDER BY id LIMIT ?',
    );
  }

  async createPurchase({ userid, goodsid, date }: NewPurchase): Promise<number> {
    return sqliteCall(() => Number(this.#insert.run(userid, goodsid, date.toISOString()).lastInsertRowid));
  }

  async listPurchases(userid: number, { afterId, size }: PageQuery): Promise<StoredPage<PurchaseRecord>> {
    return sqliteCall(() =>
      takePage(
        this.#list
          .all(userid, afterId, size + 1)
          .map(({ id, goodsid, date }) => ({ id, goodsid, date: new Date(date) })),
        size,
      ),
    );
  }

  async ping(): Promise<void> {
    sqliteCall(() => this.#db.prepare('SELECT 1').get());
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}
