import type { Logger } from '../../common/logger.js';
import { unaryHandler } from '../../common/unary-handler.js';
import {
  CreatePurchaseRequest,
  CreatePurchaseResponse,
  type PurchasesServiceServer,
} from '../../gen/services.js';
import { answerOf, claimOf, once, replay, type WriteAnswer } from '../common/idempotency.js';
import { noData } from '../common/no-data.js';
import { requireId } from '../common/request-fields.js';
import type { PurchasesStore } from './purchases-store.js';

/** Options of {@link createPurchasesHandlers}. */
export interface PurchasesHandlersOptions {
  /** The clock that dates purchases (default: the system clock); tests fix it. */
  now?: () => Date;
}

const PURCHASED: WriteAnswer<number, CreatePurchaseResponse> = {
  responseType: CreatePurchaseResponse,
  answer: (id) => ({ id }),
};

/**
 * The PurchasesService methods over a store. A purchase is dated by the service when it is recorded;
 * as in the book, the user and the goods are not checked. A purchase that comes with
 * `idempotency-key` metadata is recorded at most once per key (see idempotency.ts).
 */
export function createPurchasesHandlers(
  store: PurchasesStore,
  log: Logger,
  options: PurchasesHandlersOptions = {},
): PurchasesServiceServer {
  const now = options.now ?? (() => new Date());
  return {
    createPurchase: unaryHandler(log, async (request, call) => {
      const userid = requireId(request.userid, 'userid');
      const goodsid = requireId(request.goodsid, 'goodsid');
      const purchase = { userid, goodsid, date: now() };
      const claim = claimOf(call, 'CreatePurchase', CreatePurchaseRequest.encode(request).finish());
      if (!claim) return answerOf(PURCHASED, await store.createPurchase(purchase));
      return replay(await store.createPurchaseOnce(purchase, once(claim, PURCHASED)), CreatePurchaseResponse);
    }),
    listPurchases: unaryHandler(log, async (request) => {
      const results = await store.listPurchases(requireId(request.userid, 'userid'));
      if (results.length === 0) throw noData();
      return { results };
    }),
  };
}
