import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { createDistributorServer, type DistributorServer } from '../../src/distributor/distributor-server.js';
import { type RunningService, startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { httpJson } from '../helpers/http.js';
import { Closer, startGateway, waitForRoute } from './support/cluster.js';

const GOODS = { name: 'n', category: 'c', price: 1, description: 'd' };

/**
 * A real distributor stopped and started again on the same port while the gateway takes traffic.
 * The services register again more slowly than the gateway (their backoff is longer here, to make
 * the window wide and the test certain), so the restarted distributor's first snapshots lack them:
 * the gateway must keep routing to them.
 */
describe('gateway through a distributor restart', () => {
  const closer = new Closer();
  const dataDir = mkdtempSync(join(tmpdir(), 'gateway-restart-'));
  afterEach(() => closer.closeAll());
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  async function startDistributorOn(port: number): Promise<{ server: DistributorServer; port: number }> {
    const server = createDistributorServer();
    const bound = await server.listen('127.0.0.1', port);
    closer.add(server, (distributor) => distributor.stop(100));
    return { server, port: bound };
  }

  /** By default goods registers again 0.75 to 1.5 s after losing the distributor, well after the gateway. */
  async function startGoods(distributor: string, initialBackoffMs = 1_500): Promise<RunningService> {
    const service = await startService(
      goodsService,
      {
        host: '127.0.0.1',
        port: 0,
        distributor,
        advertiseHost: '127.0.0.1',
        storage: { kind: 'sqlite', dataDir },
        logLevel: 'silent',
      },
      {
        graceMs: 200,
        drainNoticeMs: 100,
        registrationBackoff: { initialMs: initialBackoffMs, maxMs: 2_000 },
      },
    );
    return closer.add(service, (running) => running.stop());
  }

  /** Runs GET and POST /goods on four connections until stopped; resolves with every status seen. */
  function traffic(port: number): { stop: () => Promise<number[]> } {
    let running = true;
    const statuses: number[] = [];
    const loops = Array.from({ length: 4 }, async (_, index) => {
      while (running) {
        const answer =
          index % 2 === 0
            ? await httpJson(port, 'GET', '/goods')
            : await httpJson(port, 'POST', '/goods', GOODS);
        statuses.push(answer.status);
      }
    });
    return {
      stop: async () => {
        running = false;
        await Promise.all(loops);
        return statuses;
      },
    };
  }

  it('keeps routing while traffic runs: no 503', async () => {
    const first = await startDistributorOn(0);
    const address = `127.0.0.1:${first.port}`;
    await startGoods(address);
    const { gateway, port } = await startGateway(closer, address, {
      registrationBackoff: { initialMs: 10, maxMs: 50 },
    });
    await waitForRoute(gateway, 'GET /goods', 1);
    const load = traffic(port);
    await new Promise((resolve) => setTimeout(resolve, 200));

    await first.server.stop(100);
    const second = await startDistributorOn(first.port);
    // The gateway is back on the new distributor first, then goods.
    await vi.waitFor(() => expect(gateway.revision).toBeLessThan(3), { timeout: 5_000, interval: 5 });
    await vi.waitFor(
      () => expect(second.server.registry.snapshot().nodes.map((node) => node.name)).toContain('goods'),
      { timeout: 5_000, interval: 5 },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const statuses = await load.stop();

    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    await waitForRoute(gateway, 'GET /goods', 1);
  });

  it('drops an instance that did not come back once the grace period is over', async () => {
    const first = await startDistributorOn(0);
    const address = `127.0.0.1:${first.port}`;
    await startGoods(address, 400);
    const leaving = await startGoods(address, 400);
    const { gateway, port } = await startGateway(closer, address, {
      registrationBackoff: { initialMs: 10, maxMs: 50 },
      restartGraceMs: 1_500,
    });
    await waitForRoute(gateway, 'GET /goods', 2);

    await first.server.stop(100);
    await leaving.stop();
    const second = await startDistributorOn(first.port);
    await vi.waitFor(
      () => expect(second.server.registry.snapshot().nodes.map((node) => node.name)).toContain('goods'),
      {
        timeout: 5_000,
        interval: 5,
      },
    );
    // Back: one instance registered again, the other still kept; a GET that meets the one that left
    // is retried on the other.
    expect(
      gateway.routes().find((route) => route.path === '/goods' && route.method === 'GET')?.serving,
    ).toHaveLength(2);
    for (let count = 0; count < 4; count++) expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
    // Then dropped, when the grace period is over.
    await waitForRoute(gateway, 'GET /goods', 1);
  });
});
