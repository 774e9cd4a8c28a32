import { type Connection, createConnection } from 'mysql2/promise';
import { afterEach, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { MysqlGoodsStore } from '../../src/services/goods/mysql-goods-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';

const mysqlUrl = inject('mysqlUrl');
const GOODS = { name: 'test Goods', category: 'tests', price: 1000, description: 'test' };

/**
 * Calls that fill the pool are not a database that is unreachable. Writes waiting for a row lock that
 * someone else holds (an operator's transaction, a migration) took every pooled connection; the
 * health probe queued behind them, gave up after the acquire timeout, and the instance went
 * NOT_SERVING while the server answered every statement: measured under `npm start`, 40 writers
 * behind a lock held 10 s drained purchases, and 172 requests, reads among them, were answered
 * 503 "No serving instance". The probe now has a connection of its own beside the calls'.
 */
describe.runIf(mysqlUrl)(
  mysqlUrl
    ? 'MySQL health probe with every call connection busy'
    : 'MySQL health probe with every call connection busy (skipped: MySQL unreachable here)',
  () => {
    let database: TestDatabase;
    let admin: Connection;
    let store: MysqlGoodsStore;

    beforeEach(async () => {
      database = await createTestDatabase(mysqlUrl);
      admin = await createConnection({ uri: database.url });
      store = new MysqlGoodsStore({
        connection: parseMysqlUrl(database.url, 'test database'),
        connectionLimit: 2,
        acquireTimeoutMs: 1_000,
        // Row locks are waited for 4 s: far longer than the probe's 1 s for a connection.
        queryTimeoutMs: 5_000,
      });
      await store.ping();
    });
    afterEach(async () => {
      await admin.query('ROLLBACK').catch(() => {});
      await store.close();
      await admin.end();
      await database.drop();
    });

    it('answers the probe while every call connection waits for a lock', async () => {
      await admin.query('START TRANSACTION');
      // Holds the gap past the last row: every INSERT waits.
      await admin.query('SELECT * FROM goods FOR UPDATE');
      const writes = Array.from({ length: 4 }, () =>
        // Stored once the lock is released, or refused after waiting for a connection: either is fine.
        store.createGoods(GOODS, undefined).catch(() => undefined),
      );
      // Both call connections are in the lock wait; the other two calls wait for one of them.
      await vi.waitFor(
        async () => {
          const [rows] = await admin.query(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE 'INSERT INTO goods%'",
          );
          expect(rows).toEqual([{ n: 2 }]);
        },
        { timeout: 5_000, interval: 50 },
      );
      await expect(store.ping()).resolves.toBeUndefined();
      await admin.query('ROLLBACK');
      await Promise.all(writes);
      await expect(store.createGoods(GOODS, undefined)).resolves.toEqual(expect.any(Number));
    });
  },
);
