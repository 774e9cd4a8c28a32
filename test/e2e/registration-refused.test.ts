import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  createDistributorServer,
  type DistributorServerOptions,
} from '../../src/distributor/distributor-server.js';
import {
  type ComponentProcess,
  descendantPids,
  freePort,
  isRunning,
  launcherEnv,
  spawnComponent,
} from './support/processes.js';

// A component the distributor refuses for good (see src/common/retry-policy.ts) must not run on
// unregistered, reporting SERVING while nothing routes to it: it stops in order and exits 3. With a
// registry token, only a refusal that came with the distributor's proof is taken as for good.
const TOKEN = 'the-right-token-of-this-test';
const dataDir = mkdtempSync(join(tmpdir(), 'shop-refused-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startDistributor(options: DistributorServerOptions): Promise<string> {
  const distributor = createDistributorServer(options);
  const port = await distributor.listen('127.0.0.1', 0);
  cleanups.push(() => distributor.stop(100));
  return `127.0.0.1:${port}`;
}

function start(entry: string, distributor: string, env: NodeJS.ProcessEnv): ComponentProcess {
  const component = spawnComponent(entry, ['--port', '0', '--distributor', distributor], {
    DATA_DIR: dataDir,
    MYSQL_URL: '',
    ...env,
  });
  cleanups.push(() => {
    if (component.child.exitCode === null) component.child.kill('SIGKILL');
  });
  return component;
}

type LogLine = { level: number; msg: string; event?: string; reason?: string };
const logLines = (component: ComponentProcess): LogLine[] =>
  component.lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogLine);

describe('a registration refused for good', () => {
  it.each([
    [
      'members, whose description breaks a limit (INVALID_ARGUMENT)',
      'src/services/members/main.ts',
      { limits: { descriptorSetBytes: 1024 } },
      {},
      'INVALID_ARGUMENT: invalid registration: descriptor_set must be at most 1024 bytes',
      undefined,
    ],
    [
      'purchases, with the token, whose description breaks a limit (INVALID_ARGUMENT, proven)',
      'src/services/purchases/main.ts',
      { registryToken: TOKEN, limits: { descriptorSetBytes: 1024 } },
      { SHOP_REGISTRY_TOKEN: TOKEN },
      'INVALID_ARGUMENT: invalid registration: descriptor_set must be at most 1024 bytes',
      undefined,
    ],
    [
      'the gateway, with no token (UNAUTHENTICATED)',
      'src/gateway/main.ts',
      { registryToken: TOKEN },
      {},
      'UNAUTHENTICATED: missing credentials',
      "this component has no registry token: set SHOP_REGISTRY_TOKEN to the distributor's",
    ],
  ] as const)(
    '%s: stops in order with a clear error and exit code 3',
    async (_name, entry, options, env, why, hint) => {
      const distributor = await startDistributor(options);
      const component = start(entry, distributor, env);
      expect(await component.exited()).toBe(3);
      const lines = logLines(component);
      const refused = lines.filter((line) => line.event === 'refused');
      expect(refused).toHaveLength(1);
      expect(refused[0]!.level).toBe(50);
      expect(refused[0]!.msg).toContain(`the distributor refused this node (${why}`);
      expect(refused[0]!.msg).toContain('retrying cannot change that, so registration stops here');
      // The operator is told which setting to fix, not only what the distributor wants on the wire.
      if (hint) expect(refused[0]!.msg).toContain(` — ${hint}`);
      else expect(refused[0]!.msg).not.toContain(' — ');
      expect(lines).toContainEqual(
        expect.objectContaining({ msg: 'stopping', reason: 'refused by the distributor' }),
      );
      expect(lines.at(-1)!.msg, component.lines.join('\n')).toBe('stopped');
    },
  );

  it('with a wrong token: not stopped, since the refusal proves nothing; it warns at every attempt and retries', async () => {
    // The distributor cannot prove itself to a component whose token is not its own, and a process
    // holding its port could send the same refusal: so the component runs on, unregistered, saying so.
    const distributor = await startDistributor({ registryToken: TOKEN });
    const component = start('src/services/goods/main.ts', distributor, {
      SHOP_REGISTRY_TOKEN: 'a-wrong-token-of-this-test',
    });
    const refusals = (): LogLine[] => logLines(component).filter((line) => line.event === 'refused');
    await vi.waitFor(() => expect(refusals().length).toBeGreaterThanOrEqual(2), { timeout: 20_000 });
    expect(component.child.exitCode).toBeNull();
    for (const refusal of refusals()) {
      expect(refusal.level).toBe(40);
      expect(refusal.msg).toContain(
        `${distributor} refused this node (UNAUTHENTICATED: invalid credentials: the registry token is wrong) without proving that it holds the registry token, so the refusal is not taken as final: it may come from another process holding the distributor's port while it restarts; if it is the distributor's, what it names needs fixing (this component's SHOP_REGISTRY_TOKEN not the distributor's, a clock more than 5 minutes off, something relaying the connection); retrying with backoff`,
      );
      expect(refusal.msg).toMatch(/; retrying with backoff$/);
    }
    expect(logLines(component).some((line) => line.msg === 'stopping')).toBe(false);
  });

  it('under the launcher: the refused components are not restarted, the rest stop in order, exit 3', async () => {
    // The launcher's components are sent to a distributor of this test's, which knows their token
    // and refuses their descriptor sets, over its limit.
    const distributor = await startDistributor({
      registryToken: TOKEN,
      limits: { descriptorSetBytes: 1024 },
    });
    const launcher = spawnComponent('src/launcher/main.ts', [], {
      ...launcherEnv({ distributorPort: await freePort(), dataDir }),
      DISTRIBUTOR_ADDRESS: distributor,
      SHOP_REGISTRY_TOKEN: TOKEN,
    });
    cleanups.push(() => {
      if (launcher.child.exitCode === null) launcher.child.kill('SIGKILL');
    });
    const said = await launcher.waitForLine(/^\[launcher\] \w+ cannot run /);
    const tree = descendantPids(launcher.child.pid!);
    expect(await launcher.exited()).toBe(3);
    expect(said).toMatch(
      /^\[launcher\] (goods|members|purchases|gateway) cannot run \(refused by the distributor: see its message above\): stopping every component$/,
    );
    expect(launcher.lines.join('\n')).toMatch(/ the distributor refused this node \(INVALID_ARGUMENT: /);
    expect(launcher.lines).toContain('[launcher] all stopped; exiting with code 3');
    expect(launcher.lines.some((line) => / starting it again in /.test(line))).toBe(false);
    expect(tree.filter(isRunning)).toEqual([]);
  }, 60_000);
});
