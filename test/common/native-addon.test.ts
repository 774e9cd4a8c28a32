import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addonVerdict, loadAddon, nodedirFor, rebuildEnvironment } from '../../scripts/native-addon.mjs';

/**
 * better-sqlite3 built by `npm ci` under one major version of Node and loaded under another: every
 * service exited at start and the launcher restarted it every 10 s. scripts/setup.mjs now tells
 * that case from the error that loading it throws, and rebuilds it with this Node's own headers.
 */

// Node 24's error for a binary that Node 20 built (ERR_DLOPEN_FAILED), as loading it printed.
const OTHER_ABI = `The module '/opt/shop/node_modules/better-sqlite3/build/Release/better_sqlite3.node'
was compiled against a different Node.js version using
NODE_MODULE_VERSION 115. This version of Node.js requires
NODE_MODULE_VERSION 137. Please try re-compiling or re-installing
the module (for instance, using \`npm rebuild\` or \`npm install\`).`;

// The \`bindings\` package's error when no binary was built (npm ci --ignore-scripts).
const NO_BINARY = `Could not locate the bindings file. Tried:
 → /opt/shop/node_modules/better-sqlite3/build/better_sqlite3.node
 → /opt/shop/node_modules/better-sqlite3/build/Release/better_sqlite3.node`;

describe('addonVerdict', () => {
  it('rebuilds an addon built for another Node.js, naming both ABI versions', () => {
    expect(addonVerdict({ code: 'ERR_DLOPEN_FAILED', message: OTHER_ABI })).toEqual({
      action: 'rebuild',
      reason: 'it was built for NODE_MODULE_VERSION 115, this Node.js needs 137',
    });
    expect(addonVerdict({ message: 'Module did not self-register: /x/better_sqlite3.node.' })).toEqual({
      action: 'rebuild',
      reason: 'it was built for another Node.js',
    });
  });

  it('rebuilds an addon whose binary is missing', () => {
    expect(addonVerdict({ message: NO_BINARY })).toEqual({
      action: 'rebuild',
      reason: 'its binary is missing',
    });
  });

  it('leaves any other failure to a warning, and an addon that loads alone', () => {
    const glibc = "/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found\n(required by x)";
    expect(addonVerdict({ code: 'ERR_DLOPEN_FAILED', message: glibc })).toEqual({
      action: 'other',
      reason: "/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found",
    });
    expect(addonVerdict(undefined)).toEqual({ action: 'ok' });
  });

  it('finds that the installed addon loads under the Node that runs the tests', () => {
    expect(loadAddon()).toBeUndefined();
  });

  it('says that loading it did not end in time, a warning and no rebuild, where it said "exit SIGTERM"', () => {
    const project = mkdtempSync(join(tmpdir(), 'native-addon-hang-'));
    try {
      mkdirSync(join(project, 'node_modules/better-sqlite3'), { recursive: true });
      writeFileSync(join(project, 'node_modules/better-sqlite3/index.js'), 'for (;;);\n');
      const error = loadAddon(project, 300);
      expect(error).toEqual({
        code: 'ETIMEDOUT',
        message: 'loading it in a child process did not end within 0.3 s',
      });
      expect(addonVerdict(error)).toEqual({
        action: 'other',
        reason: 'loading it in a child process did not end within 0.3 s',
      });
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
});

describe('nodedirFor', () => {
  let prefix: string;
  beforeEach(() => {
    prefix = mkdtempSync(join(tmpdir(), 'native-addon-'));
    mkdirSync(join(prefix, 'bin'));
  });
  afterEach(() => rmSync(prefix, { recursive: true, force: true }));

  const headers = (major: number): void => {
    mkdirSync(join(prefix, 'include/node'), { recursive: true });
    writeFileSync(
      join(prefix, 'include/node/node_version.h'),
      `#define NODE_MAJOR_VERSION ${major}\n#define NODE_MINOR_VERSION 22\n`,
    );
  };

  it('is the prefix of a Node.js tarball, which holds its own headers, so node-gyp needs no download', () => {
    headers(24);
    expect(nodedirFor(join(prefix, 'bin/node'), '24.22.3')).toBe(prefix);
    expect(rebuildEnvironment(prefix, { PATH: '/bin' })).toEqual({
      PATH: '/bin',
      npm_config_nodedir: prefix,
    });
  });

  it("is none where the prefix holds no headers, or another major version's", () => {
    expect(nodedirFor(join(prefix, 'bin/node'), '24.22.3')).toBeUndefined();
    headers(20);
    expect(nodedirFor(join(prefix, 'bin/node'), '24.22.3')).toBeUndefined();
    expect(rebuildEnvironment(undefined, { PATH: '/bin' })).toEqual({ PATH: '/bin' });
  });
});
