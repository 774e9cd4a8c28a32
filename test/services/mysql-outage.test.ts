import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { createConnection, PoolConnection, type RowDataPacket } from 'mysql2/promise';
import { afterEach, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { type CreateGoodsRequest, GoodsServiceClient } from '../../src/gen/services.js';
import { MysqlDatabase } from '../../src/services/common/mysql-database.js';
import { cutOffUnanswered } from '../../src/services/common/mysql-errors.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { MysqlGoodsStore } from '../../src/services/goods/mysql-goods-store.js';
import { checkHealth } from '../helpers/grpc-clients.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { call, startTestServer, type TestServer, waitForHealth } from './support/test-server.js';

const mysqlUrl = inject('mysqlUrl');
const GOODS: CreateGoodsRequest = { name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
const UNAVAILABLE = { code: status.UNAVAILABLE, details: 'Database unavailable' };
/** A MySQL client packet that executes a prepared statement: COM_STMT_EXECUTE after the 4-byte header. */
const isStatementExecute = (chunk: Buffer): boolean => chunk.length > 4 && chunk[4] === 0x17;
/** The deadline the tests give each call: failures must come as UNAVAILABLE well before it. */
const DEADLINE_MS = 5_000;

/**
 * The goods service on MariaDB behind a TCP proxy that the tests cut and restore. Timeouts are
 * shortened (1 s instead of 3–5 s) and the database is probed every 100 ms, so the suite is quick;
 * the behaviour is the production one.
 */
describe.runIf(mysqlUrl)(
  mysqlUrl ? 'goods when MySQL goes away' : 'goods when MySQL goes away (skipped: MySQL unreachable here)',
  () => {
    let database: TestDatabase;
    let proxy: TcpProxy;
    let store: MysqlGoodsStore;
    let service: TestServer<GoodsServiceClient> | undefined;

    /** The goods store through the proxy, with a statement timeout of `queryTimeoutMs`. */
    const storeThroughProxy = (queryTimeoutMs = 1_000): MysqlGoodsStore =>
      new MysqlGoodsStore({
        connection: { ...parseMysqlUrl(database.url, 'test database'), host: '127.0.0.1', port: proxy.port },
        connectTimeoutMs: 1_000,
        acquireTimeoutMs: 1_000,
        queryTimeoutMs,
      });

    beforeEach(async () => {
      database = await createTestDatabase(mysqlUrl);
      const server = new URL(mysqlUrl);
      proxy = await TcpProxy.start({ host: server.hostname, port: Number(server.port || 3306) });
      store = storeThroughProxy();
    });
    afterEach(async () => {
      await service?.close();
      service = undefined;
      await store.close();
      await proxy.close();
      await database.drop();
    });

    async function start(
      options: { waitUntilServing?: boolean } = {},
    ): Promise<TestServer<GoodsServiceClient>> {
      service = await startTestServer(
        createServiceServer(goodsService, { store, databaseProbeIntervalMs: 100 }),
        GoodsServiceClient,
        options,
      );
      return service;
    }
    const create = () => call(service!.client, service!.client.createGoods, GOODS, DEADLINE_MS);
    const list = () => call(service!.client, service!.client.listGoods, {}, DEADLINE_MS);

    it('refused connections: UNAVAILABLE at once and NOT_SERVING; back by itself when MySQL is', async () => {
      const { address } = await start();
      await expect(create()).resolves.toEqual({ id: 1 });

      await proxy.refuse();
      await expect(create()).rejects.toMatchObject(UNAVAILABLE);
      await expect(list()).rejects.toMatchObject(UNAVAILABLE);
      await waitForHealth(address, 'NOT_SERVING');

      await proxy.restore();
      await waitForHealth(address, 'SERVING');
      await expect(create()).resolves.toEqual({ id: 2 });
      expect((await list()).results.map(({ id }) => id)).toEqual([1, 2]);
    });

    it('a table renamed away under it: NOT_SERVING until it is back, rows and all (it is not made again empty)', async () => {
      const { address } = await start();
      await expect(create()).resolves.toEqual({ id: 1 });
      const admin = await createConnection({ uri: database.url });
      try {
        await admin.query('RENAME TABLE goods TO goods_away');
        await waitForHealth(address, 'NOT_SERVING');
        const [tables] = await admin.query<RowDataPacket[]>("SHOW TABLES LIKE 'goods'");
        expect(tables).toEqual([]);
        await admin.query('RENAME TABLE goods_away TO goods');
        await waitForHealth(address, 'SERVING');
        expect((await list()).results.map(({ id }) => id)).toEqual([1]);
      } finally {
        await admin.end();
      }
    });

    it('a table renamed away: the calls before the probe notices are UNAVAILABLE, not INTERNAL (503, not 500)', async () => {
      // Found over REST: keyed POSTs /purchases while purchases_idempotency was renamed away for
      // 1.5 s were answered 500 "Internal error in the service" until health turned NOT_SERVING.
      // The table is the operator's fault, not the request's; nothing was written.
      const { address } = await start();
      await expect(create()).resolves.toEqual({ id: 1 });
      const admin = await createConnection({ uri: database.url });
      try {
        await admin.query('RENAME TABLE goods TO goods_away');
        await expect(create()).rejects.toMatchObject(UNAVAILABLE);
        await expect(list()).rejects.toMatchObject(UNAVAILABLE);
        await waitForHealth(address, 'NOT_SERVING');
        await admin.query('RENAME TABLE goods_away TO goods');
        await waitForHealth(address, 'SERVING');
        expect((await list()).results.map(({ id }) => id)).toEqual([1]);
      } finally {
        await admin.end();
      }
    });

    it('a database that does not exist yet: UNAVAILABLE and NOT_SERVING, serving once it is created, without a restart', async () => {
      const name = new URL(database.url).pathname.slice(1);
      const admin = await createConnection({ uri: mysqlUrl });
      try {
        await admin.query(`DROP DATABASE \`${name}\``);
        const { address } = await start({ waitUntilServing: false });
        await waitForHealth(address, 'NOT_SERVING');
        await expect(create()).rejects.toMatchObject(UNAVAILABLE);

        await admin.query(`CREATE DATABASE \`${name}\``);
        await waitForHealth(address, 'SERVING');
        await expect(create()).resolves.toEqual({ id: 1 });
      } finally {
        await admin.end();
      }
    });

    it('a user who may read and write but not create tables serves once the tables exist (least privilege)', async () => {
      const name = new URL(database.url).pathname.slice(1);
      const user = `shop_dml_${randomBytes(4).toString('hex')}`;
      const admin = await createConnection({ uri: mysqlUrl });
      const limited = new MysqlGoodsStore({
        connection: { ...parseMysqlUrl(database.url, 'test database'), user, password: 'dml-only' },
        connectTimeoutMs: 1_000,
        acquireTimeoutMs: 1_000,
        queryTimeoutMs: 1_000,
      });
      try {
        for (const host of ['%', 'localhost']) {
          await admin.query(`CREATE USER '${user}'@'${host}' IDENTIFIED BY 'dml-only'`);
          await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${name}\`.* TO '${user}'@'${host}'`);
        }
        // Without the tables it cannot serve: CREATE is refused, UNAVAILABLE as a database that
        // cannot be used yet (it serves once an administrator has made them, without a restart).
        await expect(limited.ping()).rejects.toMatchObject({ code: status.UNAVAILABLE });
        await store.ping(); // the tables, made by a user who may
        await limited.ping();
        await expect(
          limited.createGoods({ name: 'n', category: 'c', price: 1, description: 'd' }),
        ).resolves.toBe(1);
      } finally {
        await limited.close();
        for (const host of ['%', 'localhost']) await admin.query(`DROP USER IF EXISTS '${user}'@'${host}'`);
        await admin.end();
      }
    });

    it('a write that waits for a lock past the statement timeout is stopped on the server: answered UNAVAILABLE, never committed later', async () => {
      // A statement timeout of 2.5 s makes the server's lock wait 2 s: the server ends the wait first
      // and says so, and the write is known not done (at 1 s each, either could end it first).
      await store.close();
      store = storeThroughProxy(2_500);
      await start();
      await expect(create()).resolves.toEqual({ id: 1 });
      const admin = await createConnection({ uri: database.url });
      try {
        await admin.query('LOCK TABLES goods WRITE');
        await expect(create()).rejects.toMatchObject(UNAVAILABLE);
        // The lock is held a little longer, as a slow transaction's would be.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await admin.query('UNLOCK TABLES');
        // Before, the server ran the INSERT as soon as the lock went, after its caller was told.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const [rows] = await admin.query('SELECT id FROM goods ORDER BY id');
        expect(rows).toEqual([{ id: 1 }]);
        await expect(create()).resolves.toMatchObject({ id: expect.any(Number) });
      } finally {
        await admin.end();
      }
    });

    it("bounds the server's waits of its sessions: a transaction cut before its COMMIT lets go of its locks within minutes, and a statement waits for a lock less long than its timeout", async () => {
      const db = new MysqlDatabase({ connection: parseMysqlUrl(database.url, 'test database'), schema: [] });
      try {
        const [first] = await db.select<{ idle: number; rowLock: number; tableLock: number } & RowDataPacket>(
          'SELECT @@session.wait_timeout AS idle, @@session.innodb_lock_wait_timeout AS rowLock, @@session.lock_wait_timeout AS tableLock',
        );
        // Idle 5 minutes; lock waits shorter than the statement timeout (5 s by default).
        expect([first!.idle, first!.rowLock, first!.tableLock].map(Number)).toEqual([300, 4, 4]);
      } finally {
        await db.close();
      }
    });

    it('a network that drops everything: an answer before the deadline, not a hang; a write sent into it is not said to be undone', async () => {
      const { address } = await start();
      await expect(create()).resolves.toEqual({ id: 1 });
      // Two connections in the pool: the health probe (every 100 ms) may hold one when the network
      // goes, and the INSERT must still go out on an open one (on a new one, its connect would fail
      // first, and that write, never sent, is rightly UNAVAILABLE).
      await Promise.all([store.ping(), store.ping()]);

      proxy.blackhole();
      // The INSERT went out on a connection that was open: whether the server got it, nothing says.
      await expect(create()).rejects.toMatchObject({
        code: status.DEADLINE_EXCEEDED,
        details: 'The database did not confirm the write in time: it may have been done',
      });
      await expect(list()).rejects.toMatchObject(UNAVAILABLE);
      await expect(create()).rejects.toMatchObject(UNAVAILABLE);
      await waitForHealth(address, 'NOT_SERVING');

      await proxy.restore();
      await waitForHealth(address, 'SERVING');
      await expect(list()).resolves.toMatchObject({ results: [{ id: 1 }] });
    });

    it('an INSERT whose connection breaks after the server got it: UNKNOWN "may have been done", and it was', async () => {
      const { address } = await start();
      await expect(create()).resolves.toEqual({ id: 1 });

      proxy.cutAfter(isStatementExecute);
      // Before, UNAVAILABLE "Database unavailable": a caller (the gateway answers 503 with
      // Retry-After) was told to try again a write that was stored.
      await expect(create()).rejects.toMatchObject({
        code: status.UNKNOWN,
        details:
          'The connection to the database was lost before it confirmed the write: it may have been done',
      });
      const admin = await createConnection({ uri: database.url });
      try {
        // The server had the INSERT 200 ms before the cut; a slow disk may commit it later still.
        await vi.waitFor(
          async () => {
            const [rows] = await admin.query('SELECT id FROM goods ORDER BY id');
            expect(rows).toEqual([{ id: 1 }, { id: 2 }]);
          },
          { timeout: 3_000, interval: 100 },
        );
      } finally {
        await admin.end();
      }
      await waitForHealth(address, 'SERVING');
      await expect(create()).resolves.toEqual({ id: 3 });
    });

    it('a DELETE whose connection breaks after the server got it: UNAVAILABLE, since doing it again does no harm', async () => {
      await start();
      await expect(create()).resolves.toEqual({ id: 1 });
      proxy.cutAfter(isStatementExecute);
      await expect(
        call(service!.client, service!.client.deleteGoods, { id: 1 }, DEADLINE_MS),
      ).rejects.toMatchObject(UNAVAILABLE);
    });

    it('a transaction cut before its COMMIT was sent: UNAVAILABLE, rolled back; cut after: UNKNOWN, committed', async () => {
      const db = new MysqlDatabase({
        connection: { ...parseMysqlUrl(database.url, 'test database'), host: '127.0.0.1', port: proxy.port },
        schema: ['CREATE TABLE IF NOT EXISTS journal (id INT PRIMARY KEY)'],
        connectTimeoutMs: 1_000,
        acquireTimeoutMs: 1_000,
        queryTimeoutMs: 1_000,
      });
      const insert = (id: number) =>
        db.transaction('journal', async (sql) => {
          await sql.change('INSERT INTO journal (id) VALUES (?)', [id]);
        });
      try {
        await insert(1);
        proxy.cutAfter(isStatementExecute);
        await expect(insert(2)).rejects.toMatchObject({
          code: status.UNAVAILABLE,
          message: 'Database unavailable',
        });
        proxy.cutAfter((chunk) => chunk.length > 4 && chunk[4] === 0x03 && chunk.includes('COMMIT'));
        await expect(insert(3)).rejects.toMatchObject({ code: status.UNKNOWN });
        // The server rolls back a transaction whose connection is gone once it notices.
        await vi.waitFor(
          async () => {
            const rows = await db.select<{ id: number } & RowDataPacket>(
              'SELECT id FROM journal ORDER BY id',
            );
            expect(rows.map(({ id }) => id)).toEqual([1, 3]);
          },
          { timeout: 3_000, interval: 100 },
        );
      } finally {
        await db.close();
      }
    });

    it('connections that died while idle (packets dropped, no FIN or RST) cost one short ping, not a statement timeout each', async () => {
      const db = new MysqlDatabase({
        connection: { ...parseMysqlUrl(database.url, 'test database'), host: '127.0.0.1', port: proxy.port },
        schema: [],
        connectTimeoutMs: 1_000,
        acquireTimeoutMs: 1_000,
        queryTimeoutMs: 1_000,
        idleCheckAfterMs: 200,
      });
      try {
        // Four connections, then idle past the check's threshold.
        await Promise.all(Array.from({ length: 4 }, () => db.select('SELECT SLEEP(0.1)')));
        await new Promise((resolve) => setTimeout(resolve, 300));
        // The network drops everything for a while, then works again for new connections only:
        // the four open ones stay dead, as after a NAT or firewall forgot them.
        proxy.blackhole();
        await new Promise((resolve) => setTimeout(resolve, 100));
        await proxy.restore({ keepHeld: true });

        const started = Date.now();
        const answers = [];
        for (let i = 0; i < 4; i++) {
          answers.push(
            await db.select<{ one: number } & RowDataPacket>('SELECT 1 AS one').then(
              (rows) => rows[0]?.one,
              (error) => `${error.code} ${error.details}`,
            ),
          );
        }
        // Before, each of the four waited the whole statement timeout (1 s) and failed UNAVAILABLE.
        expect(answers).toEqual([1, 1, 1, 1]);
        // One ping's timeout (1 s here) for the first; the other dead ones go without one.
        expect(Date.now() - started).toBeLessThan(1_800);
      } finally {
        await db.close(100);
      }
    });

    it('a busy pool pings no connection: only one idle past the threshold is checked before its statement', async () => {
      const db = new MysqlDatabase({
        connection: parseMysqlUrl(database.url, 'test database'),
        schema: [],
        idleCheckAfterMs: 200,
      });
      const ping = vi.spyOn(PoolConnection.prototype, 'ping');
      try {
        for (let i = 0; i < 20; i++) await db.select('SELECT 1');
        expect(ping).not.toHaveBeenCalled();
        await new Promise((resolve) => setTimeout(resolve, 300));
        await db.select('SELECT 1');
        expect(ping).toHaveBeenCalledTimes(1);
      } finally {
        ping.mockRestore();
        await db.close();
      }
    });

    it('a slow statement that runs over its timeout drops no healthy idle connection', async () => {
      const db = new MysqlDatabase({
        connection: parseMysqlUrl(database.url, 'test database'),
        schema: [],
        queryTimeoutMs: 500,
      });
      const destroy = vi.spyOn(PoolConnection.prototype, 'destroy');
      try {
        // Four connections, given back one after the other: the last given back is handed out first.
        await Promise.all(Array.from({ length: 4 }, (_, i) => db.select(`SELECT SLEEP(${0.05 * (i + 1)})`)));
        await new Promise((resolve) => setTimeout(resolve, 50));
        // A slow statement, on a connection that is alive: its timeout says nothing of the others.
        await expect(db.select('SELECT SLEEP(2)')).rejects.toMatchObject({ code: status.UNAVAILABLE });
        expect(destroy).toHaveBeenCalledTimes(1);
        for (let i = 0; i < 4; i++)
          await Promise.all([db.select('SELECT 1'), db.select('SELECT 1'), db.select('SELECT 1')]);
        // Before: the three others, idle since before it, were dropped unasked and made anew.
        expect(destroy).toHaveBeenCalledTimes(1);
      } finally {
        destroy.mockRestore();
        await db.close();
      }
    });

    it('started while MySQL is down: NOT_SERVING, then creates its table and serves once MySQL is up', async () => {
      await proxy.refuse();
      const { address } = await start({ waitUntilServing: false });
      await expect(create()).rejects.toMatchObject(UNAVAILABLE);
      expect(await checkHealth(address)).toBe('NOT_SERVING');

      await proxy.restore();
      await waitForHealth(address, 'SERVING');
      await expect(create()).resolves.toEqual({ id: 1 });
    });

    it('200 concurrent calls during an outage all answer UNAVAILABLE', async () => {
      await start();
      await proxy.refuse();
      const answers = await Promise.all(
        Array.from({ length: 200 }, () =>
          create().then(
            () => 'stored',
            (error) => `${error.code} ${error.details}`,
          ),
        ),
      );
      expect(new Set(answers)).toEqual(new Set([`${status.UNAVAILABLE} Database unavailable`]));
    });
  },
);

describe('which failures leave a sent write unknown', () => {
  it('a connection lost under it is unknown; an error the server answered, or a statement never written, is not', () => {
    const lost = Object.assign(new Error('Connection lost: The server closed the connection.'), {
      fatal: true,
      code: 'PROTOCOL_CONNECTION_LOST',
    });
    expect(cutOffUnanswered(lost)).toBe(true);
    const shutdown = Object.assign(new Error('Server shutdown in progress'), {
      fatal: true,
      code: 'ER_SERVER_SHUTDOWN',
      sqlState: '08S01',
    });
    expect(cutOffUnanswered(shutdown)).toBe(false);
    // mysql2 refuses a command on a connection it knows closed without writing it: a COMMIT so refused
    // leaves the transaction uncommitted.
    const neverWritten = Object.assign(
      new Error("Can't add new command when connection is in closed state"),
      {
        fatal: true,
      },
    );
    expect(cutOffUnanswered(neverWritten)).toBe(false);
    expect(cutOffUnanswered(Object.assign(new Error('Duplicate entry'), { code: 'ER_DUP_ENTRY' }))).toBe(
      false,
    );
  });
});
