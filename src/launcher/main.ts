import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REGISTRY_TOKEN_ENV } from '../common/common-settings.js';
import { loadSettings } from '../common/settings.js';
import { LAUNCHER_SETTINGS, SHOP_COMPONENTS } from './components.js';
import { componentEnv as allocatorEnv, COMPONENT_NODE_FLAGS } from './node-flags.js';
import { Supervisor } from './supervisor.js';

// `npm start`: the whole shop on one machine, each component its own process. Every component
// reads its own flags and environment variables (see the README), so they pass straight through.
const say = (line: string): void => {
  process.stdout.write(`[launcher] ${line}\n`);
};

let logFormat: 'pretty' | 'json';
try {
  ({ logFormat } = loadSettings(LAUNCHER_SETTINGS, [], process.env));
} catch (error) {
  process.stderr.write(`[launcher] ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
}
const componentEnv = registrationCredentials();
const supervisor = new Supervisor(
  SHOP_COMPONENTS.map(({ name, entry }) => ({
    name,
    entry: fileURLToPath(new URL(entry, import.meta.url)),
    nodeFlags: COMPONENT_NODE_FLAGS,
    env: { ...allocatorEnv(), ...componentEnv },
  })),
  { write: (line) => process.stdout.write(`${line}\n`), pretty: logFormat === 'pretty' },
);
supervisor.start();

/**
 * Secure by default, with no extra step: unless the environment already names a token, `npm start`
 * makes a fresh registration token for this run and hands it to every component, so that nobody
 * else on the network can register, watch or list. It is written to DATA_DIR/registry-token
 * (readable by this user only) for tools such as grpcurl.
 */
function registrationCredentials(): NodeJS.ProcessEnv {
  if (process.env[REGISTRY_TOKEN_ENV]) return {};
  const token = randomBytes(32).toString('base64url');
  const dataDir = resolve(process.env.DATA_DIR || './data');
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, 'registry-token');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  say(`registration token for this run in ${file} (${REGISTRY_TOKEN_ENV} sets your own)`);
  return { [REGISTRY_TOKEN_ENV]: token };
}

let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  say(`${signal}: stopping every component`);
  supervisor.stop().then(() => {
    say('all stopped');
    process.exit(0);
  });
};
process.on('SIGINT', stop);
process.on('SIGHUP', stop);
process.on('exit', () => supervisor.killAll());
process.on('SIGTERM', stop);
