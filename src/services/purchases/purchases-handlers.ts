import type { Logger } from '../../common/logger.js';
import { unaryHandler } from '../../common/unary-handler.js';
import type { PurchasesServiceServer } from '../../gen/services.js';
import { noData } from '../common/no-data.js';
import { requireId } from '../common/request-fields.js';
import type { PurchasesStore } from './purchases-store.js';

/** Options of {@link createPurchasesHandlers}. */
export interface PurchasesHandlersOptions {
  /** The clock that dates purchases (default: the system clock); tests fix it. */
  now?: () => Date;
}

/**
 * The PurchasesService methods over a store. A purchase is dated by the service when it is recorded;
 * as in the book, the user and the goods are not checked.
 */
export function createPurchasesHandlers(
  store: PurchasesStore,
  log: Logger,
  options: PurchasesHandlersOptions = {},
): PurchasesServiceServer {
  const now = options.now ?? (() => new Date());
  return {
    createPurchase: unaryHandler(log, async (request) => {
      const userid = requireId(request.userid, 'userid');
      const goodsid = requireId(request.goodsid, 'goodsid');
      return { id: await store.createPurchase({ userid, goodsid, date: now() }) };
    }),
    listPurchases: unaryHandler(log, async (request) => {
      const results = await store.listPurchases(requireId(request.userid, 'userid'));
      if (results.length === 0) throw noData();
      return { results };
    }),
  };
}
