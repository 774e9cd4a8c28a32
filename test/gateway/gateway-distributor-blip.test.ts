import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { httpJson } from '../helpers/http.js';
import {
  Closer,
  startCuttableProxy,
  startDistributor,
  startGateway,
  waitForRoute,
} from './support/cluster.js';

describe('gateway through a blip of every connection to the distributor', () => {
  const closer = new Closer();
  const dataDir = mkdtempSync(join(tmpdir(), 'gateway-blip-'));
  afterEach(() => closer.closeAll());
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps routing to the instances not registered again yet: no 503', async () => {
    const distributor = await startDistributor(closer);
    // Every node loses the distributor at once (a frozen distributor thawed, a network blip at its
    // host), and the same distributor instance, still running, sees every stream end.
    const proxy = await startCuttableProxy(closer, distributor.address);
    // goods registers again 0.75 to 1.5 s after losing the distributor, well after the gateway.
    const goods = await startService(
      goodsService,
      {
        host: '127.0.0.1',
        port: 0,
        distributor: proxy.address,
        advertiseHost: '127.0.0.1',
        storage: { kind: 'sqlite', dataDir },
        logLevel: 'silent',
      },
      { graceMs: 200, drainNoticeMs: 100, registrationBackoff: { initialMs: 1_500, maxMs: 2_000 } },
    );
    closer.add(goods, (running) => running.stop());
    const { gateway, port: gatewayPort } = await startGateway(closer, proxy.address, {
      registrationBackoff: { initialMs: 10, maxMs: 50 },
    });
    await waitForRoute(gateway, 'GET /goods', 1);
    const instanceBefore = distributor.server.registry.instanceId;

    let running = true;
    const statuses: number[] = [];
    const loops = Array.from({ length: 2 }, async () => {
      while (running) statuses.push((await httpJson(gatewayPort, 'GET', '/goods')).status);
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    proxy.blip();
    // The same distributor saw goods leave, and the gateway is back on it before goods.
    await vi.waitFor(
      () =>
        expect(distributor.server.registry.snapshot().nodes.map((node) => node.name)).not.toContain('goods'),
      { timeout: 2_000, interval: 5 },
    );
    await vi.waitFor(
      () => expect(distributor.server.registry.snapshot().nodes.map((node) => node.name)).toContain('goods'),
      { timeout: 5_000, interval: 5 },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    running = false;
    await Promise.all(loops);

    expect(distributor.server.registry.instanceId).toBe(instanceBefore);
    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    await waitForRoute(gateway, 'GET /goods', 1);
  });
});
