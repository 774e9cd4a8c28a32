import { type PathTemplate, parsePathTemplate, templatesOverlap } from '../common/path-template.js';

/** The name that holds a REST route, and the listed nodes of that name that declare it. */
interface RouteHolder {
  readonly name: string;
  /** The route's HTTP method and template, to tell whether a new route of another name overlaps it. */
  readonly method: string;
  readonly template: PathTemplate;
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
  /** The held routes by HTTP method: only a route of the same method can take a new route's paths. */
  readonly #byMethod = new Map<string, Map<string, RouteHolder>>();
  /** How many routes each name holds. */
  readonly #heldByName = new Map<string, number>();
  readonly #limit: number;
  readonly #nameLimit: number;

  /** At most `limit` distinct routes held in all, `nameLimit` of them by one name. */
  constructor({ limit, nameLimit }: { limit: number; nameLimit: number }) {
    this.#limit = limit;
    this.#nameLimit = nameLimit;
  }

  /**
   * Why the routes of `keys` new to the registry would not fit its bounds (in all, or for `name`),
   * or undefined when they fit. Asked before {@link conflict}, whose time it bounds.
   */
  overLimit(
    name: string,
    keys: readonly string[],
    replaced?: { id: string; keys: readonly string[] },
  ): string | undefined {
    const wanted = new Set(keys);
    const added = [...wanted].filter((key) => !this.#holders.has(key)).length;
    if (added === 0) return undefined;
    // A node registering again gives back the routes only it held and no longer declares.
    const freed = (replaced?.keys ?? []).filter((key) => {
      const holder = this.#holders.get(key);
      return !wanted.has(key) && holder?.nodes.size === 1 && holder.nodes.has(replaced!.id);
    }).length;
    const total = this.#holders.size - freed;
    if (total + added > this.#limit) {
      return `the registry holds ${total} distinct REST routes of at most ${this.#limit}`;
    }
    const held = (this.#heldByName.get(name) ?? 0) - freed;
    if (held + added > this.#nameLimit) {
      return `the nodes named "${name}" hold ${held} distinct REST routes of at most ${this.#nameLimit}`;
    }
    return undefined;
  }

  /**
   * The first route of `keys` that another name holds, or that a path of another name's route would
   * match too (a literal under a template, say), with that route and a node of that name; undefined
   * if none. Only a key no name holds yet is compared with the others, so a node that declares the
   * routes its name holds already is checked in the time of its own routes.
   */
  conflict(name: string, keys: readonly string[]): RouteConflict | undefined {
    for (const key of keys) {
      const holder = this.#holders.get(key);
      if (holder) {
        if (holder.name !== name) return { key, heldKey: key, holder: firstNode(holder) };
        continue;
      }
      const { method, template } = parseRouteKey(key);
      for (const [heldKey, other] of this.#byMethod.get(method) ?? []) {
        if (other.name !== name && templatesOverlap(template, other.template)) {
          return { key, heldKey, holder: firstNode(other) };
        }
      }
    }
    return undefined;
  }

  /** Records that node `id` of `name` declares `keys` (checked first with `conflict`). */
  add(name: string, id: string, keys: readonly string[]): void {
    for (const key of keys) {
      let holder = this.#holders.get(key);
      if (!holder) {
        holder = { name, ...parseRouteKey(key), nodes: new Set() };
        this.#holders.set(key, holder);
        let sameMethod = this.#byMethod.get(holder.method);
        if (!sameMethod) {
          sameMethod = new Map();
          this.#byMethod.set(holder.method, sameMethod);
        }
        sameMethod.set(key, holder);
        this.#heldByName.set(name, (this.#heldByName.get(name) ?? 0) + 1);
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
      if (holder.nodes.size > 0) continue;
      this.#holders.delete(key);
      this.#byMethod.get(holder.method)?.delete(key);
      const held = (this.#heldByName.get(holder.name) ?? 1) - 1;
      if (held === 0) this.#heldByName.delete(holder.name);
      else this.#heldByName.set(holder.name, held);
    }
  }
}

/** A route refused: `key` of the joining node, and `heldKey` of the node of another name it meets. */
export interface RouteConflict {
  readonly key: string;
  readonly heldKey: string;
  readonly holder: string;
}

function firstNode(holder: RouteHolder): string {
  return holder.nodes.values().next().value as string;
}

/** A route key, "METHOD shape", read back: a shape is a template (its variables reduced to their patterns). */
export function parseRouteKey(key: string): { method: string; template: PathTemplate } {
  const space = key.indexOf(' ');
  return { method: key.slice(0, space), template: parsePathTemplate(key.slice(space + 1)) };
}
