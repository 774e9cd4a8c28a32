import { closestName } from '../common/closest-name.js';
import type { SettingsTable } from '../common/settings.js';

/**
 * Warnings for the variables of `env` that look like a setting misspelt: named like the shop's
 * (a component's name, SERVICE, SHOP or MYSQL, then `_`), read by no component, and within a typo of
 * one that is (`GATEWAY_PROT=8081`, `MYSQL_URI`). `npm start` passes every variable on, and a
 * component reads only the names it knows: such a one was dropped without a word, and the shop ran
 * on the default (with MYSQL_URI, on SQLite; with MYSQL_SSLCA, without TLS).
 *
 * Only near misses are named: other variables of the same look (a platform's `GOODS_SERVICE_HOST`,
 * say) are not the shop's, and a warning for each would be noise.
 */
export function misspeltVariableWarnings(
  env: NodeJS.ProcessEnv,
  componentNames: readonly string[],
  tables: readonly SettingsTable[],
): string[] {
  const known = new Set<string>();
  for (const table of tables) {
    for (const setting of Object.values(table)) if (setting.env) known.add(setting.env);
  }
  const prefixes = [...componentNames.map((name) => name.toUpperCase()), 'SERVICE', 'SHOP', 'MYSQL'].map(
    (word) => `${word}_`,
  );
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || known.has(name)) continue;
    if (!prefixes.some((prefix) => name.toUpperCase().startsWith(prefix))) continue;
    const meant = closestName(name, known);
    if (meant === undefined) continue;
    warnings.push(`${name} is set, but no component reads it: did you mean ${meant}? (it is ignored)`);
  }
  return warnings;
}
