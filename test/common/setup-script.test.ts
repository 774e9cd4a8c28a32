import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { nodedirFor } from '../../scripts/native-addon.mjs';
import { setupLockName } from '../../scripts/setup-lock.mjs';

/**
 * `npm start` (and `npm run goods`, ...) in a project folder installed and built by root and run by
 * a user of its own, who cannot write it: scripts/setup.mjs ran the build all the same, which writes
 * src/gen/ and dist/, so it failed with EACCES and a stack (`open 'src/gen/descriptors.ts'`) and
 * nothing started. It now runs the build that is there, and says so.
 *
 * Root may write any folder: as root, setup runs as nobody, for whom the root-owned copy is
 * read-only; as another user, the copy is made read-only (chmod a-w).
 */
const NOBODY = 65_534;
const asRoot = process.getuid?.() === 0;

let project: string;
let home: string;

/** The parts of an installed, built project that setup looks at, in `project`. */
function installedProject(options: { built: boolean }): void {
  mkdirSync(join(project, 'scripts'));
  copyFileSync('scripts/setup.mjs', join(project, 'scripts/setup.mjs'));
  copyFileSync('scripts/native-addon.mjs', join(project, 'scripts/native-addon.mjs'));
  copyFileSync('scripts/setup-lock.mjs', join(project, 'scripts/setup-lock.mjs'));
  copyFileSync('package.json', join(project, 'package.json'));
  mkdirSync(join(project, 'node_modules/@grpc/grpc-js'), { recursive: true });
  mkdirSync(join(project, 'node_modules/.bin'), { recursive: true });
  writeFileSync(join(project, 'node_modules/.bin/buf'), '');
  mkdirSync(join(project, 'src/gen'), { recursive: true });
  if (options.built) {
    mkdirSync(join(project, 'dist/launcher'), { recursive: true });
    writeFileSync(join(project, 'dist/launcher/main.js'), '');
  }
  if (!asRoot) setWritable(false);
}

/** Every folder of the copy writable by its owner or not (a user's own copy made read-only). */
function setWritable(writable: boolean): void {
  const folders = (dir: string): string[] => [
    dir,
    ...readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .flatMap((entry) => folders(join(dir, entry.name))),
  ];
  for (const folder of folders(project)) chmodSync(folder, writable ? 0o755 : 0o555);
}

function setup(timeout = 60_000, args: string[] = []): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, ['scripts/setup.mjs', ...args], {
    cwd: project,
    encoding: 'utf8',
    env: { ...process.env, HOME: home, npm_config_cache: join(home, '.npm') },
    timeout,
    ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** Every path under the copy, to show that setup wrote nothing. */
function contents(dir = project): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? [path, ...contents(path)] : [path];
  });
}

beforeEach(() => {
  project = mkdtempSync(join(tmpdir(), 'setup-script-'));
  home = mkdtempSync(join(tmpdir(), 'setup-script-home-'));
  // mkdtemp makes them 0700: the user setup runs as must reach the copy and own its home.
  chmodSync(project, 0o755);
  if (asRoot) spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, home]);
});
afterEach(() => {
  if (!asRoot) setWritable(true);
  rmSync(project, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

describe('scripts/setup.mjs in a project folder this user cannot write', () => {
  it('runs the build that is there instead of building, and says so', () => {
    installedProject({ built: true });
    const before = contents();
    const result = setup();
    expect(result.output).toContain(
      `cannot write src/gen/ or dist/ in ${project}: running the build in dist/ as it is`,
    );
    expect(result.output).not.toContain('EACCES');
    expect(result.status, result.output).toBe(0);
    expect(contents()).toEqual(before);
  });

  it('says that its owner must build it when there is no build, and builds nothing', () => {
    installedProject({ built: false });
    const before = contents();
    const result = setup();
    expect(result.output).toContain(`${project} has no build (dist/)`);
    expect(result.output).toContain('its owner runs npm ci and npm run build there first');
    expect(result.output).not.toContain('EACCES');
    expect(result.status).toBe(1);
    expect(contents()).toEqual(before);
  });

  it('refuses npm test and npm run lint in one line, which generate src/gen/ there', () => {
    installedProject({ built: true });
    const before = contents();
    const result = setup(60_000, ['--install-only', '--no-addon-check', '--generate']);
    expect(result.output).toContain(
      `cannot write src/gen/ in ${project}: npm test and npm run lint need a folder`,
    );
    expect(result.output).not.toContain('EACCES');
    expect(result.status).toBe(1);
    expect(contents()).toEqual(before);
  });
});

/**
 * `npm start` after Node's major version changed since `npm ci`: better-sqlite3, a native addon built
 * for the Node that installed it, did not load, and every service exited at start and was restarted
 * every 10 s. Setup now loads it first, rebuilds it (`npm rebuild better-sqlite3`) when it was built
 * for another Node, and stops with the command to run when the rebuild fails. Here a stand-in addon
 * throws Node's own error until its install script (which `npm rebuild` runs) has "built" it.
 */
describe('scripts/setup.mjs with a better-sqlite3 built for another Node.js', () => {
  const ABI_ERROR =
    "The module '/opt/shop/node_modules/better-sqlite3/build/Release/better_sqlite3.node'\n" +
    'was compiled against a different Node.js version using\nNODE_MODULE_VERSION 115. This version of Node.js requires\n' +
    'NODE_MODULE_VERSION 137. Please try re-compiling or re-installing\n' +
    'the module (for instance, using `npm rebuild` or `npm install`).';

  /** A writable project whose better-sqlite3 loads once `built` exists, and whose install script makes it or fails. */
  function projectWithAddon(options: {
    built: boolean;
    build: 'works' | 'slow' | 'fails' | 'wrong-headers';
    /** The project's own build, which setup runs without --install-only. */
    projectBuild?: string;
  }): string {
    const addon = join(project, 'node_modules/better-sqlite3');
    mkdirSync(join(project, 'scripts'));
    copyFileSync('scripts/setup.mjs', join(project, 'scripts/setup.mjs'));
    copyFileSync('scripts/native-addon.mjs', join(project, 'scripts/native-addon.mjs'));
    copyFileSync('scripts/setup-lock.mjs', join(project, 'scripts/setup-lock.mjs'));
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({
        name: 'setup-addon',
        private: true,
        type: 'module',
        // The build that setup runs without --install-only (the real one makes src/gen/ and dist/).
        scripts: { build: options.projectBuild ?? 'true' },
        dependencies: { 'better-sqlite3': '*' },
        allowScripts: { 'better-sqlite3': true },
      }),
    );
    mkdirSync(join(project, 'node_modules/@grpc/grpc-js'), { recursive: true });
    mkdirSync(join(project, 'node_modules/.bin'), { recursive: true });
    writeFileSync(join(project, 'node_modules/.bin/buf'), '');
    mkdirSync(join(project, 'src'));
    mkdirSync(addon, { recursive: true });
    writeFileSync(
      join(addon, 'package.json'),
      JSON.stringify({
        name: 'better-sqlite3',
        version: '12.0.0',
        main: 'index.js',
        scripts: { install: 'node build.js' },
      }),
    );
    writeFileSync(
      join(addon, 'index.js'),
      `const { existsSync } = require('node:fs');
module.exports = class Database {
  constructor() {
    if (existsSync(__dirname + '/built')) return;
    const error = new Error(${JSON.stringify(ABI_ERROR)});
    error.code = 'ERR_DLOPEN_FAILED';
    throw error;
  }
  close() {}
};
`,
    );
    writeFileSync(
      join(addon, 'build.js'),
      {
        works:
          "require('node:fs').writeFileSync(__dirname + '/built', process.env.npm_config_nodedir ?? '');\n",
        // A build that takes a while and counts its runs (in the project's rebuilds.log).
        slow:
          "const fs = require('node:fs'); fs.appendFileSync(__dirname + '/../../rebuilds.log', process.pid + '\\n');\n" +
          'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 700);\n' +
          "fs.writeFileSync(__dirname + '/built', '');\n",
        fails: "console.error('gyp ERR! stack Error: not found: make'); process.exit(1);\n",
        // Built against another Node's headers (an npmrc's nodedir): it succeeds and the addon still fails.
        'wrong-headers': '',
      }[options.build],
    );
    if (options.built) writeFileSync(join(addon, 'built'), '');
    return addon;
  }

  function setupInstallOnly(
    args: readonly string[] = ['--install-only'],
    env: NodeJS.ProcessEnv = {},
  ): { status: number | null; output: string } {
    const result = spawnSync(process.execPath, ['scripts/setup.mjs', ...args], {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, MYSQL_URL: '', HOME: home, npm_config_cache: join(home, '.npm'), ...env },
      timeout: 120_000,
    });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  }

  it('rebuilds it with npm rebuild better-sqlite3, says so in one line, and goes on', () => {
    const addon = projectWithAddon({ built: false, build: 'works' });
    // An npmrc's nodedir (exported by npm to the scripts it runs) naming another Node's headers.
    const result = setupInstallOnly(['--install-only'], { npm_config_nodedir: '/opt/node-20' });
    expect(result.output).toContain(
      `setup: better-sqlite3 does not load under Node.js ${process.version} (it was built for NODE_MODULE_VERSION 115, ` +
        'this Node.js needs 137): rebuilding it (npm rebuild better-sqlite3)',
    );
    expect(result.status, result.output).toBe(0);
    expect(existsSync(join(addon, 'built'))).toBe(true);
    // Built with this Node's own headers where its prefix has them (so offline too), else npm's nodedir.
    expect(readFileSync(join(addon, 'built'), 'utf8')).toBe(nodedirFor() ?? '/opt/node-20');
  }, 120_000);

  it('stops, naming the command to run, when the rebuild fails', () => {
    const addon = projectWithAddon({ built: false, build: 'fails' });
    const result = setupInstallOnly();
    expect(result.output).toContain(
      `setup: better-sqlite3 could not be rebuilt for Node.js ${process.version}, so nothing is started: ` +
        `run npm rebuild better-sqlite3 (or npm ci) under Node.js ${process.version}`,
    );
    expect(result.status).toBe(1);
    expect(existsSync(join(addon, 'built'))).toBe(false);
  }, 120_000);

  // With MYSQL_URL the services never open SQLite, and better-sqlite3 loads its binary on the first
  // open: they ran before setup checked it, and a machine without a compiler must not stop them now.
  it('goes on, saying so, when the rebuild fails but MYSQL_URL has the services store in MySQL', () => {
    projectWithAddon({ built: false, build: 'fails' });
    const mysql = { MYSQL_URL: 'mysql://shop:secret@127.0.0.1:3306/shop' };
    const result = setupInstallOnly([], mysql);
    expect(result.output).toContain(
      `setup: better-sqlite3 could not be rebuilt for Node.js ${process.version}, and the SQLite store needs it: ` +
        `run npm rebuild better-sqlite3 (or npm ci) under Node.js ${process.version}`,
    );
    expect(result.output).toContain(
      'before SQLite is used; MYSQL_URL is set, so the services store in MySQL and start without it',
    );
    expect(result.output).not.toContain('secret');
    expect(result.status, result.output).toBe(0);
    // The tests need SQLite whatever MYSQL_URL says.
    expect(setupInstallOnly(['--install-only'], mysql).status).toBe(1);
  }, 120_000);

  // npm run lint (tsc, buf, biome) never loads it: a machine without a compiler must not stop it.
  it('leaves it alone under --no-addon-check, as npm run lint runs setup', () => {
    const addon = projectWithAddon({ built: false, build: 'fails' });
    const result = setupInstallOnly(['--install-only', '--no-addon-check']);
    expect(result.output).not.toContain('better-sqlite3');
    expect(result.status, result.output).toBe(0);
    expect(existsSync(join(addon, 'built'))).toBe(false);
    const { scripts } = JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(scripts.prelint).toContain('node scripts/setup.mjs --install-only --no-addon-check');
    expect(scripts.pretest).not.toContain('--no-addon-check');
  }, 120_000);

  // npm rebuild obeys ignore-scripts (an npmrc's, against install scripts): it succeeds without
  // building, and setup blamed npm's nodedir.
  it("stops, naming npm's ignore-scripts, when npm rebuild ran no build script", () => {
    const addon = projectWithAddon({ built: false, build: 'works' });
    const result = setupInstallOnly(['--install-only'], { npm_config_ignore_scripts: 'true' });
    expect(result.output).toContain(
      "it still does not load: it was built for NODE_MODULE_VERSION 115, this Node.js needs 137; npm's " +
        'ignore-scripts is true, so npm rebuild ran no build script: npm rebuild better-sqlite3 --ignore-scripts=false runs it)',
    );
    expect(result.output).not.toContain('nodedir`');
    expect(result.status).toBe(1);
    expect(existsSync(join(addon, 'built'))).toBe(false);
  }, 120_000);

  it("stops, naming npm's nodedir, when the rebuilt addon still does not load", () => {
    projectWithAddon({ built: false, build: 'wrong-headers' });
    const result = setupInstallOnly();
    expect(result.output).toContain(
      `setup: better-sqlite3 could not be rebuilt for Node.js ${process.version} (it still does not load: it was built ` +
        "for NODE_MODULE_VERSION 115, this Node.js needs 137; npm's nodedir, `npm config get nodedir`, may name another " +
        "Node's headers), so nothing is started",
    );
    expect(result.status).toBe(1);
  }, 120_000);

  /** Whether a setup holds the project's lock: its name bound in the abstract namespace (Linux). */
  function lockHeld(): boolean {
    return readFileSync('/proc/net/unix', 'utf8').includes(`@${setupLockName(project).slice(1)}`);
  }

  /** `count` setups started at once in the project, with `args`: each one's exit status and output. */
  function setupsAtOnce(
    count: number,
    args: readonly string[],
  ): Promise<{ status: number | null; output: string }[]> {
    return Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise<{ status: number | null; output: string }>((resolve) => {
            const child = spawn(process.execPath, ['scripts/setup.mjs', ...args], {
              cwd: project,
              env: { ...process.env, MYSQL_URL: '', HOME: home, npm_config_cache: join(home, '.npm') },
              timeout: 120_000,
            });
            let output = '';
            child.stdout.on('data', (chunk: Buffer) => {
              output += chunk;
            });
            child.stderr.on('data', (chunk: Buffer) => {
              output += chunk;
            });
            child.on('close', (status) => resolve({ status, output }));
          }),
      ),
    );
  }

  // `npm run goods` and `npm run members` started together (two service units) each ran setup at
  // once: each rebuilt the addon, writing one binary together.
  it('rebuilds it once when setups start together, the others waiting for it', async () => {
    const addon = projectWithAddon({ built: false, build: 'slow' });
    const results = await setupsAtOnce(3, ['--install-only']);
    for (const result of results) expect(result.status, result.output).toBe(0);
    expect(readFileSync(join(project, 'rebuilds.log'), 'utf8').trim().split('\n')).toHaveLength(1);
    expect(existsSync(join(addon, 'built'))).toBe(true);
    const waited = results.filter((result) =>
      result.output.includes('setup: another setup is installing or building in this folder; waiting for it'),
    );
    expect(waited.length).toBeGreaterThanOrEqual(1);
  }, 120_000);

  // ... and each ran the build, so a component could start from a dist/ file another build rewrote.
  it('runs the builds of setups started together one after the other', async () => {
    writeFileSync(
      join(project, 'build.cjs'),
      "const fs = require('node:fs');\n" +
        "fs.appendFileSync('builds.log', 'start ' + process.pid + '\\n');\n" +
        'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);\n' +
        "fs.appendFileSync('builds.log', 'end ' + process.pid + '\\n');\n",
    );
    // npm test's setup rebuilds the addon first (a while), holding the lock.
    projectWithAddon({ built: false, build: 'slow', projectBuild: 'node build.cjs' });
    const results = await setupsAtOnce(3, []);
    for (const result of results) expect(result.status, result.output).toBe(0);
    const lines = readFileSync(join(project, 'builds.log'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(6);
    // Each build ends before the next starts.
    lines.forEach((line, index) => {
      expect(line.startsWith(index % 2 === 0 ? 'start ' : 'end ')).toBe(true);
      if (index % 2 === 1) expect(line.slice('end '.length)).toBe(lines[index - 1]?.slice('start '.length));
    });
  }, 120_000);

  // `npm test` (or `npm run lint`) started with a component's script: its setup waited for the
  // lock, then let it go before its `npm run generate`, which rewrote src/gen/ while the
  // component's setup, now holding the lock, compiled from it.
  it("makes src/gen/ for npm test under the lock, never during another setup's build", async () => {
    const step = (name: string): string =>
      "const fs = require('node:fs');\n" +
      `fs.appendFileSync('steps.log', 'start ${name}\\n');\n` +
      'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_000);\n' +
      `fs.appendFileSync('steps.log', 'end ${name}\\n');\n`;
    writeFileSync(join(project, 'build.cjs'), step('build'));
    writeFileSync(join(project, 'generate.cjs'), step('generate'));
    // npm test's setup rebuilds the addon first (a while), holding the lock.
    projectWithAddon({ built: false, build: 'slow', projectBuild: 'node build.cjs' });
    const manifest = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8'));
    const { pretest } = JSON.parse(readFileSync('package.json', 'utf8')).scripts;
    manifest.scripts = { ...manifest.scripts, generate: 'node generate.cjs', pretest };
    writeFileSync(join(project, 'package.json'), JSON.stringify(manifest));
    const env = { ...process.env, MYSQL_URL: '', HOME: home, npm_config_cache: join(home, '.npm') };
    const run = (command: string, args: string[]): Promise<number | null> =>
      new Promise((resolve) => {
        const child = spawn(command, args, { cwd: project, env, stdio: 'ignore', timeout: 60_000 });
        child.on('close', (status) => resolve(status));
      });
    // npm test's setup first; a component's setup, started while it holds the lock, waits for it.
    const test = run('npm', ['run', 'pretest']);
    await vi.waitFor(() => expect(lockHeld()).toBe(true), {
      timeout: 20_000,
      interval: 10,
    });
    const component = run(process.execPath, ['scripts/setup.mjs']);
    expect(await Promise.all([test, component])).toEqual([0, 0]);
    const lines = readFileSync(join(project, 'steps.log'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(4);
    // Each step ends before the next starts.
    lines.forEach((line, index) => {
      expect(line.startsWith(index % 2 === 0 ? 'start ' : 'end '), lines.join(', ')).toBe(true);
    });
  }, 120_000);

  // The lock is a name the kernel frees with its process: a setup killed during its build (Ctrl-C,
  // a container stopped) leaves nothing that holds the next one up, though the build it started
  // runs on (the lock's socket is not inherited).
  it('holds nobody up once the setup that held the lock is killed', async () => {
    writeFileSync(
      join(project, 'build.cjs'),
      "require('node:fs').writeFileSync('building', '');\n" +
        'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3_000);\n',
    );
    projectWithAddon({ built: true, build: 'fails', projectBuild: 'node build.cjs' });
    const holder = spawn(process.execPath, ['scripts/setup.mjs'], {
      cwd: project,
      env: { ...process.env, MYSQL_URL: '', HOME: home, npm_config_cache: join(home, '.npm') },
      stdio: 'ignore',
    });
    const closed = new Promise((resolve) => holder.on('close', resolve));
    await vi.waitFor(() => expect(existsSync(join(project, 'building'))).toBe(true), {
      timeout: 20_000,
      interval: 10,
    });
    expect(lockHeld()).toBe(true);
    holder.kill('SIGKILL');
    await closed;
    expect(lockHeld()).toBe(false);
    const result = setupInstallOnly();
    expect(result.output).not.toContain('waiting for it');
    expect(result.status, result.output).toBe(0);
  }, 120_000);

  // The first install builds better-sqlite3 too: with an npmrc's nodedir naming another Node's
  // headers it was built for that Node, and rebuilt at once by the check after it.
  it("installs the dependencies of a fresh folder with this Node's own headers", () => {
    const addon = projectWithAddon({ built: false, build: 'works' });
    const packed = spawnSync('npm', ['pack', '--silent', '--pack-destination', project], {
      cwd: addon,
      encoding: 'utf8',
      env: { ...process.env, HOME: home, npm_config_cache: join(home, '.npm') },
    });
    expect(packed.status, packed.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8'));
    manifest.dependencies['better-sqlite3'] = `file:./${packed.stdout.trim()}`;
    writeFileSync(join(project, 'package.json'), JSON.stringify(manifest));
    rmSync(join(project, 'node_modules'), { recursive: true });
    const result = setupInstallOnly(['--install-only'], { npm_config_nodedir: '/opt/node-20' });
    expect(result.output).toContain('setup: installing dependencies (first run only)');
    expect(result.output).not.toContain('rebuilding it');
    expect(result.status, result.output).toBe(0);
    expect(readFileSync(join(project, 'node_modules/better-sqlite3/built'), 'utf8')).toBe(
      nodedirFor() ?? '/opt/node-20',
    );
  }, 120_000);

  it('leaves an addon that loads alone', () => {
    projectWithAddon({ built: true, build: 'fails' });
    const result = setupInstallOnly();
    expect(result.output).not.toContain('better-sqlite3');
    expect(result.status, result.output).toBe(0);
  }, 120_000);
});
