import { afterAll, describe, expect, it } from 'vitest';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { freePort, spawnComponent } from './support/processes.js';

/** What the gateway's entry point sets up in its own process, beyond what its factory builds. */
describe('the gateway process', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it("replaces Node 20's AsyncResource.prototype.bind before it opens any stream", async () => {
    const distributor = createDistributorServer();
    const distributorAddress = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
    cleanups.push(() => distributor.stop(100));
    const gateway = spawnComponent(
      'src/gateway/main.ts',
      ['--host', '127.0.0.1', '--port', String(await freePort()), '--distributor', distributorAddress],
      { LOG_LEVEL: 'debug' },
    );
    cleanups.push(() => void gateway.child.kill('SIGKILL'));
    await gateway.waitForLine(/listening on http/, 30_000);
    const replaced = gateway.lines.findIndex((line) =>
      line.includes('AsyncResource.prototype.bind replaced'),
    );
    expect(replaced).toBeGreaterThanOrEqual(0);
    expect(replaced).toBeLessThan(gateway.lines.findIndex((line) => line.includes('listening on http')));
  }, 60_000);
});
