/**
 * One case of a round; cases of the same `rotation` run one after the other, in a different order
 * each turn (see roundOrder). A group whose cases have `slices` runs that many times in a round.
 */
export interface RotatedCase {
  readonly name: string;
  readonly rotation?: string;
  readonly slices?: number;
}

/**
 * Row `turn` of a Williams square for `n` cases: over its rows (n of them for an even n, 2n for
 * an odd one) every case runs once at every place, and right after every other case equally often.
 * Cycling one order instead (A B C D, B C D A, …) kept who follows whom the same in every turn, so
 * a case always ran right after the same one (what that one left behind always fell on it), and a
 * pair's two slices stood apart by a fixed pattern (the twin as shipped one slice before the off
 * twin in three turns of four, three after in the fourth): with the rate drifting, the median of the
 * pairs followed that drift. Here each case's offset from every other is as often ahead as behind.
 */
export function williamsRow(n: number, turn: number): number[] {
  const first = Array.from({ length: n }, (_, place) =>
    place === 0 ? 0 : place % 2 ? (place + 1) / 2 : n - place / 2,
  );
  const rows = n % 2 ? 2 * n : n;
  const row = ((turn % rows) + rows) % rows;
  const shifted = first.map((index) => (index + row) % n);
  return row < n ? shifted : first.map((index) => (index + row - n) % n).reverse();
}

/**
 * The cases in the order round `round` (from 1) runs them: a rotation group in place of its first
 * case, once per slice, each turn (slice, counted across rounds) in the next row of a Williams
 * square (see williamsRow), so that none always runs first (after the ceiling case, say), last,
 * or right after the same other.
 */
export function roundOrder<T extends RotatedCase>(cases: readonly T[], round: number): T[] {
  const ordered: T[] = [];
  const placed = new Set<string>();
  for (const entry of cases) {
    if (entry.rotation === undefined) {
      ordered.push(entry);
    } else if (!placed.has(entry.rotation)) {
      placed.add(entry.rotation);
      const group = cases.filter((other) => other.rotation === entry.rotation);
      const slices = entry.slices ?? 1;
      for (let slice = 0; slice < slices; slice++) {
        ordered.push(
          ...williamsRow(group.length, (round - 1) * slices + slice).map((index) => group[index]!),
        );
      }
    }
  }
  return ordered;
}
