import { Server, ServerCredentials } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import { NodeState } from '../../src/gen/distributor.js';
import { type GoodsServiceServer, GoodsServiceService } from '../../src/gen/services.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { http } from '../helpers/http.js';
import { captureLog } from '../helpers/log-capture.js';
import { goodsNode } from '../helpers/nodes.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';

/** Longer than the silent connection's cut (3 s), so that calls made to B after the first deadline are still held when its connection is closed. */
const DEADLINE_MS = 4_000;
const ITEM = { id: 1, name: 'n', category: 'c', price: 1, description: 'd' };
const SILENT_WARNING =
  /sent nothing for 3000 ms after a health check that followed a call's deadline: its connection is taken for dead and closed/;

/**
 * A goods-like server that counts its ListGoods calls and health checks; its next `slowCalls`
 * ListGoods answer after the gateway's deadline, and its health checks answer after `healthDelayMs`.
 */
interface CountingGoods {
  readonly port: number;
  listCalls: number;
  healthChecks: number;
  slowCalls: number;
  healthDelayMs: number;
}

async function startCountingGoods(closer: Closer): Promise<CountingGoods> {
  const counts: CountingGoods = { port: 0, listCalls: 0, healthChecks: 0, slowCalls: 0, healthDelayMs: 0 };
  const server = new Server();
  const goods: GoodsServiceServer = {
    createGoods: (_call, callback) => callback(null, { id: 1 }),
    listGoods: (_call, callback) => {
      counts.listCalls++;
      const answer = (): void => callback(null, { results: [ITEM], nextPageToken: '' });
      if (counts.slowCalls > 0) {
        counts.slowCalls--;
        setTimeout(answer, DEADLINE_MS + 1_000);
      } else answer();
    },
    deleteGoods: (_call, callback) => callback(null, {}),
  };
  server.addService(GoodsServiceService, goods);
  // Answers as grpc.health.v1 does for the server as a whole (SERVING is field 1 = 1).
  server.addService(
    { Check: bytesMethod('/grpc.health.v1.Health/Check') },
    {
      Check: (_call: unknown, callback: (error: null, answer: Buffer) => void) => {
        counts.healthChecks++;
        setTimeout(() => callback(null, Buffer.from([0x08, 0x01])), counts.healthDelayMs);
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  closer.add(server, (started) => started.forceShutdown());
  return Object.assign(counts, { port });
}

/** Registers a goods node at `port` (the server's, or a proxy's in front of it). */
function register(closer: Closer, distributor: string, port: number): void {
  const registration = closer.add(
    new RegistrationClient({
      distributor,
      node: goodsNode({ port, state: NodeState.NODE_STATE_SERVING }),
      backoff: { initialMs: 20, maxMs: 200 },
    }),
    (client) => client.stop(100),
  );
  registration.start();
}

/** Two goods instances behind a gateway with a short deadline, the second reached through a proxy. */
async function twoInstances(closer: Closer) {
  const distributor = await startDistributor(closer);
  const healthy = await startCountingGoods(closer);
  const proxied = await startCountingGoods(closer);
  const proxy = closer.add(await TcpProxy.start({ host: '127.0.0.1', port: proxied.port }), (p) => p.close());
  register(closer, distributor.address, healthy.port);
  register(closer, distributor.address, proxy.port);
  const captured = captureLog('gateway', 'warn');
  const { gateway, port } = await startGateway(closer, distributor.address, {
    deadlineMs: DEADLINE_MS,
    log: captured.log,
  });
  await waitForRoute(gateway, 'GET /goods', 2);
  // Both channels connected and used: round robin alternates, so four GETs reach each at least once.
  for (let i = 0; i < 4; i++) expect((await http(port, 'GET', '/goods')).status).toBe(200);
  expect(healthy.listCalls).toBeGreaterThan(0);
  expect(proxied.listCalls).toBeGreaterThan(0);
  return { port, healthy, proxied, proxy, warnings: captured.lines };
}

/** Sends GET /goods one after another until one answers `status` (at most `limit` requests). */
async function getUntil(port: number, status: number, limit: number): Promise<number[]> {
  const statuses: number[] = [];
  while (statuses.length < limit) {
    statuses.push((await http(port, 'GET', '/goods')).status);
    if (statuses.at(-1) === status) break;
  }
  return statuses;
}

describe('gateway: an instance whose connection goes silent', () => {
  const closer = new Closer();
  afterEach(() => closer.closeAll());

  it('answers 503 at once for a route whose only instance has been out of reach past the connect timeout, and serves again once it connects', async () => {
    const distributor = await startDistributor(closer);
    const goods = await startCountingGoods(closer);
    const proxy = closer.add(await TcpProxy.start({ host: '127.0.0.1', port: goods.port }), (p) => p.close());
    register(closer, distributor.address, proxy.port);
    const { gateway, port } = await startGateway(closer, distributor.address, {
      deadlineMs: 1_000,
      upstreamConnectTimeoutMs: 300,
    });
    await waitForRoute(gateway, 'GET /goods', 1);
    await vi.waitFor(async () => expect((await http(port, 'GET', '/goods')).status).toBe(200), {
      timeout: 5_000,
    });

    // A partition: the connection held, and every new one accepted and held, nothing passing. The
    // first GET waits its deadline (504), the health check after it goes unanswered, and the
    // connection attempts that follow hang: each GET given to one waited for it until it was given
    // up (503) or its deadline passed (504), for as long as the partition lasted.
    proxy.blackhole();
    const outOfReach = 'No instance of GET /goods can be reached from the gateway';
    const before: string[] = [];
    while (before.length < 20) {
      const answer = await http(port, 'GET', '/goods');
      before.push(`${answer.status} ${answer.body}`);
      if (answer.body.includes(outOfReach)) break;
    }
    expect(before.at(-1), before.join('\n')).toContain(outOfReach);
    const listCalls = goods.listCalls;
    const answers = await Promise.all(Array.from({ length: 5 }, () => http(port, 'GET', '/goods')));
    for (const answer of answers) {
      expect(answer.status).toBe(503);
      expect(JSON.parse(answer.body)).toMatchObject({ errorcode: 1, errormessage: outOfReach });
      expect(answer.headers['retry-after']).toBe('1');
    }
    expect(goods.listCalls).toBe(listCalls);

    // Healed, the attempt under way still held (as a SYN to a host that dropped packets waits on):
    // the next attempt connects, and GETs are served again.
    await proxy.restore({ keepHeld: true });
    await vi.waitFor(async () => expect((await http(port, 'GET', '/goods')).status).toBe(200), {
      timeout: 5_000,
      interval: 50,
    });
  }, 20_000);

  it('gets no more calls once one call passed its deadline and a health check went unanswered', async () => {
    const { port, healthy, proxied, proxy, warnings } = await twoInstances(closer);

    // The connection stays open and READY in grpc-js; nothing passes either way, as when the
    // instance's host lost power. Keepalive (10 s + 5 s) would notice long after this test ends.
    proxy.blackhole();
    const beforeSilence = proxied.listCalls;
    const untilTimeout = await getUntil(port, 504, 4);
    expect(untilTimeout.at(-1)).toBe(504);
    // Given out before B's check ends, held on its connection until it is closed, then retried on A.
    const heldFrom = performance.now();
    const heldThenRetried = await Promise.all(
      Array.from({ length: 4 }, async () => (await http(port, 'GET', '/goods')).status),
    );
    expect(heldThenRetried).toEqual(Array(4).fill(200));
    // Those given to B waited for its connection to be cut (about three seconds after the 504).
    expect(performance.now() - heldFrom).toBeGreaterThan(2_000);

    const healthyBefore = healthy.listCalls;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await http(port, 'GET', '/goods')).status);
    expect(statuses).toEqual(Array(8).fill(200));
    expect(healthy.listCalls - healthyBefore).toBe(8);
    expect(proxied.listCalls).toBe(beforeSilence);
    expect(warnings.filter((line) => SILENT_WARNING.test(String(line.msg)))).toHaveLength(1);
  }, 20_000);

  it('keeps a slow instance that answers its health check', async () => {
    const { port, healthy, proxied, warnings } = await twoInstances(closer);

    // Two calls past their deadline at once, and a check that takes a while: one check, not two.
    proxied.slowCalls = 2;
    proxied.healthDelayMs = 300;
    const concurrent = await Promise.all(
      Array.from({ length: 4 }, async () => (await http(port, 'GET', '/goods')).status),
    );
    expect(concurrent.sort()).toEqual([200, 200, 504, 504]);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(proxied.healthChecks).toBe(1);

    const before = { healthy: healthy.listCalls, proxied: proxied.listCalls };
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await http(port, 'GET', '/goods')).status);
    expect(statuses).toEqual(Array(8).fill(200));
    // Round robin still alternates: the slow instance was not passed over.
    expect(proxied.listCalls - before.proxied).toBe(4);
    expect(healthy.listCalls - before.healthy).toBe(4);
    expect(warnings.filter((line) => SILENT_WARNING.test(String(line.msg)))).toHaveLength(0);
  }, 20_000);
});
