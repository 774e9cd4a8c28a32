import { cpSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { COMPONENT_NODE_FLAGS, componentEnv } from '../../src/launcher/node-flags.js';
import { send } from '../helpers/http.js';
import {
  type ComponentProcess,
  canBind,
  descendantPids,
  freePorts,
  isRunning,
  spawnLogged,
} from './support/processes.js';

// `npm start` run as a user, docker or systemd runs it, in a copy of the project (its own src/gen
// and dist/, so that its build cannot disturb the other test files), then stopped from outside.
const ROOT = realpathSync(new URL('../..', import.meta.url));
const LEFT_OUT = new Set(['node_modules', 'dist', 'data', '.git', 'src/gen', 'bench-results', 'coverage']);
const STOP_ORDER = ['gateway', 'purchases', 'members', 'goods', 'distributor'];

describe('npm start, stopped from outside', () => {
  let copy: string;
  let dataDir: string;
  let running: { npm: ComponentProcess; tree: number[] } | undefined;

  beforeAll(() => {
    copy = mkdtempSync(join(tmpdir(), 'shop-npm-start-'));
    cpSync(ROOT, copy, { recursive: true, filter: (source) => !LEFT_OUT.has(relative(ROOT, source)) });
    symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(copy, 'node_modules'));
    dataDir = mkdtempSync(join(tmpdir(), 'shop-npm-start-data-'));
  });
  afterEach(() => {
    // A failed test must not leave a shop running: kill whatever of its tree is left.
    for (const pid of running?.tree ?? []) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    running = undefined;
  });
  afterAll(() => {
    rmSync(copy, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Starts `npm start` with every port its own, waits until the gateway routes to all three services. */
  async function npmStart(
    npmArgs: string[],
    env: NodeJS.ProcessEnv = {},
  ): Promise<{ npm: ComponentProcess; ports: number[] }> {
    const ports = await freePorts(5);
    const [distributor, goods, members, purchases, gateway] = ports;
    const npm = spawnLogged('npm', ['start', ...npmArgs], {
      cwd: copy,
      env: {
        ...process.env,
        npm_config_update_notifier: 'false',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'pretty',
        DISTRIBUTOR_PORT: String(distributor),
        DISTRIBUTOR_ADDRESS: `127.0.0.1:${distributor}`,
        GOODS_PORT: String(goods),
        MEMBERS_PORT: String(members),
        PURCHASES_PORT: String(purchases),
        GATEWAY_PORT: String(gateway),
        GATEWAY_HOST: '127.0.0.1',
        DATA_DIR: dataDir,
        MYSQL_URL: '',
        ...env,
      },
    });
    running = { npm, tree: [] };
    const gatewayUrl = `http://127.0.0.1:${gateway}`;
    for (const [path, answer] of [
      ['/goods', '"no data"'],
      ['/purchases?userid=1', '"no data"'],
      ['/members?username=x&password=y', 'Invalid password'],
    ]) {
      await vi.waitFor(
        async () => {
          expect(npm.child.exitCode, npm.lines.join('\n')).toBeNull();
          expect((await send(`${gatewayUrl}${path}`)).body).toContain(answer);
        },
        { timeout: 90_000, interval: 250 },
      );
    }
    return { npm, ports };
  }

  /** The processes under npm once the five components run: the launcher (and a shell, if any) and them. */
  function processTree(npm: ComponentProcess): number[] {
    const tree = descendantPids(npm.child.pid!);
    running!.tree = [npm.child.pid!, ...tree];
    return tree;
  }

  /** The process runs with the Node flags and the environment the README's Memory section names. */
  function expectComponentSettings(pid: number): void {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(argv).toEqual(expect.arrayContaining([...COMPONENT_NODE_FLAGS]));
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    for (const [name, value] of Object.entries(componentEnv(process.env))) {
      expect(environ).toContain(`${name}=${value}`);
    }
  }

  /** Each component's "stopped" line, in the order they came. */
  function stopOrder(lines: readonly string[]): string[] {
    return lines.flatMap((line) => /^\[(\w+) *\] .*INFO +stopped$/.exec(line)?.[1] ?? []);
  }

  it('SIGTERM to the npm pid stops every component in order, frees every port, and npm exits', async () => {
    const { npm, ports } = await npmStart([]);
    const tree = processTree(npm);
    // The launcher and its five components at least (a shell between npm and the launcher is not needed).
    expect(tree.length).toBeGreaterThanOrEqual(6);
    // Each component runs with the Node flags and the environment the README's Memory section names.
    const components = tree
      .map((pid) => ({ pid, argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0') }))
      .filter(
        ({ argv }) =>
          argv.some((arg) => /dist\/(services\/)?\w+\/main\.js$/.test(arg)) &&
          !argv.some((arg) => arg.endsWith('launcher/main.js')),
      );
    expect(components).toHaveLength(5);
    for (const { pid } of components) expectComponentSettings(pid);

    npm.child.kill('SIGTERM');
    await vi.waitFor(() => expect(npm.child.exitCode ?? npm.child.signalCode).not.toBeNull(), {
      timeout: 30_000,
    });
    await vi.waitFor(() => expect(tree.filter(isRunning)).toEqual([]), { timeout: 30_000 });
    // The launcher's last line may still be in the pipe when its process is seen gone.
    await npm.waitForLine(/^\[launcher\] all stopped$/, 10_000);
    // npm forwards SIGTERM to its script's process: the launcher itself, not a shell that would die alone.
    expect(npm.lines).toContain('[launcher] SIGTERM: stopping every component');
    expect(stopOrder(npm.lines)).toEqual(STOP_ORDER);
    for (const port of ports) expect(await canBind(port)).toBe(true);
  }, 180_000);

  it("LOG_FORMAT=json npm start -s, as the README says to run it: every line is a [name] prefix and one JSON record, npm's own lines left out", async () => {
    // Without -s npm prints `> grpc-shop@0.1.0 prestart` and more lines of its own first,
    // which a collector reading JSON lines refuses.
    const { npm } = await npmStart(['-s'], { LOG_FORMAT: 'json' });
    processTree(npm);
    npm.child.kill('SIGTERM');
    await vi.waitFor(() => expect(npm.child.exitCode ?? npm.child.signalCode).not.toBeNull(), {
      timeout: 30_000,
    });
    await npm.waitForLine(/^\[launcher\] \{.*"all stopped"/, 10_000);
    expect(npm.lines.length).toBeGreaterThan(20);
    for (const line of npm.lines) {
      const record = /^\[[a-z]+ *\] (\{.*\})$/.exec(line)?.[1];
      expect(record, line).toBeDefined();
      expect(() => JSON.parse(record!), line).not.toThrow();
    }
  }, 180_000);

  it('npm killed without warning (SIGKILL): the launcher notices and stops every component in order', async () => {
    // The project as the test above built it; built here when this test runs alone.
    if (!existsSync(join(copy, 'dist/launcher/main.js'))) {
      const build = spawnLogged('npm', ['run', 'build'], { cwd: copy, env: process.env });
      expect(await build.exited(), build.lines.join('\n')).toBe(0);
    }
    const { npm, ports } = await npmStart(['--ignore-scripts']);
    const tree = processTree(npm);
    expect(tree.length).toBeGreaterThanOrEqual(6);

    npm.child.kill('SIGKILL');
    await vi.waitFor(() => expect(tree.filter(isRunning)).toEqual([]), { timeout: 30_000 });
    // The launcher's last line may still be in the pipe when its process is seen gone.
    await npm.waitForLine(/^\[launcher\] all stopped$/, 10_000);
    expect(npm.lines.join('\n')).toMatch(
      /\[launcher\] the process that started the launcher \(pid \d+\) is gone/,
    );
    expect(stopOrder(npm.lines)).toEqual(STOP_ORDER);
    for (const port of ports) expect(await canBind(port)).toBe(true);
  }, 180_000);

  it('npm run goods: SIGTERM to the npm pid reaches goods, which leaves the distributor and stops', async () => {
    const distributor = createDistributorServer();
    const address = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
    try {
      const npm = spawnLogged('npm', ['run', 'goods', '--', '--port', '0', '--distributor', address], {
        cwd: copy,
        env: { ...process.env, npm_config_update_notifier: 'false', DATA_DIR: dataDir, MYSQL_URL: '' },
      });
      running = { npm, tree: [] };
      await vi.waitFor(
        () => {
          expect(npm.child.exitCode, npm.lines.join('\n')).toBeNull();
          expect(distributor.registry.snapshot().nodes.map((node) => node.name)).toEqual(['goods']);
        },
        { timeout: 90_000, interval: 250 },
      );
      const tree = processTree(npm);
      // Through scripts/component.sh, goods runs with the settings npm start gives every component.
      const goods = tree.filter((pid) =>
        readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('dist/services/goods/main.js'),
      );
      expect(goods).toHaveLength(1);
      expectComponentSettings(goods[0]!);
      npm.child.kill('SIGTERM');
      await vi.waitFor(() => expect(tree.filter(isRunning)).toEqual([]), { timeout: 30_000 });
      expect(npm.lines.map((line) => (line.startsWith('{') ? JSON.parse(line).msg : line))).toEqual(
        expect.arrayContaining(['stopping', 'draining', 'stopped']),
      );
      expect(distributor.registry.snapshot().nodes).toEqual([]);
    } finally {
      await distributor.stop(100);
    }
  }, 180_000);
});
