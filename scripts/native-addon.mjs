// better-sqlite3 is a native addon, built for the Node.js that installed it (its ABI, NODE_MODULE_VERSION).
// After a change of Node's major version (nvm, a distro upgrade) every service failed at start with
// "was compiled against a different Node.js version" and the launcher restarted it every 10 s.
// scripts/setup.mjs loads it in a child process of this Node before anything starts, rebuilds it
// when it was built for another Node (or its binary is missing), and stops with the command to run
// when the rebuild does not make it load.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const ADDON = 'better-sqlite3';

// Opens a database in memory, which loads the binary (better-sqlite3 loads it on the first open);
// prints the error's code and message as JSON when that fails.
const LOAD = `try { new (require(${JSON.stringify(ADDON)}))(':memory:').close(); } catch (error) {
  process.stdout.write(JSON.stringify({ code: error?.code, message: String(error?.message ?? error) }));
  process.exitCode = 1;
}`;

/**
 * What to do about the addon, from the error that loading it threw (undefined: it loaded).
 * `rebuild`: it was built for another Node.js (Node's own ABI message, or "did not self-register",
 * which an addon of another ABI may give), or its binary is missing (`bindings` found none);
 * `other`: it fails for another reason, which a rebuild is not known to fix.
 */
export function addonVerdict(error) {
  if (error === undefined) return { action: 'ok' };
  const message = String(error.message ?? '');
  const abi =
    /NODE_MODULE_VERSION (\d+)\. This version of Node\.js requires\s+NODE_MODULE_VERSION (\d+)/.exec(message);
  if (abi)
    return {
      action: 'rebuild',
      reason: `it was built for NODE_MODULE_VERSION ${abi[1]}, this Node.js needs ${abi[2]}`,
    };
  if (/compiled against a different Node\.js version|did not self-register/.test(message)) {
    return { action: 'rebuild', reason: 'it was built for another Node.js' };
  }
  if (/Could not locate the bindings file/.test(message))
    return { action: 'rebuild', reason: 'its binary is missing' };
  return { action: 'other', reason: message.split('\n')[0] };
}

/**
 * Loads the addon in a child process of this Node, from `cwd`'s node_modules: the error it threw, or
 * undefined. A child that does not end within `timeout` ms (a machine under load), or cannot be run,
 * is told as such: it said "exit SIGTERM", or "nullnull".
 */
export function loadAddon(cwd = process.cwd(), timeout = 60_000) {
  const result = spawnSync(process.execPath, ['-e', LOAD], { cwd, encoding: 'utf8', timeout });
  if (result.status === 0) return undefined;
  if (result.error) {
    const { code } = result.error;
    const message =
      code === 'ETIMEDOUT'
        ? `loading it in a child process did not end within ${timeout / 1000} s`
        : `loading it in a child process failed: ${result.error.message}`;
    return { code, message };
  }
  try {
    return JSON.parse(result.stdout);
  } catch {
    return { message: `${result.stdout}${result.stderr}`.trim() || `exit ${result.status ?? result.signal}` };
  }
}

/**
 * The folder holding this Node's own C headers, for node-gyp (npm_config_nodedir): the prefix of
 * `execPath` (`<prefix>/bin/node`) when `<prefix>/include/node/node_version.h` is there and of the same
 * major version, as in Node.js's own tarballs (nvm's, the npm registry's) and distro packages with
 * headers. Without it node-gyp downloads the headers, which fails offline, and an npmrc's `nodedir`
 * may name another Node's headers.
 */
export function nodedirFor(execPath = process.execPath, version = process.versions.node) {
  const prefix = dirname(dirname(execPath));
  const header = join(prefix, 'include/node/node_version.h');
  if (!existsSync(header)) return undefined;
  const major = /#define NODE_MAJOR_VERSION (\d+)/.exec(readFileSync(header, 'utf8'))?.[1];
  return major === version.split('.')[0] ? prefix : undefined;
}

/** The environment for `npm rebuild`: `env` with this Node's headers, `nodedir` (see nodedirFor), when it has them. */
export function rebuildEnvironment(nodedir, env = process.env) {
  return nodedir === undefined ? { ...env } : { ...env, npm_config_nodedir: nodedir };
}
