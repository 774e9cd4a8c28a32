import { createServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NodeState } from '../../src/gen/distributor.js';
import type { GatewayStatusView } from '../../src/launcher/gateway-status-probe.js';
import { ShopReadiness } from '../../src/launcher/shop-readiness.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { Closer, startDistributor, startGateway, waitForRoute } from '../gateway/support/cluster.js';
import { startFakeGoods } from '../gateway/support/fake-shop.js';
import { goodsNode } from '../helpers/nodes.js';

// A service registered at an address the gateway cannot reach (link-local, another interface's,
// behind a firewall; here a port where nothing listens, so every connection is refused): the
// launcher counted registrations alone and said the shop was ready, while the gateway could serve
// none of its requests and its own /readyz said not ready. A real distributor and gateway on port 0.

/** A port on 127.0.0.1 where nothing listens. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('ShopReadiness against a real gateway, a service registered where the gateway cannot reach it', () => {
  const closer = new Closer();
  afterEach(() => closer.closeAll());

  // Both ways the launcher asks: GET /status.json, and the gateway's answer on its pipe (asked so
  // when the gateway requires client certificates), which is Gateway.supervisorStatus().
  it.each(['status.json', 'pipe'] as const)(
    'is not ready, and its warning names the service and its address, until an instance the gateway reaches registers (asked by %s)',
    async (asked) => {
      const distributor = await startDistributor(closer);
      const { gateway, port } = await startGateway(closer, distributor.address);
      const refusing = await closedPort();
      const registration = closer.add(
        new RegistrationClient({
          distributor: distributor.address,
          node: goodsNode({ host: '127.0.0.1', port: refusing, state: NodeState.NODE_STATE_SERVING }),
          backoff: { initialMs: 20, maxMs: 200 },
        }),
        (client) => client.stop(100),
      );
      registration.start();
      await waitForRoute(gateway, 'GET /goods', 1);

      const lines: string[] = [];
      const readiness = closer.add(
        new ShopReadiness({
          services: ['goods'],
          say: (text, level) => lines.push(`${level} ${text}`),
          warnAfterMs: 1_000,
          ...(asked === 'pipe'
            ? {
                fetchStatus: async () =>
                  JSON.parse(JSON.stringify(gateway.supervisorStatus())) as GatewayStatusView,
              }
            : {}),
        }),
        (started) => started.stop(),
      );
      readiness.start();
      readiness.gatewayListening(`http://127.0.0.1:${port}`);
      await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 5_000, interval: 50 });
      expect(lines[0]).toMatch(
        new RegExp(
          `^warn the shop is not ready 1 s after the start: goods \\(at 127\\.0\\.0\\.1:${refusing}\\) is registered, but the gateway (?:cannot connect to it there \\(its attempts failing for \\d+ s; see its lines above\\): |has not connected to it there yet \\(no answer to its attempts so far; see its lines above\\): if that lasts, )give it an address the gateway reaches, --host \\(SERVICE_HOST\\) or --advertise-host \\(ADVERTISE_HOST\\), or open the way from the gateway to that address; the launcher says so once the shop is ready$`,
        ),
      );

      // An instance it reaches: ready, the one it cannot reach still listed beside it.
      await startFakeGoods(closer, distributor.address);
      await vi.waitFor(() => expect(lines).toHaveLength(2), { timeout: 5_000, interval: 50 });
      expect(lines[1]).toMatch(
        new RegExp(
          `^info the shop is ready: http://127\\.0\\.0\\.1:${port} \\(goods registered; \\d+\\.\\d s\\)$`,
        ),
      );
      expect(
        gateway.routes().find((route) => `${route.method} ${route.path}` === 'GET /goods')?.serving,
      ).toHaveLength(2);
    },
  );
});
