import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type CreatePurchaseRequest,
  type ListPurchasesRequest,
  PurchasesServiceClient,
} from '../../src/gen/services.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { purchasesService } from '../../src/services/purchases/purchases-service.js';
import type { PurchasesStore } from '../../src/services/purchases/purchases-store.js';
import { backendsOf, type OpenedStore } from './support/backends.js';
import { callRaw, wire } from './support/raw-call.js';
import { call, startTestServer, type TestServer } from './support/test-server.js';

const INVALID = { code: status.INVALID_ARGUMENT, details: 'Invalid Parameters' };
const NO_DATA = { code: status.NOT_FOUND, details: 'no data' };

describe.each(backendsOf(purchasesService))('PurchasesService $title', (backend) => {
  describe.runIf(!backend.skipReason)('', () => {
    let opened: OpenedStore<PurchasesStore> | undefined;
    let service: TestServer<PurchasesServiceClient> | undefined;
    let clock = new Date('2020-11-04T15:31:47.123Z');

    async function start(): Promise<void> {
      opened = await backend.open();
      service = await startTestServer(
        createServiceServer(purchasesService, { store: opened.store, handlerOptions: { now: () => clock } }),
        PurchasesServiceClient,
      );
    }
    const create = (request: CreatePurchaseRequest) =>
      call(service!.client, service!.client.createPurchase, request);
    const list = (request: ListPurchasesRequest) =>
      call(service!.client, service!.client.listPurchases, request);

    afterEach(async () => {
      await service?.close();
      await opened?.dispose();
      service = undefined;
      opened = undefined;
    });

    it('answers the book: create, then list id, goodsid and the exact UTC instant', async () => {
      await start();
      clock = new Date('2020-11-04T15:31:47.000Z');
      await expect(create({ userid: 1, goodsid: 1 })).resolves.toEqual({ id: 1 });
      const { results } = await list({ userid: 1 });
      expect(results).toEqual([{ id: 1, goodsid: 1, date: new Date('2020-11-04T15:31:47.000Z') }]);
      expect(results[0]?.date?.toISOString()).toBe('2020-11-04T15:31:47.000Z');
    });

    it('stores and reads the exact UTC instant, whatever the time zone of the process', async () => {
      await start();
      const zone = process.env.TZ;
      process.env.TZ = 'Asia/Seoul';
      try {
        expect(new Date('2021-03-04T05:06:07.089Z').getHours()).toBe(14); // the zone really changed
        clock = new Date('2021-03-04T05:06:07.089Z');
        await create({ userid: 7, goodsid: 3 });
        const [row] = await opened!.rawRows(
          backend.name === 'mysql'
            ? 'SELECT CAST(date AS CHAR) AS date FROM purchases'
            : 'SELECT date FROM purchases',
        );
        expect(row?.date).toBe(
          backend.name === 'mysql' ? '2021-03-04 05:06:07.089' : '2021-03-04T05:06:07.089Z',
        );
        const { results } = await list({ userid: 7 });
        expect(results[0]?.date?.toISOString()).toBe('2021-03-04T05:06:07.089Z');
      } finally {
        if (zone === undefined) delete process.env.TZ;
        else process.env.TZ = zone;
      }
    });

    it("dates a purchase by the store: MySQL's clock, whatever the clock of the host of the instance", async () => {
      opened = await backend.open();
      service = await startTestServer(
        createServiceServer(purchasesService, { store: opened.store }),
        PurchasesServiceClient,
      );
      const before = Date.now();
      // An instance on a host whose clock runs a day ahead: on MySQL, shared by the instances of
      // every host, the database's clock dates it; SQLite is one host's file, dated by its clock.
      vi.useFakeTimers({ toFake: ['Date'], now: before + 86_400_000 });
      try {
        await create({ userid: 1, goodsid: 1 });
      } finally {
        vi.useRealTimers();
      }
      const { results } = await list({ userid: 1 });
      const dated = results[0]!.date!.getTime();
      if (backend.name === 'mysql') {
        expect(dated).toBeGreaterThanOrEqual(before - 1_000);
        expect(dated).toBeLessThanOrEqual(Date.now() + 1_000);
      } else {
        expect(dated).toBeGreaterThanOrEqual(before + 86_400_000);
      }
    });

    it("lists only the user's purchases, in id order", async () => {
      await start();
      await create({ userid: 1, goodsid: 10 });
      await create({ userid: 2, goodsid: 20 });
      await create({ userid: 1, goodsid: 30 });
      const { results } = await list({ userid: 1 });
      expect(results.map(({ id, goodsid }) => [id, goodsid])).toEqual([
        [1, 10],
        [3, 30],
      ]);
    });

    it('a user with no purchases is the book\'s "no data"', async () => {
      await start();
      await expect(list({ userid: 1 })).rejects.toMatchObject(NO_DATA);
      await create({ userid: 2, goodsid: 1 });
      await expect(list({ userid: 1 })).rejects.toMatchObject(NO_DATA);
    });

    it('does not check that the user or the goods exist, as in the book', async () => {
      await start();
      await expect(create({ userid: 2 ** 31 - 1, goodsid: 999_999 })).resolves.toEqual({ id: 1 });
    });

    it.each([
      ['without a userid', { goodsid: 1 }],
      ['without a goodsid', { userid: 1 }],
      ['with nothing', {}],
    ])('CreatePurchase %s is "Invalid Parameters"', async (_label, request) => {
      await start();
      await expect(create(request)).rejects.toMatchObject(INVALID);
    });

    it.each([
      ['userid', 0],
      ['userid', -5],
      ['goodsid', 0],
      ['goodsid', -1],
    ] as const)('CreatePurchase with %s %i says it must be positive', async (field, value) => {
      await start();
      await expect(create({ userid: 1, goodsid: 1, [field]: value })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: `Invalid Parameters: ${field} must be a positive number`,
      });
    });

    it('ListPurchases without a userid, or with 0, is refused', async () => {
      await start();
      await expect(list({})).rejects.toMatchObject(INVALID);
      await expect(list({ userid: 0 })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'Invalid Parameters: userid must be a positive number',
      });
    });

    it('200 concurrent purchases all land, with distinct ids', async () => {
      await start();
      const created = await Promise.all(
        Array.from({ length: 200 }, (_, index) => create({ userid: 1, goodsid: index + 1 })),
      );
      expect(new Set(created.map(({ id }) => id)).size).toBe(200);
      expect((await list({ userid: 1 })).results).toHaveLength(200);
    });
  });
});

describe('PurchasesService given fields of the wrong wire type', () => {
  it('ListPurchases with a userid sent as text is "Invalid Parameters"', async () => {
    const opened = await backendsOf(purchasesService)[0]!.open();
    const service = await startTestServer(
      createServiceServer(purchasesService, { store: opened.store }),
      PurchasesServiceClient,
    );
    try {
      expect(
        await callRaw(service.address, '/shop.v1.PurchasesService/ListPurchases', wire.text(1, '1')),
      ).toEqual(INVALID);
    } finally {
      await service.close();
      await opened.dispose();
    }
  });
});
