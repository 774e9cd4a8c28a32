import type { TraceSpan } from '../../common/trace-span.js';
import type { Once, Outcome } from '../common/idempotency.js';
import type { PageQuery, StoredPage } from '../common/paging.js';
import type { ServiceStore } from '../common/service-store.js';

/** A purchase to record, already validated. */
export interface NewPurchase {
  readonly userid: number;
  readonly goodsid: number;
  /**
   * When it was made, stored to the millisecond as an instant (UTC); undefined: now, by the store's
   * clock (MySQL's, so that instances on hosts whose clocks disagree date their purchases alike; on
   * SQLite, one host's file, this host's).
   */
  readonly date: Date | undefined;
}

/** A purchase as listed. */
export interface PurchaseRecord {
  readonly id: number;
  readonly goodsid: number;
  readonly date: Date;
}

/**
 * The purchase history's storage. As in the book, user and goods ids are not checked against the
 * other services' tables: each service touches only its own. Implementations throw only
 * ServiceErrors (UNAVAILABLE when the database cannot be used, INTERNAL otherwise).
 */
export interface PurchasesStore extends ServiceStore {
  /** Records a purchase; resolves with its id (1 for the first of a fresh store). */
  createPurchase(purchase: NewPurchase, parent: TraceSpan | undefined): Promise<number>;
  /** One page of a user's purchases in id order: those after `afterId`, at most `size`. */
  listPurchases(
    userid: number,
    query: PageQuery,
    parent: TraceSpan | undefined,
  ): Promise<StoredPage<PurchaseRecord>>;
  /** `createPurchase` at most once per idempotency key, in one transaction with its key (idempotency.ts). */
  createPurchaseOnce(
    purchase: NewPurchase,
    once: Once<number>,
    parent: TraceSpan | undefined,
  ): Promise<Outcome>;
}
