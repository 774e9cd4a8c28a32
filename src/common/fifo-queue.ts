/**
 * A first-in first-out queue whose `shift` is O(1): an array's own `shift` moves every element, so
 * a queue thousands long (updates waiting for a stream, calls waiting for a slot) would cost
 * O(n²) to drain. Taken elements are let go once they are most of the array.
 */
export class FifoQueue<Item> {
  #items: Item[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: Item): void {
    this.#items.push(item);
  }

  /** The oldest item, removed; undefined when empty. */
  shift(): Item | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head++]!;
    if (this.#head === this.#items.length || (this.#head >= 64 && this.#head * 2 >= this.#items.length)) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}
