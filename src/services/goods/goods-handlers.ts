import type { Logger } from '../../common/logger.js';
import { unaryHandler } from '../../common/unary-handler.js';
import type { GoodsServiceServer } from '../../gen/services.js';
import { noData } from '../common/no-data.js';
import { requireId, requireNonNegative, requireText } from '../common/request-fields.js';
import type { GoodsStore } from './goods-store.js';

/** Bounds on an item, checked before anything is stored. */
export const GOODS_LIMITS = {
  nameCharacters: 128,
  categoryCharacters: 128,
  descriptionBytes: 64 * 1024,
} as const;

/**
 * The GoodsService methods over a store. Missing fields are the book's "Invalid Parameters"; an
 * empty description is a value (only its absence is an error); price 0 is a price.
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
    listGoods: unaryHandler(log, async () => {
      const results = await store.listGoods();
      if (results.length === 0) throw noData();
      return { results };
    }),
    deleteGoods: unaryHandler(log, async (request) => {
      await store.deleteGoods(requireId(request.id, 'id'));
      return {};
    }),
  };
}
