import { closestName } from './closest-name.js';

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
    const meant = closestName(name, flags.keys());
    if (meant === undefined) return `Unknown option '${typed}'`;
    const dashes = typed.startsWith('--') ? '' : ' (flags take two dashes)';
    return `Unknown option '${typed}': did you mean --${meant}?${dashes}`;
  }
  return undefined;
}
