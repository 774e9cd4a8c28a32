import type { Once, Outcome } from '../common/idempotency.js';
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

/**
 * The goods catalogue's storage. Implementations throw only ServiceErrors (UNAVAILABLE when the
 * database cannot be used, INTERNAL otherwise), and keep values exactly as given.
 */
export interface GoodsStore extends ServiceStore {
  /** Adds an item; resolves with its id (1 for the first item of a fresh store). */
  createGoods(goods: NewGoods): Promise<number>;
  /** Every item, in id order. */
  listGoods(): Promise<GoodsRecord[]>;
  /** Deletes an item; an id that does not exist is not an error. */
  deleteGoods(id: number): Promise<void>;
  /** `createGoods` at most once per idempotency key, in one transaction with its key (idempotency.ts). */
  createGoodsOnce(goods: NewGoods, once: Once<number>): Promise<Outcome>;
  /** `deleteGoods` at most once per idempotency key, in one transaction with its key. */
  deleteGoodsOnce(id: number, once: Once<void>): Promise<Outcome>;
}
