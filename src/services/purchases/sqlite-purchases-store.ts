import type { TraceSpan } from '../../common/trace-span.js';
import type { Once, Outcome } from '../common/idempotency.js';
import { type PageQuery, type StoredPage, takePage } from '../common/paging.js';
import { operationOf, type SqliteStoreOptions, sqliteIdLimit } from '../common/sqlite-database.js';
import { sqliteIdempotencySchema } from '../common/sqlite-idempotency.js';
import { SqliteServiceStore } from '../common/sqlite-service-store.js';
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
  sqliteIdLimit('purchases'),
  ...sqliteIdempotencySchema('purchases_idempotency'),
] as const;

interface PurchaseRow {
  id: number;
  goodsid: number;
  date: string;
}

/** The purchase history in one SQLite file (the default when no MySQL is configured). */
export class SqlitePurchasesStore extends SqliteServiceStore implements PurchasesStore {
  readonly #insert;
  readonly #list;

  /** Opens (or creates) the file and its tables. */
  constructor(file: string, options: SqliteStoreOptions = {}) {
    super(file, SQLITE_PURCHASES_SCHEMA, 'purchases_idempotency', options);
    this.#insert = this.db.prepare<[number, number, string]>(
      'INSERT INTO purchases (userid, goodsid, date) VALUES (?, ?, ?)',
    );
    this.#list = this.db.prepare<[number, number, number], PurchaseRow>(
      'SELECT id, goodsid, date FROM purchases WHERE userid = ? AND id > ? ORDER BY id LIMIT ?',
    );
  }

  async createPurchase(purchase: NewPurchase, parent?: TraceSpan): Promise<number> {
    return this.call(operationOf(this.#insert), () => this.#create(purchase), parent);
  }

  createPurchaseOnce(purchase: NewPurchase, once: Once<number>, parent?: TraceSpan): Promise<Outcome> {
    return this.journal.run(once, () => this.#create(purchase), parent);
  }

  async listPurchases(
    userid: number,
    { afterId, size }: PageQuery,
    parent?: TraceSpan,
  ): Promise<StoredPage<PurchaseRecord>> {
    return this.call(
      operationOf(this.#list),
      () =>
        takePage(
          this.#list
            .all(userid, afterId, size + 1)
            .map(({ id, goodsid, date }) => ({ id, goodsid, date: new Date(date) })),
          size,
        ),
      parent,
    );
  }

  #create({ userid, goodsid, date }: NewPurchase): number {
    return Number(this.#insert.run(userid, goodsid, (date ?? new Date()).toISOString()).lastInsertRowid);
  }
}
