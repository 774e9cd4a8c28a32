import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

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

function setup(): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, ['scripts/setup.mjs'], {
    cwd: project,
    encoding: 'utf8',
    env: { ...process.env, HOME: home, npm_config_cache: join(home, '.npm') },
    timeout: 60_000,
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
});
