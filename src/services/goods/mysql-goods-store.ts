import type { RowDataPacket } from 'mysql2/promise';
import { MysqlDatabase, type MysqlStoreOptions } from '../common/mysql-database.js';
import type { GoodsRecord, GoodsStore, NewGoods } from './goods-store.js';

/**
 * The goods table in MySQL. MEDIUMTEXT because a description may hold 64 KiB, one byte more than
 * TEXT's 65 535; VARCHAR(128) counts characters, as the service's bounds do.
 */
export const MYSQL_GOODS_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS goods (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(128) NOT NULL,
    category VARCHAR(128) NOT NULL,
    price INT NOT NULL,
    description MEDIUMTEXT NOT NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
] as const;

type GoodsRow = GoodsRecord & RowDataPacket;

/** The goods catalogue in MySQL, through one bounded pool. */
export class MysqlGoodsStore implements GoodsStore {
  readonly kind = 'mysql';
  readonly #db: MysqlDatabase;

  /** Creates the pool; the table is created on first use (see MysqlDatabase). */
  constructor(options: MysqlStoreOptions) {
    this.#db = new MysqlDatabase({ ...options, schema: MYSQL_GOODS_SCHEMA });
  }

  async createGoods({ name, category, price, description }: NewGoods): Promise<number> {
    const result = await this.#db.change(
      'INSERT INTO goods (name, category, price, description) VALUES (?, ?, ?, ?)',
      [name, category, price, description],
    );
    return result.insertId;
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

  async deleteGoods(id: number): Promise<void> {
    await this.#db.change('DELETE FROM goods WHERE id = ?', [id]);
  }

  ping(): Promise<void> {
    return this.#db.ping();
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}
