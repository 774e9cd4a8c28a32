import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REGISTRY_TOKEN_ENV } from '../common/common-settings.js';
import { EXIT_CODES } from '../common/exit-codes.js';
import { loadSettings } from '../common/settings.js';
import { LAUNCHER_SETTINGS, SHOP_COMPONENTS } from './components.js';
import { componentEnv as allocatorEnv, COMPONENT_NODE_FLAGS } from './node-flags.js';
import { watchParent } from './parent-watch.js';
import { Supervisor } from './supervisor.js';

// `npm start`: the whole shop on one machine, each component its own process. Every component
// reads its own flags and environment variables (see the README), so they pass straight through.

/** What a component's JSON log line says when it listens (see start-service.ts, distributor/main.ts). */
const LISTENING_EVENT = '"event":"listening"';

const say = (line: string): void => {
  process.stdout.write(`[launcher] ${line}\n`);
};

let logFormat: 'pretty' | 'json';
try {
  ({ logFormat } = loadSettings(LAUNCHER_SETTINGS, [], process.env));
} catch (error) {
  process.stderr.write(`[launcher] ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(EXIT_CODES.badConfiguration);
}
const componentEnv = registrationCredentials();
const supervisor = new Supervisor(
  SHOP_COMPONENTS.map(({ name, entry }) => ({
    name,
    entry: fileURLToPath(new URL(entry, import.meta.url)),
    nodeFlags: COMPONENT_NODE_FLAGS,
    env: { ...allocatorEnv(), ...componentEnv },
    // The others start once the distributor listens: they would only warn that it does not yet.
    ...(name === 'distributor' ? { isReadyLine: (line: string) => line.includes(LISTENING_EVENT) } : {}),
  })),
  {
    write: (line) => process.stdout.write(`${line}\n`),
    pretty: logFormat === 'pretty',
    // The shop is not whole without it and a restart would fail the same way: stop, and say so.
    onPermanentExit: (name, code, meaning) =>
      stopEverything(`${name} cannot run (${meaning}: see its message above)`, code),
  },
);

let stopping = false;
/** Stops every component in order (the gateway first, the distributor last), then exits. */
function stopEverything(why: string, exitCode: number): void {
  if (stopping) return;
  stopping = true;
  say(`${why}: stopping every component`);
  supervisor.stop().then(() => {
    say(exitCode === 0 ? 'all stopped' : `all stopped; exiting with code ${exitCode}`);
    process.exit(exitCode);
  });
}

/**
 * Secure by default, with no extra step: unless the environment already names a token, `npm start`
 * makes a fresh registration token for this run and hands it to every component, so that nobody
 * else on the network can register, watch or list. It is written to DATA_DIR/registry-token
 * (readable by this user only) for tools such as grpcurl, and removed when the launcher exits; a
 * file an earlier run left is removed too when the environment names the token, as it would be
 * wrong.
 */
function registrationCredentials(): NodeJS.ProcessEnv {
  const file = join(resolve(process.env.DATA_DIR || './data'), 'registry-token');
  if (process.env[REGISTRY_TOKEN_ENV]) {
    rmSync(file, { force: true });
    return {};
  }
  const token = randomBytes(32).toString('base64url');
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    process.stderr.write(`[launcher] DATA_DIR: cannot write the registration token to ${file}: ${reason}\n`);
    process.exit(EXIT_CODES.badConfiguration);
  }
  process.on('exit', () => rmSync(file, { force: true }));
  say(`registration token for this run in ${file} (${REGISTRY_TOKEN_ENV} sets your own)`);
  return { [REGISTRY_TOKEN_ENV]: token };
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => stopEverything(signal, 0));
}
// `npm start` runs the launcher in place of its shell (exec), so that npm's forwarded SIGTERM reaches
// it. When npm itself is killed outright, nothing is forwarded: the launcher is orphaned instead.
watchParent((parent) => stopEverything(`the process that started the launcher (pid ${parent}) is gone`, 0));
// Whoever read our output may be gone with our parent: the components are still stopped in order.
process.stdout.on('error', () => {});
process.on('exit', () => supervisor.killAll());
void supervisor.start();
