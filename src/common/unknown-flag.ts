/**
 * The refusal of a command line holding a flag that no setting has, naming the argument as it was
 * typed and the flag it most likely meant: `Unknown option '--prot': did you mean --port?`.
 *
 * Node's parseArgs names only what it parsed: `-port` (one dash, as some tools take long flags) is
 * to it the short flags `-p -o -r -t`, so its message, `Unknown option '-p'`, named a flag nobody
 * typed and left the user to guess. Returns undefined when every option of `argv` is known (the
 * caller then keeps parseArgs' own message).
 *
 * `flags` maps each flag name (without dashes) to whether it takes a value, so that a value that
 * starts with a dash (`--port -1`) is not taken for a flag.
 */
export function unknownFlagRefusal(
  argv: readonly string[],
  flags: ReadonlyMap<string, boolean>,
): string | undefined {
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index]!;
    if (!arg.startsWith('-') || arg === '-' || arg === '--') continue;
    const typed = arg.split('=', 1)[0]!;
    const name = typed.replace(/^-+/, '');
    const takesValue = flags.get(name);
    if (typed.startsWith('--') && takesValue !== undefined) {
      if (takesValue && !arg.includes('=')) index += 1;
      continue;
    }
    const meant = closestFlag(name, [...flags.keys()]);
    if (meant === undefined) return `Unknown option '${typed}'`;
    const dashes = typed.startsWith('--') ? '' : ' (flags take two dashes)';
    return `Unknown option '${typed}': did you mean --${meant}?${dashes}`;
  }
  return undefined;
}

/** The flag nearest to `name` within a typo or two (a letter missed, added, changed or swapped), or cut short. */
function closestFlag(name: string, flags: readonly string[]): string | undefined {
  const wanted = name.toLowerCase();
  const allowed = Math.min(2, Math.floor(wanted.length / 3));
  let best: { flag: string; distance: number } | undefined;
  for (const flag of flags) {
    // A flag cut short (--deadline for --deadline-ms) is as likely as a typo.
    const cutShort = wanted.length >= 4 && flag.startsWith(wanted);
    const distance = cutShort ? 1 : typoDistance(wanted, flag);
    if (distance <= allowed && (best === undefined || distance < best.distance)) best = { flag, distance };
  }
  return best?.flag;
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
