import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REGISTRY_TOKEN_ENV } from '../common/common-settings.js';
import { EXIT_CODES } from '../common/exit-codes.js';
import { makeFolder } from '../common/make-folder.js';
import { asksForHelp, STOP_LIMIT_MS } from '../common/process-lifecycle.js';
import { loadSettings, usageText } from '../common/settings.js';
import { REPEATED_SIGNAL_MS, takeHeldSignals } from '../common/signal-hold.js';
import { SHOP_SERVICES } from '../services/service-list.js';
import { LAUNCHER_SETTINGS, SHOP_COMPONENTS } from './components.js';
import { derivedDistributorAddress } from './distributor-address.js';
import { type GatewayStatusView, gatewayRequiresClientCertificates } from './gateway-status-probe.js';
import { heldPorts, heldPortsMessage } from './held-ports.js';
import { jsonLogLine, type LauncherLineLevel } from './log-line-formatter.js';
import { LossyOutput } from './lossy-output.js';
import { misspeltVariableWarnings } from './misspelt-variables.js';
import { componentEnv as allocatorEnv, COMPONENT_NODE_FLAGS } from './node-flags.js';
import { watchParent } from './parent-watch.js';
import { planPorts } from './port-plan.js';
import { ShopReadiness } from './shop-readiness.js';
import { Supervisor } from './supervisor.js';
import { runningTokenHolder } from './token-holder.js';

// `npm start`: the whole shop on one machine, each component its own process (main.ts holds
// signals while this module loads). Every component reads its own flags and environment variables
// (see the README), so they pass straight through.
let logFormat: 'pretty' | 'json' = 'pretty';
/** One of the launcher's own lines; with LOG_FORMAT=json shaped as the components' (jsonLogLine). */
const say = (text: string, level: LauncherLineLevel = 'info'): void =>
  output.write(launcherLine(text, level));
const launcherLine = (text: string, level: LauncherLineLevel): string =>
  `[launcher] ${logFormat === 'json' ? jsonLogLine('launcher', level, text) : text}`;
const output = new LossyOutput(process.stdout, (dropped) =>
  launcherLine(`${dropped} lines dropped: the output was not read fast enough`, 'warn'),
);

const LAUNCHER_USAGE = `${usageText('npm start', LAUNCHER_SETTINGS)}
Each component reads its own settings from the environment, which npm start passes on (see the
README, "Configuration"); to list one's: npm run goods -- --help (or distributor, members,
purchases, gateway)`;

let distributorAddress: string | undefined;
let portPlan: ReturnType<typeof planPorts>;
let dataDir: string;
const argv = process.argv.slice(2);
if (asksForHelp(argv)) {
  process.stdout.write(`${LAUNCHER_USAGE}\n`);
  process.exit(EXIT_CODES.stopped);
}
try {
  // It takes no flags: one given (npm start -- --port 9000, say) is refused by loadSettings, and
  // one npm kept as its own setting (npm start --port=8081) is looked for here, once, among every
  // component's: each would be dropped without a word. The loads after it skip the look.
  ({ logFormat } = loadSettings({ logFormat: LAUNCHER_SETTINGS.logFormat }, argv, process.env, {
    tables: [LAUNCHER_SETTINGS, ...SHOP_COMPONENTS.map(({ settings }) => settings)],
    refusal: (taken) =>
      `npm start takes no flags, and npm kept ${taken} as its own setting: set the components' environment variables instead (see README, "Configuration")`,
  }));
  distributorAddress = derivedDistributorAddress(process.env);
  portPlan = planPorts(SHOP_COMPONENTS, process.env);
  // Read as the services read it: a blank one was made a folder for the token before they refused it.
  ({ dataDir } = loadSettings({ dataDir: LAUNCHER_SETTINGS.dataDir }, [], process.env, 'checked'));
} catch (error) {
  const reason = error instanceof Error ? error.message : String(error);
  // Once LOG_FORMAT=json is read, a collector may take every line as JSON: the refusal is one
  // record, without the usage, which only lists LOG_FORMAT and would come as plain lines.
  process.stderr.write(
    logFormat === 'json'
      ? `${launcherLine(reason, 'error')}\n`
      : `[launcher] ${reason}\n\n${LAUNCHER_USAGE}\n`,
  );
  process.exit(EXIT_CODES.badConfiguration);
}
for (const note of portPlan.notes) say(note);
for (const warning of misspeltVariableWarnings(
  process.env,
  SHOP_COMPONENTS.map(({ name }) => name),
  [LAUNCHER_SETTINGS, ...SHOP_COMPONENTS.map(({ settings }) => settings)],
))
  say(warning, 'warn');
/** Where this run's registry token is published, and beside it the pid of the launcher holding it. */
const tokenFile = join(resolve(dataDir), 'registry-token');
const credentials = registrationCredentials();
const readiness = new ShopReadiness({
  services: SHOP_SERVICES.map(({ name }) => name),
  say,
  // A gateway that requires client certificates refuses the launcher's GET /status.json (403),
  // the launcher having none: it asks the gateway it started over their pipe instead.
  ...(gatewayRequiresClientCertificates(process.env)
    ? { fetchStatus: (_endpoint: unknown, timeoutMs: number) => supervisorStatusOf('gateway', timeoutMs) }
    : {}),
});
const supervisor = new Supervisor(
  SHOP_COMPONENTS.map(({ name, entry }) => ({
    name,
    entry: fileURLToPath(new URL(entry, import.meta.url)),
    nodeFlags: COMPONENT_NODE_FLAGS,
    env: {
      ...allocatorEnv(),
      ...credentials.env,
      ...(distributorAddress === undefined ? {} : { DISTRIBUTOR_ADDRESS: distributorAddress }),
      ...portPlan.env,
    },
    // The others start once the distributor listens: they would only warn that it does not yet.
    waitUntilListening: name === 'distributor',
  })),
  {
    write: (line) => output.write(line),
    pretty: logFormat === 'pretty',
    // The shop is not whole without it and a restart would fail the same way: stop, and say so.
    onPermanentExit: (name, code, meaning) =>
      stopEverything(`${name} cannot run (${meaning}: see its message above)`, code),
    // Only once this run's distributor holds its port is this run the shop the file should name.
    onListening: (name, url) => {
      if (name === 'distributor') credentials.publish();
      if (name === 'gateway') readiness.gatewayListening(url);
    },
    onRestart: (name) => readiness.restarted(name),
  },
);

/** A component's status, asked over its pipe (Supervisor.askStatus). */
async function supervisorStatusOf(name: string, timeoutMs: number): Promise<GatewayStatusView> {
  const answer = await supervisor.askStatus(name, timeoutMs);
  try {
    return JSON.parse(answer) as GatewayStatusView;
  } catch {
    throw new Error('its status is not JSON');
  }
}

let stopping = false;
/**
 * Stops every component in order (the gateway first, the distributor last), then exits with
 * `exitCode`; or with EXIT_CODES.failed when a stop asked for as clean had to kill a component
 * past the stop limit: what it had not finished (a call in flight, its traces) is lost, which a
 * service manager or script reading 0 would never learn.
 */
function stopEverything(why: string, exitCode: number): void {
  if (stopping) return;
  stopping = true;
  readiness.stop();
  say(`${why}: stopping every component`, exitCode === 0 ? 'info' : 'error');
  supervisor.stop().then(async (killed) => {
    const code = exitCode === 0 && killed.length > 0 ? EXIT_CODES.failed : exitCode;
    const killedNote =
      killed.length === 0
        ? ''
        : `, but ${killed.join(', ')} did not stop within ${STOP_LIMIT_MS} ms of SIGTERM and ${killed.length === 1 ? 'was' : 'were'} killed (SIGKILL)`;
    say(
      code === 0 ? 'all stopped' : `all stopped${killedNote}; exiting with code ${code}`,
      code === 0 ? 'info' : 'error',
    );
    await output.flush(1_000);
    process.exit(code);
  });
}

/**
 * Secure by default, with no extra step: unless the environment already names a token, `npm start`
 * makes a fresh registration token for this run and hands it to every component, so that nobody
 * else on the network can register, watch or list. `publish()` writes it to DATA_DIR/registry-token
 * (readable by this user only) for tools such as grpcurl, once this run's distributor listens: a
 * second launcher on the same DATA_DIR whose distributor finds its port taken never overwrites the
 * token of the shop that runs. The file is removed when the launcher exits if it still holds this
 * run's token. When the environment names the token, a file that holds another one is left alone
 * (it may be a running launcher's) and named as not this run's.
 */
function registrationCredentials(): { env: NodeJS.ProcessEnv; publish(): void } {
  const file = tokenFile;
  const given = process.env[REGISTRY_TOKEN_ENV];
  if (given) {
    const held = readIfPresent(file);
    if (held !== undefined && held !== given) {
      say(
        `${file} holds another token than ${REGISTRY_TOKEN_ENV} (an earlier run's?): use ${REGISTRY_TOKEN_ENV}`,
        'warn',
      );
    }
    return { env: {}, publish: () => {} };
  }
  try {
    makeFolder(dirname(file), 0o700);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    process.stderr.write(
      `${launcherLine(`DATA_DIR: cannot write the registration token to ${file}: ${reason}`, 'error')}\n`,
    );
    process.exit(EXIT_CODES.badConfiguration);
  }
  const token = randomBytes(32).toString('base64url');
  const pidFile = `${file}.pid`;
  let published = false;
  process.on('exit', () => {
    try {
      if (readIfPresent(file) !== token) return;
      rmSync(file);
      rmSync(pidFile, { force: true });
    } catch {
      // Only a convenience for tools: the components are stopped whatever happens to it.
    }
  });
  return {
    env: { [REGISTRY_TOKEN_ENV]: token },
    publish: () => {
      if (published) return;
      const holder = runningTokenHolder(pidFile);
      if (holder !== undefined && readIfPresent(file) !== undefined) {
        published = true;
        say(
          `${file} holds the token of the launcher running as pid ${holder} (another shop on this DATA_DIR): left alone, so this run's token is in no file (${REGISTRY_TOKEN_ENV} sets your own)`,
          'warn',
        );
        return;
      }
      try {
        writePrivately(file, `${token}\n`);
        writePrivately(pidFile, `${process.pid}\n`);
        published = true;
        say(`registration token for this run in ${file} (${REGISTRY_TOKEN_ENV} sets your own)`);
      } catch (error) {
        // The shop runs all the same; only tools reading the file go without.
        say(
          `cannot write the registration token to ${file}: ${error instanceof Error ? error.message : String(error)}`,
          'warn',
        );
      }
    },
  };
}

/**
 * Writes `content` to `file` readable by this user only, whatever was there: a new file made with
 * mode 0600 (never through a link) and renamed over it. Writing into the file itself would keep
 * the mode and owner of one left there (0666, or another user's in a shared directory), or follow
 * a link to somewhere else.
 */
function writePrivately(file: string, content: string): void {
  // A name no earlier run left behind: a PID repeats (in containers, always the same).
  const fresh = `${file}.${randomBytes(6).toString('hex')}.new`;
  const descriptor = openSync(fresh, 'wx', 0o600);
  try {
    try {
      writeFileSync(descriptor, content);
    } finally {
      closeSync(descriptor);
    }
    renameSync(fresh, file);
  } catch (error) {
    rmSync(fresh, { force: true });
    throw error;
  }
}

/** A token file's token; undefined when there is none, or it cannot be read. */
function readIfPresent(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** When the first signal came (performance.now()), if one has. */
let firstSignalAt: number | undefined;
/**
 * A signal stops every component in order. A second one, more than a second after the first (one
 * Ctrl-C may come twice: see REPEATED_SIGNAL_MS), kills what still runs and exits 1 at once: a
 * component that does not stop would otherwise hold the stop for its whole 10 s, each in turn.
 */
function onSignal(signal: NodeJS.Signals, at = performance.now()): void {
  if (firstSignalAt === undefined) {
    firstSignalAt = at;
    stopEverything(signal, 0);
    return;
  }
  if (at - firstSignalAt < REPEATED_SIGNAL_MS) return;
  say(`${signal} again: killing every component still running (SIGKILL) and exiting now`, 'warn');
  supervisor.killAll();
  void output.flush(1_000).then(() => process.exit(EXIT_CODES.failed));
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => onSignal(signal));
}
// What came while main.ts was still loading this module (signal-hold.ts).
for (const { signal, at } of takeHeldSignals()) onSignal(signal, at);
// `npm start` runs the launcher in place of its shell (exec), so that npm's forwarded SIGTERM reaches
// it. When npm itself is killed outright, nothing is forwarded: the launcher is orphaned instead.
watchParent((parent) => stopEverything(`the process that started the launcher (pid ${parent}) is gone`, 0));
// Whoever read our output may be gone with our parent: the components are still stopped in order.
process.stdout.on('error', () => {});
process.on('exit', () => supervisor.killAll());
// A port another process holds fails the same way at every restart: say so once, start nothing.
const held = await heldPorts(portPlan.required);
if (held.length > 0 && !stopping) {
  stopping = true;
  say(heldPortsMessage(held, runningTokenHolder(`${tokenFile}.pid`)), 'error');
  await output.flush(1_000);
  process.exit(EXIT_CODES.failed);
}
if (!stopping) {
  readiness.start();
  void supervisor.start();
}
