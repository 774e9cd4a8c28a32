import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { createConnection } from 'mysql2/promise';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { type CreateGoodsRequest, GoodsServiceClient } from '../../src/gen/services.js';
import { DATABASE_UNAVAILABLE } from '../../src/services/common/database-errors.js';
import { classifyMysqlError } from '../../src/services/common/mysql-errors.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { MysqlGoodsStore } from '../../src/services/goods/mysql-goods-store.js';
import { checkHealth } from '../helpers/grpc-clients.js';
import { captureLog } from '../helpers/log-capture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';
import { call, startTestServer, type TestServer } from './support/test-server.js';

const mysqlUrl = inject('mysqlUrl');
const GOODS: CreateGoodsRequest = { name: 'test Goods', category: 'tests', price: 1000, description: 'test' };

/**
 * A MySQL server that refuses every write for a reason no request caused (read_only, a full disk)
 * was answered INTERNAL (500), as if the service were broken. It is UNAVAILABLE "Database
 * unavailable" (503 through the gateway), reads go on, and health stays SERVING (every instance
 * shares the server: see MysqlDatabase.ping).
 *
 * read_only binds only users without SUPER (READ ONLY ADMIN on MariaDB): the store runs as a user
 * of its own, on its own database, dropped afterwards. read_only is global to a server other tests
 * share: it is on only around one write, and turned off in `finally`.
 */
describe.runIf(mysqlUrl)(
  mysqlUrl
    ? 'goods when MySQL refuses writes'
    : 'goods when MySQL refuses writes (skipped: MySQL unreachable here)',
  () => {
    const user = `shop_ro_${randomBytes(4).toString('hex')}`;
    let database: TestDatabase;
    let store: MysqlGoodsStore;
    let service: TestServer<GoodsServiceClient>;
    const captured = captureLog('goods', 'info');

    beforeEach(async () => {
      database = await createTestDatabase(mysqlUrl);
      const name = new URL(database.url).pathname.slice(1);
      const admin = await createConnection({ uri: mysqlUrl });
      try {
        for (const host of ['%', 'localhost']) {
          await admin.query(`CREATE USER '${user}'@'${host}' IDENTIFIED BY 'not-super'`);
          await admin.query(`GRANT ALL ON \`${name}\`.* TO '${user}'@'${host}'`);
        }
      } finally {
        await admin.end();
      }
      store = new MysqlGoodsStore({
        connection: { ...parseMysqlUrl(database.url, 'test database'), user, password: 'not-super' },
        connectTimeoutMs: 1_000,
        acquireTimeoutMs: 1_000,
        queryTimeoutMs: 1_000,
      });
      service = await startTestServer(
        createServiceServer(goodsService, { store, log: captured.log, databaseProbeIntervalMs: 100 }),
        GoodsServiceClient,
      );
    });
    afterEach(async () => {
      await service.close();
      await store.close();
      const admin = await createConnection({ uri: mysqlUrl });
      try {
        for (const host of ['%', 'localhost']) await admin.query(`DROP USER IF EXISTS '${user}'@'${host}'`);
      } finally {
        await admin.end();
      }
      await database.drop();
    });

    const create = () => call(service.client, service.client.createGoods, GOODS, 5_000);
    const list = () => call(service.client, service.client.listGoods, {}, 5_000);

    it('read_only: the write is UNAVAILABLE, nothing stored, reads go on, health stays SERVING; logged with its code', async () => {
      await expect(create()).resolves.toEqual({ id: 1 });
      const admin = await createConnection({ uri: mysqlUrl });
      let refused: unknown;
      try {
        await admin.query('SET GLOBAL read_only = 1');
        refused = await create().catch((error: unknown) => error);
      } finally {
        await admin.query('SET GLOBAL read_only = 0');
        await admin.end();
      }
      expect(refused).toMatchObject({ code: status.UNAVAILABLE, details: DATABASE_UNAVAILABLE });
      expect((await list()).results.map(({ id }) => id)).toEqual([1]);
      expect(await checkHealth(service.address)).toBe('SERVING');
      const logged = captured.lines.filter((line) => line.msg === DATABASE_UNAVAILABLE);
      expect(logged).toHaveLength(1);
      expect(logged[0]!.err).toMatchObject({ code: 'ER_OPTION_PREVENTS_STATEMENT' });
      // Writes work again once the server takes them.
      await expect(create()).resolves.toEqual({ id: 2 });
    });
  },
);

describe('MySQL codes of a server that cannot take writes', () => {
  // A real full disk is not needed: the server answers these codes, and they are mapped by code.
  it.each([
    'ER_OPTION_PREVENTS_STATEMENT',
    'ER_READ_ONLY_MODE',
    'ER_INNODB_READ_ONLY',
    'ER_DISK_FULL',
    'ER_DISK_FULL_NOWAIT',
    'ER_RECORD_FILE_FULL',
  ])('%s is UNAVAILABLE "Database unavailable"', (code) => {
    const error = Object.assign(new Error('refused'), { code, fatal: false });
    expect(classifyMysqlError(error)).toMatchObject({
      code: status.UNAVAILABLE,
      message: DATABASE_UNAVAILABLE,
    });
  });

  it('a statement at fault is still INTERNAL', () => {
    const error = Object.assign(new Error('Duplicate entry'), { code: 'ER_DUP_ENTRY', fatal: false });
    expect(classifyMysqlError(error).code).toBe(status.INTERNAL);
  });
});
