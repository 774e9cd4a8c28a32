import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { type CreateGoodsRequest, GoodsServiceClient } from '../../src/gen/services.js';
import { DATABASE_UNAVAILABLE } from '../../src/services/common/database-errors.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { SqliteGoodsStore } from '../../src/services/goods/sqlite-goods-store.js';
import { SqliteMembersStore } from '../../src/services/members/sqlite-members-store.js';
import { call, startTestServer, type TestServer, waitForHealth } from './support/test-server.js';

/**
 * A table of a SQLite store dropped or renamed away under the running service (the sqlite3 shell, a
 * migration run by hand): the operator's doing, as on MySQL (see mysql-outage.test.ts), so the calls
 * that meet it are UNAVAILABLE (503), not INTERNAL (500), and the health probe turns the instance
 * NOT_SERVING until the table is back, rows and all.
 */

const GOODS: CreateGoodsRequest = { name: 'kept', category: 'tests', price: 1, description: '' };
/** As a client sees it, and as the store throws it. */
const UNAVAILABLE = { code: status.UNAVAILABLE, details: DATABASE_UNAVAILABLE };
const STORE_UNAVAILABLE = { code: status.UNAVAILABLE, message: DATABASE_UNAVAILABLE };
const DEADLINE_MS = 5_000;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function freshFile(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'shop-table-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return join(dir, name);
}

/** A second connection to the file, as an operator's shell would have. */
function shell(file: string): Database.Database {
  const db = new Database(file);
  cleanups.push(async () => db.close());
  return db;
}

describe('a SQLite table dropped or renamed away under a running service', () => {
  async function startGoods(): Promise<{ file: string; service: TestServer<GoodsServiceClient> }> {
    const file = await freshFile('goods.sqlite');
    const store = new SqliteGoodsStore(file);
    const service = await startTestServer(
      createServiceServer(goodsService, { store, databaseProbeIntervalMs: 100 }),
      GoodsServiceClient,
    );
    cleanups.push(() => service.close());
    return { file, service };
  }

  it('answers the calls that meet it UNAVAILABLE, turns NOT_SERVING, and serves the same rows once it is back', async () => {
    const { file, service } = await startGoods();
    const create = () => call(service.client, service.client.createGoods, GOODS, DEADLINE_MS);
    const list = () => call(service.client, service.client.listGoods, {}, DEADLINE_MS);
    await expect(create()).resolves.toEqual({ id: 1 });
    const operator = shell(file);
    operator.exec('ALTER TABLE goods RENAME TO goods_away');
    await expect(create()).rejects.toMatchObject(UNAVAILABLE);
    await expect(list()).rejects.toMatchObject(UNAVAILABLE);
    await waitForHealth(service.address, 'NOT_SERVING');
    operator.exec('ALTER TABLE goods_away RENAME TO goods');
    await waitForHealth(service.address, 'SERVING');
    expect((await list()).results.map(({ id }) => id)).toEqual([1]);
  });

  it('is noticed by the probe when no call meets it, for an idempotency table too', async () => {
    const { file, service } = await startGoods();
    shell(file).exec('DROP TABLE goods_idempotency');
    await waitForHealth(service.address, 'NOT_SERVING');
  });

  it('makes a members store refuse its sign-in bookkeeping UNAVAILABLE, not INTERNAL', async () => {
    const file = await freshFile('members.sqlite');
    const store = new SqliteMembersStore(file);
    cleanups.push(() => store.close());
    shell(file).exec('DROP TABLE sign_in_failures');
    await expect(store.recordSignInFailure('ann', 60_000, undefined)).rejects.toMatchObject(
      STORE_UNAVAILABLE,
    );
    await expect(store.ping()).rejects.toMatchObject(STORE_UNAVAILABLE);
  });
});
