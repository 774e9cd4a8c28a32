/** The name that holds a REST route, and the listed nodes of that name that declare it. */
interface RouteHolder {
  readonly name: string;
  /** Node ids, in the order they joined: the first is the one a refusal names. */
  readonly nodes: Set<string>;
}

/**
 * Which name serves each REST route key ("METHOD shape"), kept as nodes join and leave, so that a
 * joining node's routes are checked in the time of its own routes, not of the whole list (a scan of
 * every entry per join made registering N nodes cost N², the largest part of the distributor's work
 * at 5,000 nodes).
 */
export class RouteOwners {
  readonly #holders = new Map<string, RouteHolder>();

  /** The first route of `keys` held by another name, with a node of that name; undefined if none. */
  conflict(name: string, keys: readonly string[]): { key: string; holder: string } | undefined {
    for (const key of keys) {
      const holder = this.#holders.get(key);
      if (holder && holder.name !== name) {
        return { key, holder: holder.nodes.values().next().value as string };
      }
    }
    return undefined;
  }

  /** Records that node `id` of `name` declares `keys` (checked first with `conflict`). */
  add(name: string, id: string, keys: readonly string[]): void {
    for (const key of keys) {
      let holder = this.#holders.get(key);
      if (!holder) {
        holder = { name, nodes: new Set() };
        this.#holders.set(key, holder);
      }
      holder.nodes.add(id);
    }
  }

  /** Forgets node `id`'s routes; a route no node declares any more is free for any name. */
  remove(id: string, keys: readonly string[]): void {
    for (const key of keys) {
      const holder = this.#holders.get(key);
      if (!holder) continue;
      holder.nodes.delete(id);
      if (holder.nodes.size === 0) this.#holders.delete(key);
    }
  }
}
