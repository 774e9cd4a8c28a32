import Database from 'better-sqlite3';
import { createConnection } from 'mysql2/promise';
import type { MysqlConnectionOptions } from '../services/common/mysql-url.js';
import type { NewGoods } from '../services/goods/goods-store.js';
import { MYSQL_GOODS_SCHEMA } from '../services/goods/mysql-goods-store.js';
import { SQLITE_GOODS_SCHEMA } from '../services/goods/sqlite-goods-store.js';

/** Where a shop keeps its goods table: a MySQL database, or the goods service's SQLite file. */
export type GoodsTable =
  | { readonly kind: 'mysql'; readonly connection: MysqlConnectionOptions }
  | { readonly kind: 'sqlite'; readonly file: string };

/** Rows per INSERT on MySQL: 1,000 rows of a few hundred bytes stay far below max_allowed_packet. */
const MYSQL_BATCH = 1_000;

/**
 * Adds `count` goods straight into a shop's table, behind the goods service's back, for a benchmark
 * or a test that needs many rows fast: multi-row INSERTs on MySQL, one transaction on SQLite (a
 * hundred thousand rows take seconds, where as many POST /goods would take minutes). The table is
 * created first if the service has not yet done so.
 */
export async function insertGoods(
  table: GoodsTable,
  count: number,
  goodsAt: (index: number) => NewGoods,
): Promise<void> {
  if (table.kind === 'sqlite') {
    const db = new Database(table.file);
    try {
      db.pragma('busy_timeout = 5000');
      for (const statement of SQLITE_GOODS_SCHEMA) db.exec(statement);
      const insert = db.prepare<[string, string, number, string]>(
        'INSERT INTO goods (name, category, price, description) VALUES (?, ?, ?, ?)',
      );
      db.transaction(() => {
        for (let index = 0; index < count; index++) {
          const { name, category, price, description } = goodsAt(index);
          insert.run(name, category, price, description);
        }
      })();
    } finally {
      db.close();
    }
    return;
  }
  const { host, port, user, password, database, ssl } = table.connection;
  const connection = await createConnection({
    host,
    port,
    user,
    password,
    database,
    charset: 'utf8mb4',
    ...(ssl === undefined ? {} : { ssl: ssl as never }),
  });
  try {
    for (const statement of MYSQL_GOODS_SCHEMA) await connection.query(statement);
    for (let start = 0; start < count; start += MYSQL_BATCH) {
      const rows: [string, string, number, string][] = [];
      for (let index = start; index < Math.min(count, start + MYSQL_BATCH); index++) {
        const { name, category, price, description } = goodsAt(index);
        rows.push([name, category, price, description]);
      }
      await connection.query('INSERT INTO goods (name, category, price, description) VALUES ?', [rows]);
    }
  } finally {
    await connection.end();
  }
}
