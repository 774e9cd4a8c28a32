import type { Logger } from '../../common/logger.js';
import { traceParentOf } from '../../common/request-context.js';
import { unaryHandler } from '../../common/unary-handler.js';
import {
  CreatePurchaseRequest,
  CreatePurchaseResponse,
  type PurchasesServiceServer,
} from '../../gen/services.js';
import { answerOf, claimOf, once, replay, type WriteAnswer } from '../common/idempotency.js';
import { noData } from '../common/no-data.js';
import { isFirstPage, nextPageToken, pageQuery } from '../common/paging.js';
import { requireId } from '../common/request-fields.js';
import type { PurchasesStore } from './purchases-store.js';

/** Options of {@link createPurchasesHandlers}. */
export interface PurchasesHandlersOptions {
  /**
   * The clock that dates purchases (default: the store's, see NewPurchase.date: MySQL's, or this
   * host's with SQLite); tests fix it.
   */
  now?: () => Date;
}

const PURCHASED: WriteAnswer<number, CreatePurchaseResponse> = {
  responseType: CreatePurchaseResponse,
  answer: (id) => ({ id }),
};

/**
 * The PurchasesService methods over a store. A purchase is dated by the store when it is recorded;
 * as in the book, the user and the goods are not checked. ListPurchases answers one page (AIP-158);
 * an empty first page is the book's "no data". A purchase that comes with `idempotency-key`
 * metadata is recorded at most once per key (see idempotency.ts).
 */
export function createPurchasesHandlers(
  store: PurchasesStore,
  log: Logger,
  options: PurchasesHandlersOptions = {},
): PurchasesServiceServer {
  const now = options.now ?? (() => undefined);
  return {
    createPurchase: unaryHandler(log, async (request, call) => {
      const userid = requireId(request.userid, 'userid');
      const goodsid = requireId(request.goodsid, 'goodsid');
      const purchase = { userid, goodsid, date: now() };
      const parent = traceParentOf(call.metadata);
      const claim = claimOf(call, 'CreatePurchase', CreatePurchaseRequest.encode(request).finish());
      if (!claim) return answerOf(PURCHASED, await store.createPurchase(purchase, parent));
      return replay(
        await store.createPurchaseOnce(purchase, once(claim, PURCHASED), parent),
        CreatePurchaseResponse,
      );
    }),
    listPurchases: unaryHandler(log, async (request, call) => {
      const userid = requireId(request.userid, 'userid');
      // A token names its user too: it cannot page through someone else's purchases.
      const scope = `purchases/${userid}`;
      const query = pageQuery(request, scope);
      const page = await store.listPurchases(userid, query, traceParentOf(call.metadata));
      if (page.rows.length === 0 && isFirstPage(query)) throw noData();
      return { results: page.rows, nextPageToken: nextPageToken(page, scope) };
    }),
  };
}
