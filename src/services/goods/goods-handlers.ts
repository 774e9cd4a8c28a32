import type { Logger } from '../../common/logger.js';
import { traceParentOf } from '../../common/request-context.js';
import { unaryHandler } from '../../common/unary-handler.js';
import {
  CreateGoodsRequest,
  CreateGoodsResponse,
  DeleteGoodsRequest,
  DeleteGoodsResponse,
  type GoodsServiceServer,
  type ListGoodsResponse,
} from '../../gen/services.js';
import { FreshReadCoalescer } from '../common/fresh-read-coalescer.js';
import { answerOf, claimOf, once, replay, type WriteAnswer } from '../common/idempotency.js';
import { noData } from '../common/no-data.js';
import { isFirstPage, nextPageToken, PAGE_TEXT_BYTES, pageQuery } from '../common/paging.js';
import { requireId, requireNonNegative, requireText } from '../common/request-fields.js';
import type { GoodsStore } from './goods-store.js';

/** Bounds on an item, checked before anything is stored. */
export const GOODS_LIMITS = {
  nameCharacters: 128,
  categoryCharacters: 128,
  descriptionBytes: 64 * 1024,
} as const;

const CREATED: WriteAnswer<number, CreateGoodsResponse> = {
  responseType: CreateGoodsResponse,
  answer: (id) => ({ id }),
};
const DELETED: WriteAnswer<void, DeleteGoodsResponse> = {
  responseType: DeleteGoodsResponse,
  answer: () => ({}),
};

/** What the catalogue's page tokens name (see paging.ts). */
const GOODS_PAGE_SCOPE = 'goods';

/**
 * The GoodsService methods over a store. Missing fields are the book's "Invalid Parameters"; an
 * empty description is a value (only its absence is an error); price 0 is a price. ListGoods answers
 * one page (AIP-158), cut by count and by bytes of text; an empty first page is the book's "no data".
 * A write that comes with `idempotency-key` metadata is made at most once per key (see idempotency.ts).
 * Concurrent ListGoods calls for the same page share one read that started after each of them
 * arrived (FreshReadCoalescer), and so one answer, encoded once.
 */
export function createGoodsHandlers(store: GoodsStore, log: Logger): GoodsServiceServer {
  const pages = new FreshReadCoalescer<string, ListGoodsResponse>();
  return {
    createGoods: unaryHandler(log, async (request, call) => {
      const name = requireText(request.name, 'name', { maxCharacters: GOODS_LIMITS.nameCharacters });
      const category = requireText(request.category, 'category', {
        maxCharacters: GOODS_LIMITS.categoryCharacters,
      });
      const price = requireNonNegative(request.price, 'price');
      const description = requireText(request.description, 'description', {
        maxBytes: GOODS_LIMITS.descriptionBytes,
        allowEmpty: true,
      });
      const goods = { name, category, price, description };
      const parent = traceParentOf(call.metadata);
      const claim = claimOf(call, 'CreateGoods', CreateGoodsRequest.encode(request).finish());
      if (!claim) return answerOf(CREATED, await store.createGoods(goods, parent));
      return replay(await store.createGoodsOnce(goods, once(claim, CREATED), parent), CreateGoodsResponse);
    }),
    listGoods: unaryHandler(log, async (request, call) => {
      const query = pageQuery(request, GOODS_PAGE_SCOPE);
      // A shared read is traced under the first call that asked for it.
      const parent = traceParentOf(call.metadata);
      return pages.read(`${query.afterId} ${query.size}`, async () => {
        const page = await store.listGoods({ ...query, maxTextBytes: PAGE_TEXT_BYTES }, parent);
        if (page.rows.length === 0 && isFirstPage(query)) throw noData();
        return { results: page.rows, nextPageToken: nextPageToken(page, GOODS_PAGE_SCOPE) };
      });
    }),
    deleteGoods: unaryHandler(log, async (request, call) => {
      const id = requireId(request.id, 'id');
      const parent = traceParentOf(call.metadata);
      const claim = claimOf(call, 'DeleteGoods', DeleteGoodsRequest.encode(request).finish());
      if (!claim) return answerOf(DELETED, await store.deleteGoods(id, parent));
      return replay(await store.deleteGoodsOnce(id, once(claim, DELETED), parent), DeleteGoodsResponse);
    }),
  };
}
