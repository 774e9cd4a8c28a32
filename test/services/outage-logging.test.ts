import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { freePort, spawnComponent } from '../e2e/support/processes.js';
import { httpJson } from '../helpers/http.js';
import { createTestDatabase } from '../helpers/mysql.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const mysqlUrl = inject('mysqlUrl');
const REQUESTS = 400;
const CONCURRENCY = 16;

/** The JSON log lines of a process at a level or above (pino: 40 warn, 50 error). */
function linesAtLeast(lines: readonly string[], level: number): { level: number; msg: string }[] {
  return lines
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string })
    .filter((line) => line.level >= level);
}

/**
 * Goods and the gateway as processes, goods on MariaDB through a proxy that the test cuts. During
 * the outage every call fails the same way; the logs must not grow with the number of calls.
 */
describe.runIf(mysqlUrl)(
  mysqlUrl
    ? 'logs during a MariaDB outage under load'
    : 'logs during a MariaDB outage (skipped: MySQL unreachable here)',
  () => {
    const cleanups: (() => Promise<void> | void)[] = [];
    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    it(`${REQUESTS} failed requests write a bounded number of lines`, async () => {
      const database = await createTestDatabase(mysqlUrl);
      cleanups.push(() => database.drop());
      const server = new URL(mysqlUrl);
      const proxy = await TcpProxy.start({ host: server.hostname, port: Number(server.port || 3306) });
      cleanups.push(() => proxy.close());
      const throughProxy = new URL(database.url);
      throughProxy.hostname = '127.0.0.1';
      throughProxy.port = String(proxy.port);

      const distributor = createDistributorServer();
      const distributorAddress = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
      cleanups.push(() => distributor.stop(100));
      const goods = spawnComponent(
        'src/services/goods/main.ts',
        ['--port', '0', '--distributor', distributorAddress],
        { MYSQL_URL: throughProxy.toString() },
      );
      const gatewayPort = await freePort();
      const gateway = spawnComponent(
        'src/gateway/main.ts',
        ['--host', '127.0.0.1', '--port', String(gatewayPort), '--distributor', distributorAddress],
        {},
      );
      for (const child of [goods, gateway]) cleanups.push(() => void child.child.kill('SIGKILL'));
      await vi.waitFor(
        async () =>
          expect(
            (
              await httpJson(gatewayPort, 'POST', '/goods', {
                name: 'n',
                category: 'c',
                price: 1,
                description: 'd',
              })
            ).status,
          ).toBe(200),
        { timeout: 30_000, interval: 200 },
      );
      const goodsBefore = goods.lines.length;
      const gatewayBefore = gateway.lines.length;

      await proxy.refuse();
      const statuses: number[] = [];
      let sent = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (sent < REQUESTS) {
            const post = sent++ % 2 === 0;
            const answer = post
              ? await httpJson(gatewayPort, 'POST', '/goods', {
                  name: 'n',
                  category: 'c',
                  price: 1,
                  description: 'd',
                })
              : await httpJson(gatewayPort, 'GET', '/goods');
            statuses.push(answer.status);
          }
        }),
      );
      // Lines are written as they happen; give the pipes a moment.
      await new Promise((resolve) => setTimeout(resolve, 300));

      expect(statuses).toHaveLength(REQUESTS);
      expect(new Set(statuses)).toEqual(new Set([503]));
      const goodsErrors = linesAtLeast(goods.lines.slice(goodsBefore), 50);
      const gatewayWarnings = linesAtLeast(gateway.lines.slice(gatewayBefore), 40);
      // Goods: one line per method and cause (CreateGoods, ListGoods) and the monitor's one; the
      // gateway: one per instance, method and failure. Without the limiter: one each per request.
      expect(goodsErrors.length).toBeGreaterThanOrEqual(2);
      expect(goodsErrors.length).toBeLessThanOrEqual(6);
      expect(goodsErrors.map((line) => line.msg)).toContain('Database unavailable');
      expect(gatewayWarnings.length).toBeGreaterThanOrEqual(1);
      expect(gatewayWarnings.length).toBeLessThanOrEqual(4);
    }, 60_000);
  },
);
