import { parseArgs } from 'node:util';
import { ConfigError } from './config.js';
import { flagsTakenByNpm } from './npm-flags.js';
import { unknownFlagRefusal } from './unknown-flag.js';

/**
 * One configuration setting, declared once: where it is read from (a flag, an environment variable,
 * or both), its default, how its text is parsed, and what it is for. A component's table of settings
 * produces its parser, its usage text and its rows of the README's configuration table, so the three
 * cannot drift apart.
 */
export interface Setting<Value> {
  /** The command-line flag without "--", if it has one. */
  readonly flag?: string;
  /** The environment variable, if it has one. */
  readonly env?: string;
  /** The default as text, parsed like any other value; absent: unset, and the value is undefined. */
  readonly default?: string;
  /** How the default reads in help when it is not a literal, e.g. "the address the distributor sees". */
  readonly defaultText?: string;
  /** The flag takes no value (`--flag`); its environment variable reads true/false/1/0. */
  readonly boolean?: boolean;
  /** One line (or a few) saying what it is for, in the usage and the README. */
  readonly help: string;
  /** Turns the text into the value, or throws ConfigError naming `source`. */
  readonly parse: (value: string, source: string) => Value;
}

/** A component's settings by the name of the value they produce. */
export type SettingsTable = Readonly<Record<string, Setting<unknown>>>;

/** The values a table produces: what `parse` returns, or undefined for an unset setting without default. */
export type SettingsValues<Table extends SettingsTable> = {
  readonly [Name in keyof Table]: Table[Name] extends Setting<infer Value> ? Value : never;
};

/** Declares a setting with a default: its value is always set. */
export function setting<Value>(spec: Setting<Value> & { default: string }): Setting<Value> {
  return spec;
}

/** Declares a setting without a default: its value is undefined when neither flag nor variable is given. */
export function optionalSetting<Value>(spec: Omit<Setting<Value>, 'default'>): Setting<Value | undefined> {
  return spec;
}

/** Declares an on/off setting: `--flag`, or its variable set to true/false/1/0; off by default. */
export function switchSetting(
  spec: Omit<Setting<boolean>, 'default' | 'parse' | 'boolean'>,
): Setting<boolean> {
  return { ...spec, boolean: true, default: 'false', parse: parseBoolean };
}

/** Parses true/false/1/0 (any case). */
export function parseBoolean(value: string, source: string): boolean {
  const normalized = value.trim().toLowerCase();
  if (normalized === 'true' || normalized === '1') return true;
  if (normalized === 'false' || normalized === '0') return false;
  throw new ConfigError(`${source}: expected true or false, got "${value}"`);
}

/** Parses one of a fixed list of lower-case words, in any case, as parseBoolean and the word settings ("off", "auto") read theirs. */
export function oneOf<const Word extends string>(words: readonly Word[]) {
  return (value: string, source: string): Word => {
    const normalized = value.trim().toLowerCase();
    if ((words as readonly string[]).includes(normalized)) return normalized as Word;
    throw new ConfigError(`${source}: expected one of ${words.join(', ')}, got "${value}"`);
  };
}

/** Keeps the text as it is, refusing an empty one. */
export function nonEmpty(value: string, source: string): string {
  if (value.trim() === '') throw new ConfigError(`${source}: expected a value, got an empty one`);
  return value;
}

/**
 * How {@link loadSettings} looks for flags npm kept as its own settings: by default those of the
 * table, refused as a component's (`npm run goods --port=9011`: give them after `--`). `npm start`,
 * which takes no flags, asks once, in its first load, for every component's flags with its own
 * refusal, and its later loads (of parts of tables it has looked through) skip it: `'checked'`.
 */
export type NpmKeptFlagsCheck =
  | { readonly tables: readonly SettingsTable[]; readonly refusal: (taken: string) => string }
  | 'checked';

/**
 * Reads every setting of a table: the flag first, then the environment variable, then the default.
 * An unknown flag, a missing flag value or a stray word is a ConfigError, like a bad value; so is a
 * flag npm kept as its own setting (`npm run goods --port=9011`, without `--`), which never reached
 * the command line: the component ran on its default port, with only npm's "Unknown cli config"
 * (see NpmKeptFlagsCheck).
 */
export function loadSettings<Table extends SettingsTable>(
  table: Table,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  npmKeptFlags: NpmKeptFlagsCheck = {
    tables: [table],
    refusal: (taken) =>
      `npm kept ${taken} as its own setting, so it never reached this command: give the flags after "--" (npm run goods -- --port 9011)`,
  },
): SettingsValues<Table> {
  if (npmKeptFlags !== 'checked') {
    const takenByNpm = flagsTakenByNpm(npmKeptFlags.tables, env);
    if (takenByNpm.length > 0) throw new ConfigError(npmKeptFlags.refusal(takenByNpm.join(' ')));
  }
  const flags = readFlags(table, argv);
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    const fromFlag = spec.flag === undefined ? undefined : flags[spec.flag];
    const fromEnv = spec.env === undefined ? undefined : env[spec.env];
    if (fromFlag !== undefined) {
      // A flag given empty (--cors-origins '', --advertise-host=) is refused whatever its parser
      // would take: unlike a variable set empty, it cannot be a leftover meaning "unset".
      if (typeof fromFlag === 'string' && fromFlag.trim() === '')
        throw new ConfigError(`--${spec.flag}: expected a value, got an empty one`);
      values[name] = typeof fromFlag === 'boolean' ? fromFlag : spec.parse(fromFlag, `--${spec.flag}`);
    } else if (fromEnv !== undefined && fromEnv !== '') {
      values[name] = spec.parse(fromEnv, spec.env!);
    } else if (spec.default !== undefined) {
      values[name] = spec.parse(spec.default, `the default of ${describeSources(spec)}`);
    } else {
      values[name] = undefined;
    }
  }
  return Object.freeze(values) as SettingsValues<Table>;
}

function readFlags(table: SettingsTable, argv: readonly string[]): Record<string, string | boolean> {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const spec of Object.values(table)) {
    if (spec.flag !== undefined) options[spec.flag] = { type: spec.boolean ? 'boolean' : 'string' };
  }
  const config = { args: [...argv], options, strict: true, allowPositionals: false, tokens: true } as const;
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (error) {
    const takesValue = new Map(
      Object.entries(options).map(([flag, option]) => [flag, option.type === 'string']),
    );
    const unknown = unknownFlagRefusal(argv, takesValue);
    throw new ConfigError(unknown ?? (error instanceof Error ? error.message : String(error)));
  }
  // parseArgs keeps the last of a flag given twice; a command line that says two things is refused instead.
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) throw new ConfigError(`--${token.name} is given more than once`);
    seen.add(token.name);
  }
  return parsed.values as Record<string, string | boolean>;
}

/** A setting as the usage names it, for messages that tell what to change: "--port (GATEWAY_PORT)". */
export function settingName(setting: Setting<unknown>): string {
  const flag = setting.flag === undefined ? undefined : `--${setting.flag}`;
  if (flag && setting.env) return `${flag} (${setting.env})`;
  return flag ?? setting.env ?? 'its setting';
}

function describeSources(spec: Setting<unknown>): string {
  return [spec.flag && `--${spec.flag}`, spec.env].filter(Boolean).join(' / ');
}

function defaultOf(spec: Setting<unknown>): string {
  return spec.defaultText ?? (spec.default === undefined ? 'none' : spec.default);
}

/** The usage text of a component: its command line, then one block per setting. */
export function usageText(command: string, table: SettingsTable): string {
  const specs = Object.values(table);
  const flagWidth = Math.max(...specs.map((spec) => flagLabel(spec).length));
  const envWidth = Math.max(...specs.map((spec) => (spec.env ?? '').length));
  // A command that takes no flag (the launcher) says so, rather than promise options it refuses.
  const takesFlags = specs.some((spec) => spec.flag !== undefined);
  const lines = [
    `usage: ${command} ${takesFlags ? '[options]' : '(no options; the settings are environment variables)'}`,
  ];
  for (const spec of specs) {
    const head = `  ${flagLabel(spec).padEnd(flagWidth)}  ${(spec.env ?? '').padEnd(envWidth)}  `;
    lines.push(`${head}${spec.help} (default: ${defaultOf(spec)})`);
  }
  return lines.join('\n');
}

function flagLabel(spec: Setting<unknown>): string {
  if (spec.flag === undefined) return '';
  return spec.boolean ? `--${spec.flag}` : `--${spec.flag} VALUE`;
}

/** A component's table with the name it appears under in the README. */
export interface DocumentedTable {
  readonly component: string;
  readonly table: SettingsTable;
  /** Not one of the components "all" counts (e.g. the launcher, which only passes settings on). */
  readonly apart?: boolean;
}

/**
 * The README's configuration table for several components: one row per distinct setting, saying
 * which components use it.
 */
export function markdownTable(tables: readonly DocumentedTable[]): string {
  const rows = new Map<string, { cells: string[]; users: string[] }>();
  for (const { component, table } of tables) {
    for (const spec of Object.values(table)) {
      const cells = [
        spec.flag === undefined ? '' : `\`--${spec.flag}\``,
        spec.env === undefined ? '' : `\`${spec.env}\``,
        escapeCell(defaultOf(spec)),
        escapeCell(spec.help),
      ];
      const key = cells.join('|');
      const row = rows.get(key) ?? { cells, users: [] };
      row.users.push(component);
      rows.set(key, row);
    }
  }
  const everyone = tables.filter((table) => !table.apart).length;
  // Rows of one flag (every component's --port, say) stand together, in order of first appearance.
  const groups = new Map<string, { cells: string[]; users: string[] }[]>();
  for (const row of rows.values()) {
    const group = row.cells[0] || row.cells[1]!;
    groups.set(group, [...(groups.get(group) ?? []), row]);
  }
  const lines = ['| flag | environment | default | what it sets | used by |', '|---|---|---|---|---|'];
  for (const { cells, users } of [...groups.values()].flat()) {
    const usedBy = users.length === everyone ? 'all' : users.join(', ');
    lines.push(`| ${[...cells, usedBy].join(' | ')} |`);
  }
  return lines.join('\n');
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('\n', ' ');
}
