import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { send } from '../helpers/http.js';
import { childPids, freePort, freePorts, launcherEnv, spawnComponent } from './support/processes.js';

/**
 * `npm start` on a machine whose environment names a proxy, as many behind a corporate one do:
 * grpc-js sent every channel through it, loopback included, and no component registered with the
 * distributor on 127.0.0.1 ("not registered with the distributor (UNAVAILABLE: No connection
 * established...)"). The proxy here is one that refuses connections, or one that accepts and never
 * answers.
 */
describe('npm start with a proxy in the environment', () => {
  let silentProxy: Server;
  const held = new Set<Socket>();
  const dataDirs: string[] = [];
  let launcher: ReturnType<typeof spawnComponent> | undefined;

  beforeAll(async () => {
    silentProxy = createServer((socket) => {
      held.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => held.delete(socket));
    });
    await new Promise<void>((resolve) => silentProxy.listen(0, '127.0.0.1', resolve));
  });
  afterEach(() => {
    if (launcher && launcher.child.exitCode === null) {
      const children = childPids(launcher.child.pid!);
      launcher.child.kill('SIGKILL');
      for (const pid of children) process.kill(pid, 'SIGKILL');
    }
    launcher = undefined;
    for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => silentProxy.close(resolve));
  });

  it.each([
    ['refuses connections', async () => `http://127.0.0.1:${await freePort()}`],
    [
      'accepts and never answers',
      async () => `http://127.0.0.1:${(silentProxy.address() as AddressInfo).port}`,
    ],
  ])(
    'registers every component and serves GET /goods when the proxy %s',
    async (_what, proxyUrl) => {
      const proxy = await proxyUrl();
      const dataDir = mkdtempSync(join(tmpdir(), 'shop-proxy-env-'));
      dataDirs.push(dataDir);
      const [distributorPort, gatewayPort] = await freePorts(2);
      const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
      launcher = spawnComponent('src/launcher/main.ts', [], {
        ...launcherEnv({ distributorPort, gatewayPort, dataDir }),
        http_proxy: proxy,
        https_proxy: proxy,
        grpc_proxy: proxy,
        no_proxy: '',
        no_grpc_proxy: '',
      });
      await vi.waitFor(
        async () => {
          const answer = await send(`${gatewayUrl}/goods`);
          expect(answer.body).toContain('"errormessage":"no data"');
        },
        { timeout: 60_000, interval: 250 },
      );
      expect(launcher.lines.join('\n')).not.toMatch(/not registered with the distributor/);
    },
    90_000,
  );
});
