import type { RowDataPacket } from 'mysql2/promise';
import type { TraceSpan } from '../../common/trace-span.js';
import type { Once, Outcome } from '../common/idempotency.js';
import type { MysqlStoreOptions } from '../common/mysql-database-options.js';
import { mysqlIdempotencySchema } from '../common/mysql-idempotency.js';
import { readPageHoldingBackInFlight } from '../common/mysql-paging.js';
import { MysqlServiceStore } from '../common/mysql-service-store.js';
import { type PageQuery, type StoredPage, takePage } from '../common/paging.js';
import type { SqlExecutor } from '../common/sql-executor.js';
import type { NewPurchase, PurchaseRecord, PurchasesStore } from './purchases-store.js';

/**
 * The purchases table in MySQL. DATETIME(3) keeps milliseconds; the date is MySQL's UTC_TIMESTAMP(3)
 * (or a time a test gives, which the pool writes as UTC), and the pool reads it as UTC (mysql2
 * `timezone: 'Z'`), so neither the process's nor the session's or server's time zone can shift it.
 * And its idempotency keys (see idempotency.ts).
 */
export const MYSQL_PURCHASES_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS purchases (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    userid INT NOT NULL,
    goodsid INT NOT NULL,
    date DATETIME(3) NOT NULL,
    KEY purchases_userid (userid, id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ...mysqlIdempotencySchema('purchases_idempotency'),
] as const;

type PurchaseRow = PurchaseRecord & RowDataPacket;

/** One user's page of purchases. */
const PAGE_SQL = 'SELECT id, goodsid, date FROM purchases WHERE userid = ? AND id > ? ORDER BY id LIMIT ?';

/** The purchase history in MySQL, through one bounded pool. */
export class MysqlPurchasesStore extends MysqlServiceStore implements PurchasesStore {
  /** Creates the pool; the tables are created on first use (see MysqlDatabase). */
  constructor(options: MysqlStoreOptions) {
    super(options, MYSQL_PURCHASES_SCHEMA, 'purchases_idempotency');
  }

  createPurchase(purchase: NewPurchase, parent?: TraceSpan): Promise<number> {
    return insertPurchase(this.db.forCall(parent), purchase);
  }

  createPurchaseOnce(purchase: NewPurchase, once: Once<number>, parent?: TraceSpan): Promise<Outcome> {
    return this.journal.run(once, (sql) => insertPurchase(sql, purchase), parent);
  }

  async listPurchases(
    userid: number,
    { afterId, size }: PageQuery,
    parent?: TraceSpan,
  ): Promise<StoredPage<PurchaseRecord>> {
    // The page holds no id past one still being written below it (see mysql-paging.ts). Other
    // users' purchases leave gaps in one user's ids, so most pages here take the second look.
    return readPageHoldingBackInFlight(
      this.db,
      {
        afterId,
        statement: PAGE_SQL,
        read: async (reader) => {
          const rows = await reader.select<PurchaseRow>(
            PAGE_SQL,
            // LIMIT as a string: MySQL 8 refuses a prepared LIMIT that mysql2 sends as a double.
            [userid, afterId, String(size + 1)],
          );
          return takePage(
            rows.map(({ id, goodsid, date }) => ({ id, goodsid, date })),
            size,
          );
        },
        // Read from the (userid, id) index alone.
        idsSql: 'SELECT id FROM purchases WHERE userid = ? AND id > ? AND id <= ?',
        idsValues: (after, lastId) => [userid, after, lastId],
      },
      parent,
    );
  }
}

async function insertPurchase(sql: SqlExecutor, { userid, goodsid, date }: NewPurchase): Promise<number> {
  // Undefined: MySQL's clock, the same for every instance whatever its host's clock says (before, an
  // instance on a host a day ahead dated its purchases a day ahead).
  const result = await sql.change(
    'INSERT INTO purchases (userid, goodsid, date) VALUES (?, ?, COALESCE(?, UTC_TIMESTAMP(3)))',
    [userid, goodsid, date ?? null],
  );
  return result.insertId;
}
