import type { Logger } from '../../common/logger.js';
import { unaryHandler } from '../../common/unary-handler.js';
import type { GoodsServiceServer } from '../../gen/services.js';
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

/** What the catalogue's page tokens name (see paging.ts). */
const GOODS_PAGE_SCOPE = 'goods';

/**
 * The GoodsService methods over a store. Missing fields are the book's "Invalid Parameters"; an
 * empty description is a value (only its absence is an error); price 0 is a price. ListGoods answers
 * one page (AIP-158), cut by count and by bytes of text; an empty first page is the book's "no data".
 */
export function createGoodsHandlers(store: GoodsStore, log: Logger): GoodsServiceServer {
  return {
    createGoods: unaryHandler(log, async (request) => {
      const name = requireText(request.name, 'name', { maxCharacters: GOODS_LIMITS.nameCharacters });
      const category = requireText(request.category, 'category', {
        maxCharacters: GOODS_LIMITS.categoryCharacters,
      });
      const price = requireNonNegative(request.price, 'price');
      const description = requireText(request.description, 'description', {
        maxBytes: GOODS_LIMITS.descriptionBytes,
        allowEmpty: true,
      });
      return { id: await store.createGoods({ name, category, price, description }) };
    }),
    listGoods: unaryHandler(log, async (request) => {
      const query = pageQuery(request, GOODS_PAGE_SCOPE);
      const page = await store.listGoods({ ...query, maxTextBytes: PAGE_TEXT_BYTES });
      if (page.rows.length === 0 && isFirstPage(query)) throw noData();
      return { results: page.rows, nextPageToken: nextPageToken(page, GOODS_PAGE_SCOPE) };
    }),
    deleteGoods: unaryHandler(log, async (request) => {
      await store.deleteGoods(requireId(request.id, 'id'));
      return {};
    }),
  };
}
