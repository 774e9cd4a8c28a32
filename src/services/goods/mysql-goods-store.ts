import type { RowDataPacket } from 'mysql2/promise';
import type { TraceSpan } from '../../common/trace-span.js';
import type { Once, Outcome } from '../common/idempotency.js';
import type { MysqlStoreOptions } from '../common/mysql-database-options.js';
import { mysqlIdempotencySchema } from '../common/mysql-idempotency.js';
import { readPageHoldingBackInFlight } from '../common/mysql-paging.js';
import { MysqlServiceStore } from '../common/mysql-service-store.js';
import { type StoredPage, takePage } from '../common/paging.js';
import type { SqlExecutor } from '../common/sql-executor.js';
import type { GoodsPageQuery, GoodsRecord, GoodsStore, NewGoods } from './goods-store.js';

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

/**
 * Descriptions up to this many bytes come with the page's first query; longer ones are read by a
 * second query, and only for the rows the page keeps, so that a page never brings the descriptions
 * of rows past its text budget into memory (a thousand 64 KiB descriptions would be 64 MiB).
 */
const INLINE_DESCRIPTION_BYTES = 1024;

/** A page's rows, with descriptions up to INLINE_DESCRIPTION_BYTES. */
const PAGE_SQL = `SELECT id, name, category, price, LENGTH(description) AS descriptionBytes,
         IF(LENGTH(description) <= ${INLINE_DESCRIPTION_BYTES}, description, NULL) AS description
       FROM goods WHERE id > ? ORDER BY id LIMIT ?`;

interface PageRow extends RowDataPacket {
  id: number;
  name: string;
  category: string;
  price: number;
  /** Null when longer than INLINE_DESCRIPTION_BYTES. */
  description: string | null;
  descriptionBytes: number;
}

/** The goods catalogue in MySQL, through one bounded pool. */
export class MysqlGoodsStore extends MysqlServiceStore implements GoodsStore {
  /** Creates the pool; the tables are created on first use (see MysqlDatabase). */
  constructor(options: MysqlStoreOptions) {
    super(options, MYSQL_GOODS_SCHEMA, 'goods_idempotency');
  }

  createGoods(goods: NewGoods, parent?: TraceSpan): Promise<number> {
    return insertGoods(this.db.forCall(parent), goods);
  }

  createGoodsOnce(goods: NewGoods, once: Once<number>, parent?: TraceSpan): Promise<Outcome> {
    return this.journal.run(once, (sql) => insertGoods(sql, goods), parent);
  }

  async listGoods(
    { afterId, size, maxTextBytes }: GoodsPageQuery,
    parent?: TraceSpan,
  ): Promise<StoredPage<GoodsRecord>> {
    const db = this.db.forCall(parent);
    // The page holds no id past one still being written below it (see mysql-paging.ts).
    const page = await readPageHoldingBackInFlight(
      this.db,
      {
        afterId,
        statement: PAGE_SQL,
        read: async (reader) =>
          takePage(
            await reader.select<PageRow>(
              PAGE_SQL,
              // LIMIT as a string: MySQL 8 refuses a prepared LIMIT that mysql2 sends as a double.
              [afterId, String(size + 1)],
            ),
            size,
            maxTextBytes,
            (row) =>
              Buffer.byteLength(row.name, 'utf8') +
              Buffer.byteLength(row.category, 'utf8') +
              row.descriptionBytes,
          ),
        idsSql: 'SELECT id FROM goods WHERE id > ? AND id <= ?',
        idsValues: (after, lastId) => [after, lastId],
      },
      parent,
    );
    // The page's last row, after any rows past an id in flight were left for the next page: long
    // descriptions are read for the rows kept only.
    const last = page.rows.at(-1);
    const long = new Map<number, string>();
    if (last && page.rows.some((row) => row.description === null)) {
      const found = await db.select<PageRow>(
        `SELECT id, description FROM goods
         WHERE id > ? AND id <= ? AND LENGTH(description) > ${INLINE_DESCRIPTION_BYTES}`,
        [afterId, last.id],
      );
      for (const row of found) long.set(row.id, row.description!);
    }
    const goods: GoodsRecord[] = [];
    for (const { id, name, category, price, description } of page.rows) {
      const text = description ?? long.get(id);
      // Deleted between the two queries: it is no longer in the catalogue.
      if (text !== undefined) goods.push({ id, name, category, price, description: text });
    }
    // Every row of the page deleted so: the page after it, as a read a moment later would have
    // answered. An empty first page would be "no data" for a catalogue that still holds goods.
    if (goods.length === 0 && page.nextAfterId !== undefined) {
      return this.listGoods({ afterId: page.nextAfterId, size, maxTextBytes }, parent);
    }
    return { rows: goods, nextAfterId: page.nextAfterId };
  }

  deleteGoods(id: number, parent?: TraceSpan): Promise<void> {
    return removeGoods(this.db.forCall(parent), id);
  }

  deleteGoodsOnce(id: number, once: Once<void>, parent?: TraceSpan): Promise<Outcome> {
    return this.journal.run(once, (sql) => removeGoods(sql, id), parent);
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
