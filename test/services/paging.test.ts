import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  GoodsServiceClient,
  type ListGoodsRequest,
  type ListGoodsResponse,
  type ListPurchasesRequest,
  type ListPurchasesResponse,
  PurchasesServiceClient,
} from '../../src/gen/services.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PAGE_TEXT_BYTES } from '../../src/services/common/paging.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import type { GoodsStore } from '../../src/services/goods/goods-store.js';
import { purchasesService } from '../../src/services/purchases/purchases-service.js';
import type { PurchasesStore } from '../../src/services/purchases/purchases-store.js';
import { backendsOf, type OpenedStore } from './support/backends.js';
import { call, startTestServer, type TestServer } from './support/test-server.js';

// The list methods' paging contract (AIP-158, proto/services.proto), on both stores.

const badToken = (details = 'Invalid Parameters: page_token is not a token of this list') => ({
  code: status.INVALID_ARGUMENT,
  details,
});

/** `count` rows of goods in one statement (fast on both stores), named "goods <n>" from `from`. */
function goodsRows(count: number, from = 1, description = 'd'): string {
  const values = Array.from(
    { length: count },
    (_, index) => `('goods ${from + index}', 'c', 1, '${description}')`,
  );
  return `INSERT INTO goods (name, category, price, description) VALUES ${values.join(', ')}`;
}

describe.each(backendsOf(goodsService))('ListGoods pages $title', (backend) => {
  describe.runIf(!backend.skipReason)('', () => {
    let opened: OpenedStore<GoodsStore>;
    let service: TestServer<GoodsServiceClient>;
    const list = (request: ListGoodsRequest = {}): Promise<ListGoodsResponse> =>
      call(service.client, service.client.listGoods, request);
    /** Follows next_page_token to the end; returns every page. */
    const allPages = async (pageSize?: number): Promise<ListGoodsResponse[]> => {
      const pages = [await list(pageSize === undefined ? {} : { pageSize })];
      while (pages.at(-1)!.nextPageToken !== '') {
        pages.push(await list({ pageSize, pageToken: pages.at(-1)!.nextPageToken }));
      }
      return pages;
    };

    beforeEach(async () => {
      opened = await backend.open();
      service = await startTestServer(
        createServiceServer(goodsService, { store: opened.store }),
        GoodsServiceClient,
      );
    });
    afterEach(async () => {
      await service?.close();
      await opened?.dispose();
    });

    it('without page_size, a page of the default size, then the rest; every item once, in order', async () => {
      await opened.rawExec(goodsRows(DEFAULT_PAGE_SIZE + 1));
      const pages = await allPages();
      expect(pages.map((page) => page.results.length)).toEqual([DEFAULT_PAGE_SIZE, 1]);
      expect(pages[0]!.nextPageToken).not.toBe('');
      expect(pages[1]!.nextPageToken).toBe('');
      const ids = pages.flatMap((page) => page.results.map((goods) => goods.id));
      expect(ids).toEqual(Array.from({ length: DEFAULT_PAGE_SIZE + 1 }, (_, index) => index + 1));
    });

    it('takes page_size as asked, above the maximum as the maximum', async () => {
      await opened.rawExec(goodsRows(MAX_PAGE_SIZE + 1));
      const first = await list({ pageSize: 7 });
      const second = await list({ pageSize: 7, pageToken: first.nextPageToken });
      expect([...first.results, ...second.results].map((goods) => goods.id)).toEqual(
        Array.from({ length: 14 }, (_, index) => index + 1),
      );
      const capped = await list({ pageSize: MAX_PAGE_SIZE + 500 });
      expect(capped.results).toHaveLength(MAX_PAGE_SIZE);
      expect(capped.nextPageToken).not.toBe('');
    });

    it('a list that fills its last page exactly ends there, without an empty page after it', async () => {
      await opened.rawExec(goodsRows(6));
      const pages = await allPages(3);
      expect(pages.map((page) => page.results.length)).toEqual([3, 3]);
    });

    it('a short list is one page with no token, as the whole list was', async () => {
      await opened.rawExec(goodsRows(3));
      const page = await list();
      expect(page.results.map((goods) => goods.name)).toEqual(['goods 1', 'goods 2', 'goods 3']);
      expect(page.nextPageToken).toBe('');
    });

    it('is stable under inserts and deletes while a caller pages: nothing twice, nothing skipped', async () => {
      await opened.rawExec(goodsRows(10));
      const first = await list({ pageSize: 4 });
      // Changes behind the caller's back: an item already seen and one not yet seen go, one comes.
      await opened.rawExec('DELETE FROM goods WHERE id IN (2, 6)');
      await opened.rawExec(goodsRows(1, 11));
      const seen = first.results.map((goods) => goods.id);
      let token = first.nextPageToken;
      while (token !== '') {
        const page = await list({ pageSize: 4, pageToken: token });
        seen.push(...page.results.map((goods) => goods.id));
        token = page.nextPageToken;
      }
      expect(seen).toEqual([1, 2, 3, 4, 5, 7, 8, 9, 10, 11]);
    });

    it('a page after the first that has become empty is an empty page, not "no data"', async () => {
      await opened.rawExec(goodsRows(4));
      const first = await list({ pageSize: 2 });
      await opened.rawExec('DELETE FROM goods WHERE id > 2');
      await expect(list({ pageSize: 2, pageToken: first.nextPageToken })).resolves.toEqual({
        results: [],
        nextPageToken: '',
      });
    });

    it('an empty catalogue is still "no data" on the first page', async () => {
      await expect(list({ pageSize: 5 })).rejects.toMatchObject({
        code: status.NOT_FOUND,
        details: 'no data',
      });
    });

    it('cuts a page of large items at about 1 MiB of text, far below the 4 MiB message limit', async () => {
      // 40 items of 60 KiB (2.4 MB): one answer would have held them all before paging.
      const description = 'x'.repeat(60 * 1024);
      for (let index = 0; index < 4; index++)
        await opened.rawExec(goodsRows(10, index * 10 + 1, description));
      const pages = await allPages();
      for (const page of pages) {
        const text = page.results.reduce((sum, goods) => sum + goods.description.length, 0);
        expect(text).toBeLessThan(PAGE_TEXT_BYTES + 64 * 1024);
      }
      expect(pages.length).toBeGreaterThanOrEqual(3);
      const ids = pages.flatMap((page) => page.results.map((goods) => goods.id));
      expect(ids).toEqual(Array.from({ length: 40 }, (_, index) => index + 1));
      expect(pages.every((page) => page.results.every((goods) => goods.description === description))).toBe(
        true,
      );
    });

    it('short and long descriptions mixed keep their text and their order', async () => {
      const long = 'y'.repeat(5_000);
      await opened.rawExec(goodsRows(2, 1, 'short'));
      await opened.rawExec(goodsRows(2, 3, long));
      await opened.rawExec(goodsRows(1, 5, 'short'));
      const page = await list();
      expect(page.results.map((goods) => [goods.id, goods.description.length])).toEqual([
        [1, 5],
        [2, 5],
        [3, 5_000],
        [4, 5_000],
        [5, 5],
      ]);
    });

    it('a negative page_size is refused', async () => {
      await opened.rawExec(goodsRows(1));
      await expect(list({ pageSize: -1 })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'Invalid Parameters: page_size must not be negative',
      });
    });

    it.each([
      ['not base64 of a token', 'not a token'],
      ['a token of another list', Buffer.from('purchases/1/5').toString('base64url')],
      ['a token with an id of 0', Buffer.from('goods/0').toString('base64url')],
      ['a token beyond int32', Buffer.from('goods/2147483648').toString('base64url')],
      ['a token in another spelling', `${Buffer.from('goods/3').toString('base64url')}=`],
    ])('%s is INVALID_ARGUMENT', async (_label, pageToken) => {
      await opened.rawExec(goodsRows(3));
      await expect(list({ pageToken })).rejects.toMatchObject(badToken());
    });
  });
});

describe.each(backendsOf(purchasesService))('ListPurchases pages $title', (backend) => {
  describe.runIf(!backend.skipReason)('', () => {
    let opened: OpenedStore<PurchasesStore>;
    let service: TestServer<PurchasesServiceClient>;
    const list = (request: ListPurchasesRequest): Promise<ListPurchasesResponse> =>
      call(service.client, service.client.listPurchases, request);
    /** `count` purchases of one user in one statement. */
    const purchases = (userid: number, count: number): string => {
      const date = backend.name === 'mysql' ? '2020-11-04 15:31:47.000' : '2020-11-04T15:31:47.000Z';
      const values = Array.from({ length: count }, (_, index) => `(${userid}, ${index + 1}, '${date}')`);
      return `INSERT INTO purchases (userid, goodsid, date) VALUES ${values.join(', ')}`;
    };

    beforeEach(async () => {
      opened = await backend.open();
      service = await startTestServer(
        createServiceServer(purchasesService, { store: opened.store }),
        PurchasesServiceClient,
      );
    });
    afterEach(async () => {
      await service?.close();
      await opened?.dispose();
    });

    it("pages through one user's purchases only, each once, in id order", async () => {
      await opened.rawExec(purchases(1, 5));
      await opened.rawExec(purchases(2, 3));
      await opened.rawExec(purchases(1, 2));
      const seen: number[] = [];
      let token = '';
      do {
        const page = await list({ userid: 1, pageSize: 3, pageToken: token });
        expect(page.results.length).toBeLessThanOrEqual(3);
        seen.push(...page.results.map((purchase) => purchase.id));
        token = page.nextPageToken;
      } while (token !== '');
      expect(seen).toEqual([1, 2, 3, 4, 5, 9, 10]);
    });

    it('without page_size: the default page size, then the rest', async () => {
      await opened.rawExec(purchases(4, DEFAULT_PAGE_SIZE + 2));
      const first = await list({ userid: 4 });
      expect(first.results).toHaveLength(DEFAULT_PAGE_SIZE);
      const second = await list({ userid: 4, pageToken: first.nextPageToken });
      expect(second.results.map((purchase) => purchase.id)).toEqual([
        DEFAULT_PAGE_SIZE + 1,
        DEFAULT_PAGE_SIZE + 2,
      ]);
      expect(second.nextPageToken).toBe('');
      expect(second.results[0]?.date?.toISOString()).toBe('2020-11-04T15:31:47.000Z');
    });

    it("a token is the user's own: another user's token is INVALID_ARGUMENT", async () => {
      await opened.rawExec(purchases(1, 3));
      await opened.rawExec(purchases(2, 3));
      const mine = await list({ userid: 1, pageSize: 1 });
      await expect(list({ userid: 2, pageToken: mine.nextPageToken })).rejects.toMatchObject(badToken());
      await expect(
        list({ userid: 1, pageToken: Buffer.from('goods/1').toString('base64url') }),
      ).rejects.toMatchObject(badToken());
    });

    it('a negative page_size is refused; no purchases is still "no data"', async () => {
      await expect(list({ userid: 1, pageSize: 10 })).rejects.toMatchObject({
        code: status.NOT_FOUND,
        details: 'no data',
      });
      await opened.rawExec(purchases(1, 1));
      await expect(list({ userid: 1, pageSize: -3 })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'Invalid Parameters: page_size must not be negative',
      });
    });
  });
});
