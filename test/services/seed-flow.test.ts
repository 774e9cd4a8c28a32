import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { createDistributorServer, type DistributorServer } from '../../src/distributor/distributor-server.js';
import { GoodsServiceClient, MembersServiceClient, PurchasesServiceClient } from '../../src/gen/services.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import type { StorageConfig } from '../../src/services/common/service-config.js';
import { type RunningService, startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { membersService } from '../../src/services/members/members-service.js';
import { purchasesService } from '../../src/services/purchases/purchases-service.js';
import { createTestDatabase } from '../helpers/mysql.js';
import { testServiceConfig } from './support/service-config.js';
import { call } from './support/test-server.js';

const mysqlUrl = inject('mysqlUrl');

/** Where the three services keep their data, shared the way a deployment shares it. */
const STORAGES = [
  {
    title: 'on SQLite',
    enabled: true,
    async open(): Promise<{ storage: StorageConfig; dispose(): Promise<void> }> {
      const dataDir = await mkdtemp(join(tmpdir(), 'shop-seed-'));
      return {
        storage: { kind: 'sqlite', dataDir },
        dispose: () => rm(dataDir, { recursive: true, force: true }),
      };
    },
  },
  {
    title: mysqlUrl ? 'on one MySQL database' : 'on one MySQL database (skipped: MySQL unreachable here)',
    enabled: Boolean(mysqlUrl),
    async open(): Promise<{ storage: StorageConfig; dispose(): Promise<void> }> {
      const database = await createTestDatabase(mysqlUrl);
      return {
        storage: { kind: 'mysql', connection: parseMysqlUrl(database.url, 'test database') },
        dispose: () => database.drop(),
      };
    },
  },
];

describe.each(STORAGES)('the seed run $title', ({ enabled, open }) => {
  let distributor: DistributorServer | undefined;
  let services: RunningService[] = [];
  let clients: Array<{ close(): void }> = [];
  let dispose: (() => Promise<void>) | undefined;

  afterEach(async () => {
    for (const client of clients) client.close();
    await Promise.all(services.map((service) => service.stop()));
    await distributor?.stop(100);
    await dispose?.();
    clients = [];
    services = [];
  });

  it.runIf(enabled)('gives the book’s answers on fresh stores', async () => {
    const opened = await open();
    dispose = opened.dispose;
    distributor = createDistributorServer();
    const address = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
    const config = testServiceConfig(address, opened.storage);
    const [goods, members, purchases] = await Promise.all([
      startService(goodsService, config),
      startService(membersService, config),
      startService(purchasesService, config),
    ]);
    services = [goods!, members!, purchases!];
    await vi.waitFor(() =>
      expect(
        distributor!.registry
          .snapshot()
          .nodes.map((node) => node.name)
          .sort(),
      ).toEqual(['goods', 'members', 'purchases']),
    );
    const connect = <C extends { close(): void }>(Client: new (...args: never[]) => C, port: number): C => {
      const client = new (Client as unknown as new (address: string, creds: unknown) => C)(
        `127.0.0.1:${port}`,
        credentials.createInsecure(),
      );
      clients.push(client);
      return client;
    };
    const membersClient = connect(MembersServiceClient, members!.port);
    const goodsClient = connect(GoodsServiceClient, goods!.port);
    const purchasesClient = connect(PurchasesServiceClient, purchases!.port);
    const account = { username: 'test_account', password: '1234' };

    await expect(
      call(membersClient, membersClient.deleteMember, { username: 'test_account' }),
    ).resolves.toEqual({});
    await expect(call(membersClient, membersClient.createMember, account)).resolves.toEqual({ userid: 1 });
    await expect(call(membersClient, membersClient.signIn, account)).resolves.toEqual({ userid: 1 });

    const item = { name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
    await expect(call(goodsClient, goodsClient.createGoods, item)).resolves.toEqual({ id: 1 });
    await expect(call(goodsClient, goodsClient.listGoods, {})).resolves.toEqual({
      results: [{ id: 1, ...item }],
      nextPageToken: '',
    });
    await expect(call(goodsClient, goodsClient.deleteGoods, { id: 1 })).resolves.toEqual({});

    const before = Date.now();
    await expect(
      call(purchasesClient, purchasesClient.createPurchase, { userid: 1, goodsid: 1 }),
    ).resolves.toEqual({
      id: 1,
    });
    const { results } = await call(purchasesClient, purchasesClient.listPurchases, { userid: 1 });
    expect(results).toEqual([{ id: 1, goodsid: 1, date: expect.any(Date) }]);
    expect(results[0]!.date!.getTime()).toBeGreaterThanOrEqual(before);
    expect(results[0]!.date!.getTime()).toBeLessThanOrEqual(Date.now());
  });
});
