import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { type Connection, createConnection } from 'mysql2/promise';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { type CreateGoodsRequest, GoodsServiceClient } from '../../src/gen/services.js';
import { DATABASE_UNAVAILABLE } from '../../src/services/common/database-errors.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { MysqlGoodsStore } from '../../src/services/goods/mysql-goods-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';
import { call, startTestServer, type TestServer, waitForHealth } from './support/test-server.js';

const mysqlUrl = inject('mysqlUrl');
const GOODS: CreateGoodsRequest = { name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
const UNAVAILABLE = { code: status.UNAVAILABLE, details: DATABASE_UNAVAILABLE };

/**
 * What an operator sets on the service's own MySQL user while it runs: a connection limit, a
 * statement time limit, a privilege taken away and given back. Each refuses the write before it
 * does anything, for a reason no request caused: UNAVAILABLE "Database unavailable" (503), as a
 * server that refuses every write is, not INTERNAL (500); and once the limit is lifted, writes
 * work again without a restart. Before, all three were INTERNAL, and a connection opened while
 * INSERT was revoked kept refusing after it was granted again (MariaDB reads a connection's
 * database privileges when it connects), so a pool kept failing writes until the service restarted.
 */
describe.runIf(mysqlUrl)(
  mysqlUrl
    ? "goods under its MySQL user's limits"
    : "goods under its MySQL user's limits (skipped: MySQL unreachable here)",
  () => {
    const user = `shop_lim_${randomBytes(4).toString('hex')}`;
    let database: TestDatabase;
    let name: string;
    let admin: Connection;
    let store: MysqlGoodsStore | undefined;
    let service: TestServer<GoodsServiceClient> | undefined;

    const forUser = async (statement: string): Promise<void> => {
      for (const host of ['%', 'localhost'])
        await admin.query(statement.replaceAll('$USER', `'${user}'@'${host}'`));
    };

    beforeEach(async () => {
      database = await createTestDatabase(mysqlUrl);
      name = new URL(database.url).pathname.slice(1);
      admin = await createConnection({ uri: mysqlUrl });
      await forUser("CREATE USER $USER IDENTIFIED BY 'limited'");
      await forUser(`GRANT ALL ON \`${name}\`.* TO $USER`);
    });
    afterEach(async () => {
      await service?.close();
      service = undefined;
      await store?.close();
      store = undefined;
      await forUser('DROP USER IF EXISTS $USER');
      await admin.end();
      await database.drop();
    });

    const connection = () => ({ ...parseMysqlUrl(database.url, 'test database'), user, password: 'limited' });
    async function start(waitUntilServing = true): Promise<TestServer<GoodsServiceClient>> {
      store = new MysqlGoodsStore({
        connection: connection(),
        connectTimeoutMs: 1_000,
        acquireTimeoutMs: 1_000,
        queryTimeoutMs: 3_000,
      });
      service = await startTestServer(
        createServiceServer(goodsService, { store, databaseProbeIntervalMs: 100 }),
        GoodsServiceClient,
        { waitUntilServing },
      );
      return service;
    }
    const create = (client: GoodsServiceClient) => call(client, client.createGoods, GOODS, 5_000);

    it('MAX_USER_CONNECTIONS reached: UNAVAILABLE, and writes work once a connection is free', async () => {
      await forUser('ALTER USER $USER WITH MAX_USER_CONNECTIONS 1');
      const holder = await createConnection({ uri: mysqlUrl, ...connection() });
      const { client, address } = await start(false);
      await expect(create(client)).rejects.toMatchObject(UNAVAILABLE);
      await holder.end();
      await waitForHealth(address, 'SERVING');
      await expect(create(client)).resolves.toEqual({ id: 1 });
    });

    it('MAX_STATEMENT_TIME passed: UNAVAILABLE, nothing stored', async () => {
      await forUser('ALTER USER $USER WITH MAX_STATEMENT_TIME 0.5');
      const { client } = await start();
      await admin.query(`USE \`${name}\``);
      await admin.query('START TRANSACTION');
      try {
        // Holds the gap past the last row: the INSERT waits, past the user's statement time.
        await admin.query('SELECT * FROM goods FOR UPDATE');
        await expect(create(client)).rejects.toMatchObject(UNAVAILABLE);
      } finally {
        await admin.query('ROLLBACK');
      }
      await expect(create(client)).resolves.toMatchObject({ id: expect.any(Number) });
      const [rows] = await admin.query('SELECT COUNT(*) AS n FROM goods');
      expect(rows).toEqual([{ n: 1 }]);
    });

    it('INSERT revoked: UNAVAILABLE; granted again: writes work, without a restart', async () => {
      // The store's connections are opened without INSERT, and would keep that for their lifetime.
      await forUser(`REVOKE INSERT ON \`${name}\`.* FROM $USER`);
      const { client } = await start();
      await expect(create(client)).rejects.toMatchObject(UNAVAILABLE);
      // Meanwhile the health probe (every 100 ms) opens connections, without INSERT too.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await forUser(`GRANT INSERT ON \`${name}\`.* TO $USER`);
      // Each connection opened before the grant fails one write more, and is dropped: at most the
      // pool's 11 (the calls' 10 and the health probe's); then every write works.
      let failed = 0;
      for (;;) {
        const outcome = await create(client).catch((error: unknown) => error);
        if (!(outcome instanceof Error)) break;
        expect(outcome).toMatchObject(UNAVAILABLE);
        expect(++failed).toBeLessThanOrEqual(11);
      }
      for (let id = 2; id <= 3; id++) await expect(create(client)).resolves.toEqual({ id });
    });
  },
);
