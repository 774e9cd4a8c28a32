import { AsyncResource } from 'node:async_hooks';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { SUPERVISED_ENV } from '../../src/common/process-lifecycle.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { http } from '../helpers/http.js';
import { freePort, type SpawnOptions, spawnComponent } from './support/processes.js';

/** What the gateway's entry point sets up in its own process, beyond what its factory builds. */
describe('the gateway process', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** A distributor in this process and the gateway as a process routing from it, listening. */
  async function startGatewayProcess(
    args: string[],
    env: NodeJS.ProcessEnv = {},
    options: SpawnOptions = {},
  ) {
    const distributor = createDistributorServer();
    const distributorAddress = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
    cleanups.push(() => distributor.stop(100));
    const port = await freePort();
    const gateway = spawnComponent(
      'src/gateway/main.ts',
      ['--host', '127.0.0.1', '--port', String(port), '--distributor', distributorAddress, ...args],
      env,
      options,
    );
    cleanups.push(() => void gateway.child.kill('SIGKILL'));
    await gateway.waitForLine(/listening on http/, 30_000);
    return { gateway, port };
  }

  it("replaces AsyncResource.prototype.bind before it opens any stream where Node's own adds the deprecated accessor (20, 24), not where it does not (26)", async () => {
    const { gateway } = await startGatewayProcess([], { LOG_LEVEL: 'debug' });
    const replaced = gateway.lines.findIndex((line) =>
      line.includes('AsyncResource.prototype.bind replaced'),
    );
    const nodeAddsAccessor =
      Object.getOwnPropertyDescriptor(
        new AsyncResource('probe').bind(() => 1),
        'asyncResource',
      )?.get !== undefined;
    if (!nodeAddsAccessor) {
      expect(replaced).toBe(-1);
      return;
    }
    expect(replaced).toBeGreaterThanOrEqual(0);
    expect(replaced).toBeLessThan(gateway.lines.findIndex((line) => line.includes('listening on http')));
  }, 60_000);

  it('takes its bounds from the command line (--max-pipelined here)', async () => {
    const { port } = await startGatewayProcess(['--max-pipelined', '1']);
    const answers = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
      socket.write('GET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n'.repeat(2));
      setTimeout(() => socket.destroy(), 5_000).unref();
    });
    expect(answers).toContain('More than 1 requests in flight on one connection');
  }, 60_000);

  it('on SIGTERM with --drain-delay-ms, serves on with /readyz at 503 for that long, then stops and exits 0', async () => {
    const { gateway, port } = await startGatewayProcess(['--drain-delay-ms', '1500']);
    expect((await http(port, 'GET', '/healthz')).status).toBe(200);
    const signalledAt = Date.now();
    gateway.child.kill('SIGTERM');
    await gateway.waitForLine(/"event":"draining"/, 5_000);
    const ready = await http(port, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toContain('the gateway is stopping');
    expect((await http(port, 'GET', '/healthz')).status).toBe(200);
    expect(await gateway.exited()).toBe(0);
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(1_400);
  }, 60_000);

  it('a second signal during a long drain ends the drain, and the stop goes on in order to exit 0', async () => {
    const { gateway, port } = await startGatewayProcess(['--drain-delay-ms', '60000']);
    gateway.child.kill('SIGTERM');
    await gateway.waitForLine(/"event":"draining"/, 5_000);
    expect((await http(port, 'GET', '/readyz')).status).toBe(503);
    // More than a second after the first: within it, the two copies of one Ctrl-C count as one.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const secondAt = Date.now();
    gateway.child.kill('SIGTERM');
    expect(await gateway.exited()).toBe(0);
    expect(Date.now() - secondAt).toBeLessThan(5_000);
    expect(gateway.lines.some((line) => line.includes('the drain ends now'))).toBe(true);
  }, 60_000);

  it('refused for good after it had routed (the distributor came back with a limit its name breaks), with --drain-delay-ms: drains first, then exits 3', async () => {
    const token = 'the-first-token-of-this-test';
    const first = createDistributorServer({ registryToken: token });
    const distributorPort = await first.listen('127.0.0.1', 0);
    const port = await freePort();
    const gateway = spawnComponent(
      'src/gateway/main.ts',
      [
        ...['--host', '127.0.0.1', '--port', String(port)],
        ...['--distributor', `127.0.0.1:${distributorPort}`, '--drain-delay-ms', '1500'],
      ],
      { SHOP_REGISTRY_TOKEN: token },
    );
    cleanups.push(() => void gateway.child.kill('SIGKILL'));
    await gateway.waitForLine(/listening on http/, 30_000);
    // It has the distributor's list (with no service in it, so /readyz says that, not "no list yet").
    await expect
      .poll(async () => (await http(port, 'GET', '/readyz')).body, { timeout: 10_000 })
      .toContain('no service has registered a route yet');
    // The distributor comes back on its address with a limit that "gateway" breaks: the gateway's
    // next registration is refused for good, by a distributor that proves it holds the token.
    await first.stop(100);
    const second = createDistributorServer({ registryToken: token, limits: { nameLength: 3 } });
    await second.listen('127.0.0.1', distributorPort);
    cleanups.push(() => second.stop(100));
    await gateway.waitForLine(/"event":"draining"/, 15_000);
    const drainingAt = Date.now();
    const ready = await http(port, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toContain('the gateway is stopping');
    expect(await gateway.exited()).toBe(3);
    expect(Date.now() - drainingAt).toBeGreaterThanOrEqual(1_300);
    expect(gateway.lines.join('\n')).toContain('refused by the distributor');
  }, 60_000);

  it("under the launcher, warns at start of a drain delay, which the launcher's 10 s would include", async () => {
    const { gateway } = await startGatewayProcess(
      ['--drain-delay-ms', '5000'],
      { [SUPERVISED_ENV]: '1' },
      { stdinOpen: true },
    );
    await gateway.waitForLine(/"event":"drain-under-launcher"/, 5_000);
    // Alone, it does not (the warning comes before the listening line).
    const { gateway: alone } = await startGatewayProcess(['--drain-delay-ms', '5000']);
    expect(alone.lines.some((line) => line.includes('drain-under-launcher'))).toBe(false);
  }, 60_000);
});
