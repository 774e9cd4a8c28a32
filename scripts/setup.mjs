// Makes a fresh clone runnable: installs dependencies when they are missing, then generates the
// protobuf code and compiles to dist/. Runs before `npm start`, the per-component scripts, and
// (install and generate only) before `npm test` and `npm run lint`.
//
// A project folder this user cannot write (installed and built by root, run by a user of its own)
// is run as it is: the build writes src/gen/ and dist/, so it failed there with EACCES and a
// stack, and nothing started. Its owner installs and builds it (`npm ci`, `npm run build`).
//
// A native addon built for another Node.js (its major version changed since `npm ci`) is rebuilt
// for this one; when that fails, setup stops with the command to run (see native-addon.mjs).
//
// Setups started together in one folder run one after the other (see setup-lock.mjs).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { ADDON, addonVerdict, loadAddon, nodedirFor, rebuildEnvironment } from './native-addon.mjs';
import { acquireSetupLock } from './setup-lock.mjs';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(args, env = process.env) {
  const result = spawnSync(npm, args, { stdio: 'inherit', env });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

/** Whether this user may write `path`, or, where it does not exist yet, the folder that would hold it. */
function writable(path, holder) {
  try {
    accessSync(existsSync(path) ? path : holder, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function who() {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.()}`;
  }
}

/** Whether npm's ignore-scripts is on (`npm config get ignore-scripts`), which npm rebuild obeys. */
function scriptsIgnored() {
  const result = spawnSync(npm, ['config', 'get', 'ignore-scripts'], { encoding: 'utf8' });
  return result.stdout?.trim() === 'true';
}

function refuse(missing, steps) {
  process.stderr.write(
    `setup: ${process.cwd()} has no ${missing}, and this user (${who()}) cannot write the folder: ` +
      `its owner runs ${steps} there first\n`,
  );
  process.exit(1);
}

const installOnly = process.argv.includes('--install-only');
// `--no-addon-check`: for scripts that never load the native addon (lint), which a missing compiler
// after a change of Node's major version must not stop.
const addonCheck = !process.argv.includes('--no-addon-check');
await acquireSetupLock();
if (!existsSync('node_modules/@grpc/grpc-js') || !existsSync('node_modules/.bin/buf')) {
  if (!writable('node_modules', '.')) refuse('dependencies (node_modules)', 'npm ci');
  process.stderr.write('setup: installing dependencies (first run only)...\n');
  // With this Node's own headers, as for a rebuild below: better-sqlite3 is built during the install.
  run(
    [existsSync('package-lock.json') ? 'ci' : 'install', '--no-audit', '--no-fund'],
    rebuildEnvironment(nodedirFor()),
  );
}
if (addonCheck && existsSync(`node_modules/${ADDON}/package.json`)) {
  const verdict = addonVerdict(loadAddon());
  const rebuild = `npm rebuild ${ADDON}`;
  const node = `Node.js ${process.version}`;
  // With MYSQL_URL the services store in MySQL and never open SQLite (better-sqlite3 loads its binary
  // on the first open), so they start without it; the tests (--install-only) need it all the same.
  const mysqlOnly = !installOnly && (process.env.MYSQL_URL ?? '') !== '';
  const mysqlGoesOn = mysqlOnly
    ? '; MYSQL_URL is set, so the services store in MySQL and start without it'
    : '';
  if (verdict.action === 'rebuild') {
    if (!writable(`node_modules/${ADDON}`, 'node_modules')) {
      process.stderr.write(
        `setup: ${ADDON} does not load under ${node} (${verdict.reason}), and this user (${who()}) cannot ` +
          `write ${process.cwd()}/node_modules: its owner runs ${rebuild} there under ${node}${mysqlOnly ? ' before SQLite is used' : ' first'}${mysqlGoesOn}\n`,
      );
      if (!mysqlOnly) process.exit(1);
    } else {
      process.stderr.write(
        `setup: ${ADDON} does not load under ${node} (${verdict.reason}): rebuilding it (${rebuild})\n`,
      );
      const result = spawnSync(npm, ['rebuild', ADDON], {
        stdio: 'inherit',
        env: rebuildEnvironment(nodedirFor()),
      });
      const after = result.status === 0 ? addonVerdict(loadAddon()) : undefined;
      if (after?.action !== 'ok') {
        // npm's ignore-scripts (an npmrc's, against install scripts) makes npm rebuild succeed without building.
        const why = !after
          ? ''
          : scriptsIgnored()
            ? ` (it still does not load: ${after.reason}; npm's ignore-scripts is true, so npm rebuild ran no build script: ${rebuild} --ignore-scripts=false runs it)`
            : ` (it still does not load: ${after.reason}; npm's nodedir, \`npm config get nodedir\`, may name another Node's headers)`;
        process.stderr.write(
          `setup: ${ADDON} could not be rebuilt for ${node}${why}, ` +
            `${mysqlOnly ? 'and the SQLite store needs it' : 'so nothing is started'}: run ${rebuild} (or npm ci) under ${node}, which needs make, a C++ compiler, python3 ` +
            `and this Node's headers (node-gyp downloads them unless npm_config_nodedir names the folder holding include/node), ` +
            `${mysqlOnly ? 'before SQLite is used' : 'then this command again'}${mysqlGoesOn}\n`,
        );
        if (!mysqlOnly) process.exit(1);
      }
    }
  } else if (verdict.action === 'other') {
    process.stderr.write(
      `setup: ${ADDON} does not load under ${node}, and the SQLite store needs it: ${verdict.reason}\n`,
    );
  }
}
// `--install-only`: for scripts that need the dependencies but not dist/ (test, lint).
if (!installOnly) {
  const blocked = [
    ['src/gen/', writable('src/gen', 'src')],
    ['dist/', writable('dist', '.')],
  ].flatMap(([folder, ok]) => (ok ? [] : [folder]));
  if (blocked.length === 0) run(['run', '--silent', 'build']);
  else if (!existsSync('dist/launcher/main.js')) refuse('build (dist/)', 'npm ci and npm run build');
  else {
    process.stderr.write(
      `setup: this user (${who()}) cannot write ${blocked.join(' or ')} in ${process.cwd()}: ` +
        'running the build in dist/ as it is (its owner builds it again, npm run build, after each update)\n',
    );
  }
} else if (process.argv.includes('--generate')) {
  // `--generate`: src/gen/ for the tests and lint, made under the lock as a build makes it: run
  // after the lock was let go, it rewrote src/gen/ while a component's setup compiled from it.
  // In a folder this user cannot write (an installed copy), generating failed with EACCES and a stack.
  if (!writable('src/gen', 'src')) {
    process.stderr.write(
      `setup: this user (${who()}) cannot write src/gen/ in ${process.cwd()}: ` +
        'npm test and npm run lint need a folder they can write (a clone of your own)\n',
    );
    process.exit(1);
  }
  run(['run', 'generate']);
}
