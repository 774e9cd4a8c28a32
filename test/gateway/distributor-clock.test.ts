import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { NodeRegistry } from '../../src/distributor/node-registry.js';
import type { GatewayStatus } from '../../src/gateway/gateway-health.js';
import { http } from '../helpers/http.js';
import { captureLog } from '../helpers/log-capture.js';
import { Closer, startGateway } from './support/cluster.js';

/**
 * A distributor on a host whose clock is off from the gateway's: the nodes' registeredAt are by the
 * distributor's clock, their ages on the status page by the gateway's. Before, a distributor an hour
 * ahead made every node an hour old from its first second, and one behind kept them at 0 s for an
 * hour, with nothing that said why.
 */
describe("a distributor whose host's clock is off", () => {
  const closer = new Closer();
  afterEach(() => closer.closeAll());

  async function shopWithDistributorAhead(offsetMs: number) {
    const registry = new NodeRegistry({ now: () => new Date(Date.now() + offsetMs) });
    const distributor = closer.add(createDistributorServer({ registry }), (server) => server.stop(100));
    const port = await distributor.listen('127.0.0.1', 0);
    const captured = captureLog('gateway', 'info');
    const gateway = await startGateway(closer, `127.0.0.1:${port}`, { log: captured.log });
    const status = async (): Promise<GatewayStatus> =>
      JSON.parse((await http(gateway.port, 'GET', '/status.json')).body) as GatewayStatus;
    await vi.waitFor(async () => expect((await status()).nodes).toHaveLength(1), { timeout: 5_000 });
    return { status, captured };
  }

  it('an hour ahead: the status page counts ages by the distributor clock, and the gateway warns', async () => {
    const { status, captured } = await shopWithDistributorAhead(3_600_000);
    const shown = await status();
    expect(shown.nodes[0]!.ageSeconds).toBeLessThan(10);
    expect(shown.distributorClockOffsetMs).toBeGreaterThan(3_590_000);
    expect(shown.distributorClockOffsetMs).toBeLessThan(3_610_000);
    const warnings = captured.lines.filter((line) => line.event === 'clock-skew');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toMatch(
      /^this host's clock is 60 min behind the distributor's \(by the time on its acknowledgement\): set the hosts' clocks right/,
    );
  });

  it('an hour behind: the ages count from registration, not from 0 an hour later', async () => {
    const { status, captured } = await shopWithDistributorAhead(-3_600_000);
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const age = (await status()).nodes[0]!.ageSeconds!;
    expect(age).toBeGreaterThanOrEqual(2);
    expect(age).toBeLessThan(10);
    expect(captured.lines.filter((line) => line.event === 'clock-skew')[0]!.msg).toContain(
      '60 min ahead of the distributor',
    );
  });

  it("the gateway's clock set right after it registered: the ages and the difference follow at once", async () => {
    // The distributor's acknowledgements come at registration and at a change of state only: the
    // difference taken from the first and kept made every node an hour old, and the page say the
    // clocks were an hour apart, from the moment the gateway's clock was set right until it
    // registered again. The distributor on the real clock, the gateway's an hour behind (Date.now
    // only: the monotonic clock and `new Date()` go on as they are), then set right.
    const realNow = () => performance.timeOrigin + performance.now();
    const behind = vi.spyOn(Date, 'now').mockImplementation(() => Math.round(realNow()) - 3_600_000);
    try {
      const registry = new NodeRegistry({ now: () => new Date(realNow()) });
      const distributor = closer.add(createDistributorServer({ registry }), (server) => server.stop(100));
      const port = await distributor.listen('127.0.0.1', 0);
      const gateway = await startGateway(closer, `127.0.0.1:${port}`);
      const status = async (): Promise<GatewayStatus> =>
        JSON.parse((await http(gateway.port, 'GET', '/status.json')).body) as GatewayStatus;
      await vi.waitFor(async () => expect((await status()).nodes).toHaveLength(1), { timeout: 5_000 });
      expect((await status()).distributorClockOffsetMs).toBeGreaterThan(3_590_000);
      behind.mockRestore();
      const shown = await status();
      expect(Math.abs(shown.distributorClockOffsetMs!)).toBeLessThan(5_000);
      expect(shown.nodes[0]!.ageSeconds).toBeLessThan(10);
    } finally {
      behind.mockRestore();
    }
  });

  it('within a minute: no warning', async () => {
    const { status, captured } = await shopWithDistributorAhead(30_000);
    expect((await status()).nodes[0]!.ageSeconds).toBeLessThan(10);
    expect(captured.lines.filter((line) => line.event === 'clock-skew')).toEqual([]);
  });
});
