/**
 * What each address group holds (see addressGroupOf), kept so that the group holding the most is
 * known at once however many groups there are: groups are filed by how many members they hold, and
 * a member added or removed moves its group one place.
 */
export class AddressShares<T> {
  readonly #members = new Map<string, Set<T>>();
  /** The groups holding each count of members. */
  readonly #groupsHolding = new Map<number, Set<string>>();
  #most = 0;

  add(group: string, member: T): void {
    let members = this.#members.get(group);
    if (!members) {
      members = new Set();
      this.#members.set(group, members);
    }
    if (members.has(member)) return;
    this.#refile(group, members.size, members.size + 1);
    members.add(member);
  }

  delete(group: string, member: T): void {
    const members = this.#members.get(group);
    if (!members?.delete(member)) return;
    this.#refile(group, members.size + 1, members.size);
    if (members.size === 0) this.#members.delete(group);
  }

  /** How many members `group` holds. */
  heldBy(group: string): number {
    return this.#members.get(group)?.size ?? 0;
  }

  /** A group holding the most members (one of them, when several do), and how many; undefined when none holds any. */
  largest(): { group: string; held: number } | undefined {
    const groups = this.#groupsHolding.get(this.#most);
    const group = groups?.values().next().value;
    return group === undefined ? undefined : { group, held: this.#most };
  }

  /** The member of `group` added first (of those it still holds). */
  oldestOf(group: string): T | undefined {
    return this.#members.get(group)?.values().next().value;
  }

  #refile(group: string, from: number, to: number): void {
    if (from > 0) {
      const groups = this.#groupsHolding.get(from);
      groups?.delete(group);
      if (groups?.size === 0) this.#groupsHolding.delete(from);
    }
    if (to > 0) {
      let groups = this.#groupsHolding.get(to);
      if (!groups) {
        groups = new Set();
        this.#groupsHolding.set(to, groups);
      }
      groups.add(group);
    }
    if (to > this.#most) this.#most = to;
    else if (from === this.#most && !this.#groupsHolding.has(from)) this.#most = to;
  }
}
