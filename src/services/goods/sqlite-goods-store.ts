import type { TraceSpan } from '../../common/trace-span.js';
import type { Once, Outcome } from '../common/idempotency.js';
import { type StoredPage, takePage } from '../common/paging.js';
import { operationOf, type SqliteStoreOptions, sqliteIdLimit } from '../common/sqlite-database.js';
import { sqliteIdempotencySchema } from '../common/sqlite-idempotency.js';
import { SqliteServiceStore } from '../common/sqlite-service-store.js';
import {
  type GoodsPageQuery,
  type GoodsRecord,
  type GoodsStore,
  goodsTextBytes,
  type NewGoods,
} from './goods-store.js';

/**
 * The goods table in SQLite: STRICT, so a value of the wrong type is refused rather than kept; and
 * its idempotency keys (see idempotency.ts).
 */
export const SQLITE_GOODS_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS goods (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price INTEGER NOT NULL,
    description TEXT NOT NULL
  ) STRICT`,
  sqliteIdLimit('goods'),
  ...sqliteIdempotencySchema('goods_idempotency'),
] as const;

/** The goods catalogue in one SQLite file (the default when no MySQL is configured). */
export class SqliteGoodsStore extends SqliteServiceStore implements GoodsStore {
  readonly #insert;
  readonly #list;
  readonly #delete;

  /** Opens (or creates) the file and its tables. */
  constructor(file: string, options: SqliteStoreOptions = {}) {
    super(file, SQLITE_GOODS_SCHEMA, 'goods_idempotency', options);
    this.#insert = this.db.prepare<[string, string, number, string]>(
      'INSERT INTO goods (name, category, price, description) VALUES (?, ?, ?, ?)',
    );
    this.#list = this.db.prepare<[number, number], GoodsRecord>(
      'SELECT id, name, category, price, description FROM goods WHERE id > ? ORDER BY id LIMIT ?',
    );
    this.#delete = this.db.prepare<[number]>('DELETE FROM goods WHERE id = ?');
  }

  async createGoods(goods: NewGoods, parent?: TraceSpan): Promise<number> {
    return this.call(operationOf(this.#insert), () => this.#create(goods), parent);
  }

  createGoodsOnce(goods: NewGoods, once: Once<number>, parent?: TraceSpan): Promise<Outcome> {
    return this.journal.run(once, () => this.#create(goods), parent);
  }

  async listGoods(
    { afterId, size, maxTextBytes }: GoodsPageQuery,
    parent?: TraceSpan,
  ): Promise<StoredPage<GoodsRecord>> {
    // A cursor: rows past the page's text budget are never read into memory.
    return this.call(
      operationOf(this.#list),
      () => takePage(this.#list.iterate(afterId, size + 1), size, maxTextBytes, goodsTextBytes),
      parent,
    );
  }

  async deleteGoods(id: number, parent?: TraceSpan): Promise<void> {
    this.call(operationOf(this.#delete), () => this.#delete.run(id), parent);
  }

  deleteGoodsOnce(id: number, once: Once<void>, parent?: TraceSpan): Promise<Outcome> {
    return this.journal.run(
      once,
      () => {
        this.#delete.run(id);
      },
      parent,
    );
  }

  #create({ name, category, price, description }: NewGoods): number {
    return Number(this.#insert.run(name, category, price, description).lastInsertRowid);
  }
}
