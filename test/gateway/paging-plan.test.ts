import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import {
  encodeDescriptorSet,
  filesForServices,
  loadShopDescriptorSet,
} from '../../src/common/descriptors.js';
import { ENVELOPE_ROOM } from '../../src/gateway/envelope.js';
import { compilePagingPlan } from '../../src/gateway/paging-plan.js';
import { ListGoodsResponse, ListPurchasesRequest } from '../../src/gen/services.js';

const shop = createFileRegistry(
  fromBinary(
    FileDescriptorSetSchema,
    encodeDescriptorSet(
      filesForServices(loadShopDescriptorSet(), [
        'shop.v1.GoodsService',
        'shop.v1.MembersService',
        'shop.v1.PurchasesService',
      ]),
    ),
  ),
);
const method = (service: string, name: string) =>
  shop.getService(`shop.v1.${service}`)!.methods.find((candidate) => candidate.name === name)!;

describe('compilePagingPlan', () => {
  it('finds the AIP-158 fields of the list methods, and nothing in the others', () => {
    expect(compilePagingPlan(method('GoodsService', 'ListGoods'), ['results'])).toBeDefined();
    expect(compilePagingPlan(method('PurchasesService', 'ListPurchases'), ['results'])).toBeDefined();
    expect(compilePagingPlan(method('MembersService', 'SignIn'), ['userid'])).toBeUndefined();
    expect(compilePagingPlan(method('GoodsService', 'CreateGoods'), [])).toBeUndefined();
    // A route that does not show exactly the list is answered as it is, one call, unpaged.
    expect(compilePagingPlan(method('GoodsService', 'ListGoods'), [])).toBeUndefined();
    expect(compilePagingPlan(method('GoodsService', 'ListGoods'), ['next_page_token'])).toBeUndefined();
  });

  it('tells a request for one page by page_size or page_token, whatever else it holds', () => {
    const plan = compilePagingPlan(method('PurchasesService', 'ListPurchases'), ['results'])!;
    const encode = (request: ListPurchasesRequest) =>
      Buffer.from(ListPurchasesRequest.encode(request).finish());
    expect(plan.asksForOnePage(encode({ userid: 7 }))).toBe(false);
    expect(plan.asksForOnePage(encode({ userid: 7, pageSize: 0 }))).toBe(true);
    expect(plan.asksForOnePage(encode({ userid: 7, pageToken: '' }))).toBe(true);
    expect(plan.asksForOnePage(encode({ pageSize: 5 }))).toBe(true);
  });

  it('asks for the next page with the same request and the token', () => {
    const plan = compilePagingPlan(method('PurchasesService', 'ListPurchases'), ['results'])!;
    const first = Buffer.from(ListPurchasesRequest.encode({ userid: 7 }).finish());
    const next = plan.withToken(first, Buffer.from('x'.repeat(200)));
    expect(ListPurchasesRequest.decode(next)).toEqual({ userid: 7, pageToken: 'x'.repeat(200) });
  });

  it('renders a page as the route does, and finds where its elements are and its token', () => {
    const plan = compilePagingPlan(method('GoodsService', 'ListGoods'), ['results'])!;
    const goods = { id: 1, name: 'n', category: 'c', price: 2, description: 'd' };
    const bytes = Buffer.from(
      ListGoodsResponse.encode({ results: [goods, { ...goods, id: 2 }], nextPageToken: 'abc' }).finish(),
    );
    const page = plan.renderPage(bytes);
    const item = (id: number) => `{"id":${id},"name":"n","category":"c","price":2,"description":"d"}`;
    expect(page.rendered.subarray(ENVELOPE_ROOM).toString()).toBe(`,"results":[${item(1)},${item(2)}]}`);
    expect(page.rendered.subarray(page.itemsStart, page.rendered.length - 2).toString()).toBe(
      `${item(1)},${item(2)}`,
    );
    expect(page.nextPageToken.toString()).toBe('abc');
    expect(plan.renderOnePage(bytes).subarray(ENVELOPE_ROOM).toString()).toBe(
      `,"results":[${item(1)},${item(2)}],"next_page_token":"abc"}`,
    );
    const last = plan.renderPage(
      Buffer.from(ListGoodsResponse.encode({ results: [], nextPageToken: '' }).finish()),
    );
    expect(last.rendered.subarray(last.itemsStart, last.rendered.length - 2).length).toBe(0);
    expect(last.nextPageToken.length).toBe(0);
  });
});
