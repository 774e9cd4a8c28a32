// Types of scripts/native-addon.mjs, for its tests.

/** The native addon that setup checks: better-sqlite3. */
export declare const ADDON: string;

/** An error thrown by loading the addon, as the child process reports it. */
export interface LoadError {
  readonly code?: string;
  readonly message: string;
}

/** What setup does about the addon: nothing, rebuild it, or warn (a failure a rebuild is not known to fix). */
export type AddonVerdict =
  | { readonly action: 'ok' }
  | { readonly action: 'rebuild' | 'other'; readonly reason: string };

export declare function addonVerdict(error: LoadError | undefined): AddonVerdict;

/**
 * Loads the addon in a child process of this Node, from `cwd`'s node_modules: the error it threw, or
 * undefined; a child that does not end within `timeout` ms (default 60 s), or cannot run, says so.
 */
export declare function loadAddon(cwd?: string, timeout?: number): LoadError | undefined;

/** This Node's prefix when `<prefix>/include/node` holds its own major version's headers, else undefined. */
export declare function nodedirFor(execPath?: string, version?: string): string | undefined;

/** `env` (default process.env) with npm_config_nodedir set to `nodedir` when there is one. */
export declare function rebuildEnvironment(
  nodedir: string | undefined,
  env?: NodeJS.ProcessEnv,
): NodeJS.ProcessEnv;
