import type { RowDataPacket } from 'mysql2/promise';
import { MysqlDatabase, type MysqlStoreOptions } from '../common/mysql-database.js';
import { type PageQuery, type StoredPage, takePage } from '../common/paging.js';
import type { NewPurchase, PurchaseRecord, PurchasesStore } from './purchases-store.js';

/**
 * The purchases table in MySQL. DATETIME(3) keeps milliseconds; the pool writes and reads it as UTC
 * (mysql2 `timezone: 'Z'`) and the service supplies the time, so neither the process's nor the
 * server's time zone can shift it.
 */
export const MYSQL_PURCHASES_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS purchases (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    userid INT NOT NULL,
    goodsid INT NOT NULL,
    date DATETIME(3) NOT NULL,
    KEY purchases_userid (userid, id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
] as const;

type PurchaseRow = PurchaseRecord & RowDataPacket;

/** The purchase history in MySQL, through one bounded pool. */
export class MysqlPurchasesStore implements PurchasesStore {
  readonly kind = 'mysql';
  readonly #db: MysqlDatabase;

  /** Creates the pool; the table is created on first use (see MysqlDatabase). */
  constructor(options: MysqlStoreOptions) {
    this.#db = new MysqlDatabase({ ...options, schema: MYSQL_PURCHASES_SCHEMA });
  }

  async createPurchase({ userid, goodsid, date }: NewPurchase): Promise<number> {
    const result = await this.#db.change('INSERT INTO purchases (userid, goodsid, date) VALUES (?, ?, ?)', [
      userid,
      goodsid,
      date,
    ]);
    return result.insertId;
  }

  async listPurchases(userid: number, { afterId, size }: PageQuery): Promise<StoredPage<PurchaseRecord>> {
    const rows = await this.#db.select<PurchaseRow>(
      'SELECT id, goodsid, date FROM purchases WHERE userid = ? AND id > ? ORDER BY id LIMIT ?',
      // LIMIT as a string: MySQL 8 refuses a prepared LIMIT that mysql2 sends as a double.
      [userid, afterId, String(size + 1)],
    );
    return takePage(
      rows.map(({ id, goodsid, date }) => ({ id, goodsid, date })),
      size,
    );
  }

  ping(): Promise<void> {
    return this.#db.ping();
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}
