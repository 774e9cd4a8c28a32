import type { RowDataPacket } from 'mysql2/promise';
import type { IdempotencyClaim, Once, Outcome } from '../common/idempotency.js';
import { MysqlDatabase, type MysqlStoreOptions, type SqlExecutor } from '../common/mysql-database.js';
import { MysqlIdempotencyJournal, mysqlIdempotencySchema } from '../common/mysql-idempotency.js';
import type { GoodsRecord, GoodsStore, NewGoods } from './goods-store.js';

/**
 * The goods table in MySQL, and its idempotency keys (see idempotency.ts). MEDIUMTEXT because a
 * description may hold 64 KiB, one byte more than TEXT's 65 535; VARCHAR(128) counts characters, as
 * the service's bounds do.
 */
export const MYSQL_GOODS_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS goods (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(128) NOT NULL,
    category VARCHAR(128) NOT NULL,
    price INT NOT NULL,
    description MEDIUMTEXT NOT NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ...mysqlIdempotencySchema('goods_idempotency'),
] as const;

type GoodsRow = GoodsRecord & RowDataPacket;

/** The goods catalogue in MySQL, through one bounded pool. */
export class MysqlGoodsStore implements GoodsStore {
  readonly kind = 'mysql';
  readonly #db: MysqlDatabase;
  readonly #journal: MysqlIdempotencyJournal;

  /** Creates the pool; the tables are created on first use (see MysqlDatabase). */
  constructor({ idempotency, ...options }: MysqlStoreOptions) {
    this.#db = new MysqlDatabase({ ...options, schema: MYSQL_GOODS_SCHEMA });
    this.#journal = new MysqlIdempotencyJournal(this.#db, 'goods_idempotency', idempotency);
  }

  createGoods(goods: NewGoods): Promise<number> {
    return insertGoods(this.#db, goods);
  }

  createGoodsOnce(goods: NewGoods, once: Once<number>): Promise<Outcome> {
    return this.#journal.run(once, (sql) => insertGoods(sql, goods));
  }

  async listGoods(): Promise<GoodsRecord[]> {
    const rows = await this.#db.select<GoodsRow>(
      'SELECT id, name, category, price, description FROM goods ORDER BY id',
    );
    return rows.map(({ id, name, category, price, description }) => ({
      id,
      name,
      category,
      price,
      description,
    }));
  }

  deleteGoods(id: number): Promise<void> {
    return removeGoods(this.#db, id);
  }

  deleteGoodsOnce(id: number, once: Once<void>): Promise<Outcome> {
    return this.#journal.run(once, (sql) => removeGoods(sql, id));
  }

  recall(claim: IdempotencyClaim): Promise<Outcome | undefined> {
    return this.#journal.recall(claim);
  }

  sweepIdempotencyKeys(): Promise<number> {
    return this.#journal.sweep();
  }

  ping(): Promise<void> {
    return this.#db.ping();
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}

async function insertGoods(sql: SqlExecutor, { name, category, price, description }: NewGoods) {
  const result = await sql.change(
    'INSERT INTO goods (name, category, price, description) VALUES (?, ?, ?, ?)',
    [name, category, price, description],
  );
  return result.insertId;
}

async function removeGoods(sql: SqlExecutor, id: number): Promise<void> {
  await sql.change('DELETE FROM goods WHERE id = ?', [id]);
}
