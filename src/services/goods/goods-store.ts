import type { TraceSpan } from '../../common/trace-span.js';
import type { Once, Outcome } from '../common/idempotency.js';
import type { PageQuery, StoredPage } from '../common/paging.js';
import type { ServiceStore } from '../common/service-store.js';

/** An item to add to the catalogue, already validated. */
export interface NewGoods {
  readonly name: string;
  readonly category: string;
  readonly price: number;
  readonly description: string;
}

/** An item of the catalogue as stored. */
export interface GoodsRecord extends NewGoods {
  readonly id: number;
}

/** Which page of the catalogue to read. */
export interface GoodsPageQuery extends PageQuery {
  readonly maxTextBytes: number;
}

/** The bytes of text an item's row holds, as the page budget counts them. */
export function goodsTextBytes(goods: NewGoods): number {
  return (
    Buffer.byteLength(goods.name, 'utf8') +
    Buffer.byteLength(goods.category, 'utf8') +
    Buffer.byteLength(goods.description, 'utf8')
  );
}

/**
 * The goods catalogue's storage. Implementations throw only ServiceErrors (UNAVAILABLE when the
 * database cannot be used, INTERNAL otherwise), and keep values exactly as given.
 */
export interface GoodsStore extends ServiceStore {
  /** Adds an item; resolves with its id (1 for the first item of a fresh store). */
  createGoods(goods: NewGoods, parent: TraceSpan | undefined): Promise<number>;
  /**
   * One page of the catalogue in id order: the items after `afterId`, at most `size` of them, and no
   * more once the text of those taken (name, category and description, in bytes of UTF-8) reaches
   * `maxTextBytes`; the item that crosses it is kept. Reads no more than the page (and one row to
   * tell whether more follow) into memory.
   */
  listGoods(query: GoodsPageQuery, parent: TraceSpan | undefined): Promise<StoredPage<GoodsRecord>>;
  /** Deletes an item; an id that does not exist is not an error. */
  deleteGoods(id: number, parent: TraceSpan | undefined): Promise<void>;
  /** `createGoods` at most once per idempotency key, in one transaction with its key (idempotency.ts). */
  createGoodsOnce(goods: NewGoods, once: Once<number>, parent: TraceSpan | undefined): Promise<Outcome>;
  /** `deleteGoods` at most once per idempotency key, in one transaction with its key. */
  deleteGoodsOnce(id: number, once: Once<void>, parent: TraceSpan | undefined): Promise<Outcome>;
}
