/**
 * The name of `names` nearest to `typed` within a typo or two (a letter missed, added, changed or
 * swapped), or of which it is the start (`deadline` for `deadline-ms`), ignoring case; undefined
 * when none is that near. For the refusal of an unknown flag and the warning of a misspelt variable.
 */
export function closestName(typed: string, names: Iterable<string>): string | undefined {
  const wanted = typed.toLowerCase();
  const allowed = Math.min(2, Math.floor(wanted.length / 3));
  let best: { name: string; distance: number } | undefined;
  for (const name of names) {
    const candidate = name.toLowerCase();
    const cutShort = wanted.length >= 4 && candidate.startsWith(wanted);
    const distance = cutShort ? 1 : typoDistance(wanted, candidate);
    if (distance <= allowed && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/** Edit distance counting a swap of two neighbouring letters as one edit (optimal string alignment). */
function typoDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i += 1) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j += 1) {
      if (i === 0) {
        rows[0]![j] = j;
        continue;
      }
      const substitution = rows[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      let distance = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        distance = Math.min(distance, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = distance;
    }
  }
  return rows[a.length]![b.length]!;
}
