import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { credentials, status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { readHttpRoutes } from '../../src/common/http-routes.js';
import { createDistributorServer, type DistributorServer } from '../../src/distributor/distributor-server.js';
import { NodeState, type Snapshot } from '../../src/gen/distributor.js';
import { GoodsServiceClient, MembersServiceClient } from '../../src/gen/services.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import type { ServiceConfig } from '../../src/services/common/service-config.js';
import { type RunningService, startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { membersService } from '../../src/services/members/members-service.js';
import { checkHealth } from '../helpers/grpc-clients.js';
import { captureLog, type LogLine } from '../helpers/log-capture.js';
import { createTestDatabase } from '../helpers/mysql.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { testServiceConfig } from './support/service-config.js';
import { call } from './support/test-server.js';

const FAST_RETRY = { initialMs: 20, maxMs: 200 };
const mysqlUrl = inject('mysqlUrl');

describe('a service and the distributor', () => {
  let dataDir: string;
  let distributor: DistributorServer | undefined;
  let service: RunningService | undefined;
  let clients: Array<{ close(): void }> = [];

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'shop-registration-'));
  });
  afterEach(async () => {
    for (const client of clients) client.close();
    clients = [];
    await service?.stop();
    await distributor?.stop(100);
    service = undefined;
    distributor = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  async function startDistributor(port = 0): Promise<number> {
    distributor = createDistributorServer();
    return distributor.listen('127.0.0.1', port);
  }

  function goodsClient(port: number): GoodsServiceClient {
    const client = new GoodsServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    clients.push(client);
    return client;
  }

  it.runIf(mysqlUrl)(
    'is listed as draining while its database is unreachable, and serving again once it is back',
    async () => {
      const database = await createTestDatabase(mysqlUrl);
      const server = new URL(mysqlUrl);
      const proxy = await TcpProxy.start({ host: server.hostname, port: Number(server.port || 3306) });
      try {
        const distributorPort = await startDistributor();
        const connection = {
          ...parseMysqlUrl(database.url, 'test database'),
          host: '127.0.0.1',
          port: proxy.port,
        };
        service = await startService(
          goodsService,
          testServiceConfig(`127.0.0.1:${distributorPort}`, { kind: 'mysql', connection }),
          { registrationBackoff: FAST_RETRY, databaseProbeIntervalMs: 100, drainNoticeMs: 5_000 },
        );
        const stateOf = () => distributor!.registry.snapshot().nodes[0]?.state;
        await vi.waitFor(() => expect(stateOf()).toBe(NodeState.NODE_STATE_SERVING));
        await proxy.refuse();
        await vi.waitFor(() => expect(stateOf()).toBe(NodeState.NODE_STATE_DRAINING), { timeout: 5_000 });
        await proxy.restore();
        await vi.waitFor(() => expect(stateOf()).toBe(NodeState.NODE_STATE_SERVING), { timeout: 5_000 });
        await proxy.refuse();
        await vi.waitFor(() => expect(stateOf()).toBe(NodeState.NODE_STATE_DRAINING), { timeout: 5_000 });
        // A stop while listed draining does not wait for a confirmation that cannot come (5 s here).
        const begun = performance.now();
        await service.stop();
        expect(performance.now() - begun).toBeLessThan(3_000);
        service = undefined;
      } finally {
        await proxy.close();
        await database.drop();
      }
    },
  );

  /** Goods on SQLite in dataDir, registering with `distributor`: its log lines, captured. */
  async function startLoggedGoods(
    distributor: string,
    overrides: Partial<ServiceConfig> = {},
  ): Promise<LogLine[]> {
    const captured = captureLog('goods');
    const config = { ...testServiceConfig(distributor, { kind: 'sqlite', dataDir }), ...overrides };
    service = await startService(goodsService, config, {
      log: captured.log,
      registrationBackoff: FAST_RETRY,
    });
    return captured.lines;
  }
  const eventsOf = (lines: LogLine[], event: string) => lines.filter((line) => line.event === event);

  it('warns of a SQLite file other users can read, and not of one it made itself', async () => {
    expect(eventsOf(await startLoggedGoods('127.0.0.1:9'), 'shared-data-file')).toEqual([]);
    await service!.stop();
    await chmod(join(dataDir, 'goods.sqlite'), 0o644);
    expect(eventsOf(await startLoggedGoods('127.0.0.1:9'), 'shared-data-file')).toEqual([
      expect.objectContaining({
        mode: '644',
        msg: expect.stringContaining('can be read by other users (mode 644)'),
      }),
    ]);
  });

  it('warns when it listens on loopback alone while the distributor is elsewhere, and not when it is on loopback too', async () => {
    // 192.0.2.1 (TEST-NET-1) is never dialled: the registration retries in the background and the test stops first.
    expect(eventsOf(await startLoggedGoods('192.0.2.1:9000'), 'unreachable-address')).toEqual([
      expect.objectContaining({
        msg: expect.stringContaining(
          'listening on 127.0.0.1 only, while the distributor at 192.0.2.1:9000 is not on loopback',
        ),
      }),
    ]);
    await service!.stop();
    for (const distributor of ['localhost:9000', '0.0.0.0:9000']) {
      expect(eventsOf(await startLoggedGoods(distributor), 'unreachable-address')).toEqual([]);
      await service!.stop();
      service = undefined;
    }
  });

  it('warns when it advertises loopback, or listens on loopback under another advertised host, while the distributor is elsewhere', async () => {
    // Found by probing across network namespaces: --advertise-host 127.0.0.1 was registered without a word,
    // and every gateway dialled its own machine.
    expect(
      eventsOf(
        await startLoggedGoods('192.0.2.1:9000', { host: '0.0.0.0', advertiseHost: '127.0.0.1' }),
        'unreachable-address',
      ),
    ).toEqual([
      expect.objectContaining({
        advertiseHost: '127.0.0.1',
        msg: expect.stringContaining('--advertise-host (ADVERTISE_HOST) 127.0.0.1 is loopback'),
      }),
    ]);
    await service!.stop();
    expect(
      eventsOf(
        await startLoggedGoods('192.0.2.1:9000', { advertiseHost: '192.0.2.7' }),
        'unreachable-address',
      ),
    ).toEqual([
      expect.objectContaining({
        msg: expect.stringContaining(
          'lists this service at 192.0.2.7 (--advertise-host), where nothing listens',
        ),
      }),
    ]);
    await service!.stop();
    for (const [distributor, advertiseHost] of [
      ['127.0.0.1:9000', 'localhost'],
      ['192.0.2.1:9000', '192.0.2.7'],
    ] as const) {
      expect(
        eventsOf(
          await startLoggedGoods(distributor, { host: '0.0.0.0', advertiseHost }),
          'unreachable-address',
        ),
      ).toEqual([]);
      await service!.stop();
      service = undefined;
    }
  });

  it('warns when it listens on IPv4 alone while it is listed at an IPv6 address, and not when it listens on both', async () => {
    // Found by probing across IPv6 hosts with the README's --host 0.0.0.0: registered at its IPv6
    // address without a word, and every gateway's connect refused. 2001:db8::/32 is never dialled.
    expect(
      eventsOf(await startLoggedGoods('[2001:db8::1]:9000', { host: '0.0.0.0' }), 'unreachable-address'),
    ).toEqual([
      expect.objectContaining({
        host: '0.0.0.0',
        msg: expect.stringContaining(
          'listening on 0.0.0.0, which takes no IPv6 connections, while the distributor lists this service at its IPv6 address',
        ),
      }),
    ]);
    await service!.stop();
    expect(
      eventsOf(
        await startLoggedGoods('192.0.2.1:9000', { host: '0.0.0.0', advertiseHost: '2001:db8::7' }),
        'unreachable-address',
      ),
    ).toEqual([
      expect.objectContaining({
        advertiseHost: '2001:db8::7',
        msg: expect.stringContaining(
          'lists this service at 2001:db8::7 (--advertise-host) where nothing listens',
        ),
      }),
    ]);
    await service!.stop();
    for (const [distributor, host, advertiseHost] of [
      ['[2001:db8::1]:9000', '::', ''],
      ['192.0.2.1:9000', '::', '2001:db8::7'],
      ['[2001:db8::1]:9000', '0.0.0.0', '192.0.2.7'],
    ] as const) {
      expect(
        eventsOf(await startLoggedGoods(distributor, { host, advertiseHost }), 'unreachable-address'),
      ).toEqual([]);
      await service!.stop();
      service = undefined;
    }
  });

  it('is listed at its --host address without the zone id it was given, which the distributor refuses', async () => {
    const distributorPort = await startDistributor();
    service = await startService(
      goodsService,
      { ...testServiceConfig(`127.0.0.1:${distributorPort}`, { kind: 'sqlite', dataDir }), host: '::1%lo' },
      { registrationBackoff: FAST_RETRY },
    );
    await vi.waitFor(() => expect(distributor!.registry.snapshot().nodes).toHaveLength(1));
    expect(distributor!.registry.snapshot().nodes[0]).toMatchObject({
      id: `goods@[::1]:${service.port}`,
      host: '::1',
    });
  });

  it('warns when it listens on IPv4 alone while a distributor on this machine, dialled at ::1, lists it there', async () => {
    // Measured: a distributor on --host ::1 listed a service on 0.0.0.0 at [::1]:port, without a word.
    expect(eventsOf(await startLoggedGoods('[::1]:9', { host: '0.0.0.0' }), 'unreachable-address')).toEqual([
      expect.objectContaining({
        msg: expect.stringContaining('listening on 0.0.0.0, which takes no IPv6 connections'),
      }),
    ]);
    await service!.stop();
    for (const [distributor, host] of [
      ['127.0.0.1:9', '0.0.0.0'],
      ['[::1]:9', '::'],
      ['[::1]:9', '127.0.0.1'],
    ] as const) {
      expect(eventsOf(await startLoggedGoods(distributor, { host }), 'unreachable-address')).toEqual([]);
      await service!.stop();
      service = undefined;
    }
  });

  it('registers the port it really got and a descriptor set of its service alone, whose HttpRules are its routes', async () => {
    const distributorPort = await startDistributor();
    service = await startService(
      goodsService,
      testServiceConfig(`127.0.0.1:${distributorPort}`, { kind: 'sqlite', dataDir }),
      { registrationBackoff: FAST_RETRY },
    );
    await vi.waitFor(() => expect(distributor!.registry.snapshot().nodes).toHaveLength(1));
    const [node] = distributor!.registry.snapshot().nodes;
    expect(node).toMatchObject({
      id: `goods@127.0.0.1:${service.port}`,
      name: 'goods',
      host: '127.0.0.1',
      port: service.port,
      state: NodeState.NODE_STATE_SERVING,
      routes: [],
    });
    // Listed by hash; the distributor holds the set once and serves it by that hash.
    expect(node!.descriptorSet).toHaveLength(0);
    const held = distributor!.registry.descriptorSets.get(node!.descriptorSetSha256)!;
    expect(held.sha256).toEqual(node!.descriptorSetSha256);
    const descriptors = createFileRegistry(fromBinary(FileDescriptorSetSchema, held.bytes));
    expect(descriptors.getService('shop.v1.GoodsService')?.methods.map((method) => method.name)).toEqual([
      'CreateGoods',
      'ListGoods',
      'DeleteGoods',
    ]);
    // services.proto defines the other services too; the goods node registers its own alone.
    expect(descriptors.getService('shop.v1.MembersService')).toBeUndefined();
    expect(
      readHttpRoutes(descriptors).routes.map((route) => [
        route.key,
        route.grpcMethod,
        route.envelopeFields.map((field) => field.name),
      ]),
    ).toEqual([
      ['POST /goods', 'shop.v1.GoodsService/CreateGoods', []],
      ['GET /goods', 'shop.v1.GoodsService/ListGoods', ['results']],
      ['DELETE /goods', 'shop.v1.GoodsService/DeleteGoods', []],
      ['DELETE /goods/*', 'shop.v1.GoodsService/DeleteGoods', []],
    ]);
    expect(service.port).toBeGreaterThan(0);
    const client = goodsClient(service.port);
    await expect(call(client, client.createGoods, GOODS)).resolves.toEqual({ id: 1 });
  });

  it('serves while the distributor is away, and registers again when it is back', async () => {
    const distributorPort = await startDistributor();
    service = await startService(
      goodsService,
      testServiceConfig(`127.0.0.1:${distributorPort}`, { kind: 'sqlite', dataDir }),
      { registrationBackoff: FAST_RETRY },
    );
    await vi.waitFor(() => expect(service!.registration.nodeId).toBeDefined());
    await distributor!.stop(100);
    await vi.waitFor(() => expect(service!.registration.nodeId).toBeUndefined());

    const client = goodsClient(service.port);
    await expect(call(client, client.createGoods, GOODS)).resolves.toEqual({ id: 1 });
    expect(await checkHealth(`127.0.0.1:${service.port}`)).toBe('SERVING');

    await startDistributor(distributorPort);
    await vi.waitFor(
      () => expect(distributor!.registry.snapshot().nodes.map((node) => node.name)).toEqual(['goods']),
      {
        timeout: 5_000,
      },
    );
  });

  it('registers once the distributor comes up, whatever the start order', async () => {
    const probe = createDistributorServer();
    const distributorPort = await probe.listen('127.0.0.1', 0);
    await probe.stop(0); // a port that was free a moment ago, with nothing on it now
    service = await startService(
      goodsService,
      testServiceConfig(`127.0.0.1:${distributorPort}`, { kind: 'sqlite', dataDir }),
      { registrationBackoff: FAST_RETRY },
    );
    const client = goodsClient(service.port);
    await expect(call(client, client.createGoods, GOODS)).resolves.toEqual({ id: 1 });
    await startDistributor(distributorPort);
    await vi.waitFor(() => expect(distributor!.registry.snapshot().nodes).toHaveLength(1), {
      timeout: 5_000,
    });
  });

  it('a graceful stop says draining, lets calls in flight finish, refuses new ones, then leaves', async () => {
    const distributorPort = await startDistributor();
    const snapshots: Snapshot[] = [];
    distributor!.registry.subscribe((snapshot) => snapshots.push(snapshot));
    // Members with the production scrypt parameters: a sign-in takes long enough to be in flight.
    service = await startService(
      membersService,
      testServiceConfig(`127.0.0.1:${distributorPort}`, { kind: 'sqlite', dataDir }),
      { registrationBackoff: FAST_RETRY },
    );
    await vi.waitFor(() => expect(service!.registration.nodeId).toBeDefined());
    const client = new MembersServiceClient(`127.0.0.1:${service.port}`, credentials.createInsecure());
    clients.push(client);
    await call(client, client.createMember, { username: 'test_account', password: '1234' });

    const inFlight = Array.from({ length: 4 }, () =>
      call(client, client.signIn, { username: 'test_account', password: '1234' }),
    );
    const stopped = service.stop();
    await expect(Promise.all(inFlight)).resolves.toEqual(Array(4).fill({ userid: 1 }));
    await stopped;
    await expect(
      call(client, client.signIn, { username: 'test_account', password: '1234' }, 2_000),
    ).rejects.toMatchObject({ code: status.UNAVAILABLE });

    const states = snapshots.map(
      (snapshot) => snapshot.nodes.find((node) => node.name === 'members')?.state ?? 'gone',
    );
    expect(states.filter((state, index) => state !== states[index - 1])).toEqual([
      NodeState.NODE_STATE_SERVING,
      NodeState.NODE_STATE_DRAINING,
      'gone',
    ]);
  });

  it("a stop gives each of its steps only what is left of the launcher's limit: a slow database close is cut short", async () => {
    const distributorPort = await startDistributor();
    // The SQLite store, except that closing it takes as long as it is allowed to (a pool whose
    // connections are still busy, say), 2 s when nothing says.
    const closeTimeouts: Array<number | undefined> = [];
    const slowToClose: typeof goodsService = {
      ...goodsService,
      stores: {
        ...goodsService.stores,
        sqlite: (file, options) => {
          const store = goodsService.stores.sqlite(file, options);
          const close = store.close.bind(store);
          store.close = async (timeoutMs?: number) => {
            closeTimeouts.push(timeoutMs);
            await new Promise((resolve) => setTimeout(resolve, timeoutMs ?? 2_000));
            await close();
          };
          return store;
        },
      },
    };
    service = await startService(
      slowToClose,
      testServiceConfig(`127.0.0.1:${distributorPort}`, { kind: 'sqlite', dataDir }),
      { registrationBackoff: FAST_RETRY },
    );
    await vi.waitFor(() => expect(service!.registration.nodeId).toBeDefined());

    // A stop begun 9 s ago (by the clock the launcher's 10 s are counted on) has 0.5 s left.
    const startedAt = performance.now();
    await service.stop(startedAt - 9_000);
    const stopMs = performance.now() - startedAt;
    expect(closeTimeouts).toHaveLength(1);
    expect(closeTimeouts[0]).toBeLessThanOrEqual(500);
    expect(stopMs).toBeLessThan(1_000);
  });
});

const GOODS = { name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
