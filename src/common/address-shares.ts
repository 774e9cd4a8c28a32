import { CountBuckets } from './count-buckets.js';

/** A member of a group, between the one added before it and the one added after. */
interface Entry<T> {
  readonly member: T;
  readonly group: string;
  older: Entry<T> | undefined;
  newer: Entry<T> | undefined;
}

/** A group's members, oldest to newest. */
interface Members<T> {
  oldest: Entry<T> | undefined;
  newest: Entry<T> | undefined;
  size: number;
}

/**
 * What each address group holds (see addressGroupOf), kept so that the group holding the most, and
 * the oldest and newest member of any group, are known at once however many there are: groups are
 * filed by how many members they hold, and a member added or removed moves its group one place.
 */
export class AddressShares<T> {
  readonly #groups = new Map<string, Members<T>>();
  readonly #entries = new Map<T, Entry<T>>();
  /** How many members each group holds, filed by that count. */
  readonly #sizes = new CountBuckets<string>();

  /** Adds `member` to `group`, as its newest; a member already held stays where it is. */
  add(group: string, member: T): void {
    if (this.#entries.has(member)) return;
    let members = this.#groups.get(group);
    if (!members) {
      members = { oldest: undefined, newest: undefined, size: 0 };
      this.#groups.set(group, members);
    }
    const entry: Entry<T> = { member, group, older: members.newest, newer: undefined };
    if (members.newest) members.newest.newer = entry;
    else members.oldest = entry;
    members.newest = entry;
    this.#entries.set(member, entry);
    this.#sizes.add(group, 1);
    members.size++;
  }

  delete(group: string, member: T): void {
    const entry = this.#entries.get(member);
    const members = this.#groups.get(group);
    if (!entry || entry.group !== group || !members) return;
    this.#entries.delete(member);
    if (entry.older) entry.older.newer = entry.newer;
    else members.oldest = entry.newer;
    if (entry.newer) entry.newer.older = entry.older;
    else members.newest = entry.older;
    this.#sizes.add(group, -1);
    members.size--;
    if (members.size === 0) this.#groups.delete(group);
  }

  /** How many members `group` holds. */
  heldBy(group: string): number {
    return this.#groups.get(group)?.size ?? 0;
  }

  /** A group holding the most members (one of them, when several do), and how many; undefined when none holds any. */
  largest(): { group: string; held: number } | undefined {
    const group = this.#sizes.firstOfMost();
    return group === undefined ? undefined : { group, held: this.#sizes.most };
  }

  /** The member of `group` added first (of those it still holds). */
  oldestOf(group: string): T | undefined {
    return this.#groups.get(group)?.oldest?.member;
  }

  /** The member of `group` added last (of those it still holds). */
  newestOf(group: string): T | undefined {
    return this.#groups.get(group)?.newest?.member;
  }
}
