/** A table of settings as far as npm's reading of flags goes (settings.ts's SettingsTable is one). */
type FlagTable = Readonly<
  Record<string, { readonly flag?: string | undefined; readonly env?: string | undefined }>
>;

/**
 * The flags of `tables` that npm took as its own settings: `npm start --port=8081` runs the
 * launcher without the flag, and `npm run goods --port=9011` goods, which npm keeps as
 * `npm_config_port` (with only a warning of its own, "Unknown cli config"). Variables named after a
 * setting (`--gateway-port`) count too. Each is returned as the user wrote it, `--port=8081`.
 */
export function flagsTakenByNpm(tables: readonly FlagTable[], env: NodeJS.ProcessEnv): string[] {
  const names = new Set<string>();
  for (const table of tables) {
    for (const setting of Object.values(table)) {
      if (setting.flag) names.add(setting.flag);
      if (setting.env) names.add(setting.env.toLowerCase().replaceAll('_', '-'));
    }
  }
  const taken: string[] = [];
  for (const name of names) {
    const value = env[`npm_config_${name.replaceAll('-', '_')}`];
    if (value !== undefined) taken.push(`--${name}=${value}`);
  }
  return taken;
}
