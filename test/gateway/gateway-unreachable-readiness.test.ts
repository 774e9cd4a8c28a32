import { createServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NodeState } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { http } from '../helpers/http.js';
import { goodsNode } from '../helpers/nodes.js';
import { startSilentServer } from '../helpers/silent-server.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { startFakeGoods } from './support/fake-shop.js';

/** A port on `host` where nothing listens: a connection to it is refused. */
async function closedPort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Registers a serving goods node at `host` on a closed port: listed, but every connection refused. */
async function registerRefusingGoods(closer: Closer, distributor: string, host: string): Promise<void> {
  const registration = closer.add(
    new RegistrationClient({
      distributor,
      node: goodsNode({ host, port: await closedPort(host), state: NodeState.NODE_STATE_SERVING }),
      backoff: { initialMs: 20, maxMs: 200 },
    }),
    (client) => client.stop(100),
  );
  registration.start();
}

describe('gateway readiness, an instance listed but out of reach', () => {
  const closer = new Closer();
  afterEach(() => closer.closeAll());

  it.each(['127.0.0.1', '::1'])(
    'is not ready while the only goods instance, at %s, refuses',
    async (host) => {
      const distributor = await startDistributor(closer);
      const { gateway, port } = await startGateway(closer, distributor.address);
      await registerRefusingGoods(closer, distributor.address, host);
      await waitForRoute(gateway, 'GET /goods', 1);
      // A distributor before 2026-12-06 wrote an IPv6 instance's node id "goods@::1:port", its
      // channel's key being "goods@[::1]:port": readiness looked its reachability up by the id, found
      // no channel, and counted it as serving.
      await vi.waitFor(
        async () => {
          const ready = await http(port, 'GET', '/readyz');
          expect(ready.status).toBe(503);
          expect(ready.body).toContain('no reachable instance for GET /goods');
        },
        { timeout: 5_000, interval: 50 },
      );
      // The status page says so of the node, which the distributor still lists as serving.
      const status = JSON.parse((await http(port, 'GET', '/status.json')).body);
      const listed = status.nodes.filter((node: { name: string }) => node.name === 'goods');
      // With why, as a kind the page names: its connection attempts fail (here, refused).
      expect(listed).toEqual([
        expect.objectContaining({
          state: 'serving',
          unreachableSeconds: expect.any(Number),
          unreachableReason: 'attempts-fail',
        }),
      ]);
      expect(listed[0]).not.toHaveProperty('connected');
      expect(listed[0]).not.toHaveProperty('connecting');
      // So does its answer on the launcher's pipe, which the launcher reads as it reads this page.
      expect(gateway.supervisorStatus().nodes.filter((node) => node.name === 'goods')).toEqual([
        expect.objectContaining({ state: 'serving', unreachableSeconds: expect.any(Number) }),
      ]);
    },
  );

  it('marks on the status page an instance out of reach, and the route it alone serves as answered 503 at once', async () => {
    const distributor = await startDistributor(closer);
    const { gateway, port } = await startGateway(closer, distributor.address, {
      upstreamConnectTimeoutMs: 200,
    });
    await registerRefusingGoods(closer, distributor.address, '127.0.0.1');
    await waitForRoute(gateway, 'GET /goods', 1);
    // Past the connect timeout, refused all along: given no call, and GET /goods is answered at once.
    await vi.waitFor(
      async () => {
        const answer = await http(port, 'GET', '/goods');
        expect([answer.status, JSON.parse(answer.body).errormessage]).toEqual([
          503,
          'No instance of GET /goods can be reached from the gateway',
        ]);
      },
      { timeout: 5_000, interval: 50 },
    );
    const status = JSON.parse((await http(port, 'GET', '/status.json')).body);
    expect(status.nodes.filter((node: { name: string }) => node.name === 'goods')).toEqual([
      expect.objectContaining({ state: 'serving', unreachableSeconds: expect.any(Number), outOfReach: true }),
    ]);
    const route = status.routes.find(
      (listed: { method: string; path: string }) => listed.method === 'GET' && listed.path === '/goods',
    );
    expect(route).toMatchObject({ outOfReach: true });
  });

  it('names reachability, not serving, once every route has been out of reach for long', async () => {
    const distributor = await startDistributor(closer);
    const { gateway, port } = await startGateway(closer, distributor.address, {
      unservedRouteReadyAfterMs: 500,
    });
    await registerRefusingGoods(closer, distributor.address, '127.0.0.1');
    await waitForRoute(gateway, 'GET /goods', 1);
    // Past the time a route's own reason holds readiness, the summary stays: the distributor lists
    // goods as serving (as /status shows), so "no route has a serving instance" sent an operator
    // after the service rather than after the path between this gateway and it.
    await vi.waitFor(
      async () => {
        const ready = await http(port, 'GET', '/readyz');
        expect([ready.status, JSON.parse(ready.body).reasons]).toEqual([
          503,
          ['no route has a serving instance this gateway can reach'],
        ]);
      },
      { timeout: 5_000, interval: 50 },
    );
  });

  it('says nothing of reachability on the status page for an instance it reaches', async () => {
    const distributor = await startDistributor(closer);
    const { gateway, port } = await startGateway(closer, distributor.address);
    const fake = await startFakeGoods(closer, distributor.address, {}, []);
    await waitForRoute(gateway, 'GET /goods', 1);
    await vi.waitFor(async () => expect((await http(port, 'GET', '/readyz')).status).toBe(200), {
      timeout: 5_000,
    });
    // Only that it holds a connection to it, at its address (what the launcher waits for; the
    // connection may still be being made when /readyz first says ready).
    const status = await vi.waitFor(
      async () => {
        const read = JSON.parse((await http(port, 'GET', '/status.json')).body);
        expect(read.nodes.filter((node: { name: string }) => node.name === 'goods')).toEqual([
          expect.objectContaining({ state: 'serving', address: `127.0.0.1:${fake.port}`, connected: true }),
        ]);
        return read;
      },
      { timeout: 5_000 },
    );
    const goods = status.nodes.filter((node: { name: string }) => node.name === 'goods');
    expect(goods[0]).not.toHaveProperty('unreachableSeconds');
    expect(goods[0]).not.toHaveProperty('outOfReach');
    expect(goods[0]).not.toHaveProperty('unreachableReason');
    expect(goods[0]).not.toHaveProperty('connecting');
    expect(gateway.supervisorStatus().nodes.filter((node) => node.name === 'goods')).toEqual([
      expect.objectContaining({ address: `127.0.0.1:${fake.port}`, connected: true }),
    ]);
    expect(status.routes.filter((route: { outOfReach?: boolean }) => route.outOfReach)).toEqual([]);
  });

  it('says an instance whose first connection attempt is under way is connecting, and once that attempt outlasts the connect timeout, unreachable for getting no answer', async () => {
    const distributor = await startDistributor(closer);
    const { gateway, port } = await startGateway(closer, distributor.address, {
      upstreamConnectTimeoutMs: 1_500,
    });
    // It takes the TCP connection and never speaks HTTP/2: the attempt hangs.
    const silent = closer.add(await startSilentServer(), (server) => server.close());
    const registration = closer.add(
      new RegistrationClient({
        distributor: distributor.address,
        node: goodsNode({ port: silent.port, state: NodeState.NODE_STATE_SERVING }),
        backoff: { initialMs: 20, maxMs: 200 },
      }),
      (client) => client.stop(100),
    );
    registration.start();
    await waitForRoute(gateway, 'GET /goods', 1);
    const goodsOf = async (): Promise<Record<string, unknown>> =>
      JSON.parse((await http(port, 'GET', '/status.json')).body).nodes.find(
        (node: { name: string }) => node.name === 'goods',
      );
    const first = await goodsOf();
    expect(first).toMatchObject({ connecting: true });
    expect(first).not.toHaveProperty('connected');
    expect(first).not.toHaveProperty('unreachableSeconds');
    await vi.waitFor(
      async () =>
        expect(await goodsOf()).toMatchObject({
          unreachableSeconds: expect.any(Number),
          unreachableReason: 'no-answer',
        }),
      { timeout: 5_000, interval: 100 },
    );
    expect(await goodsOf()).not.toHaveProperty('connecting');
  });
});
