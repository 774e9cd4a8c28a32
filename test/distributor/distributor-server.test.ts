import { credentials, status } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import { freePort } from '../../src/bench/process-probes.js';
import { type DistributorServer, observedHost } from '../../src/distributor/distributor-server.js';
import { NodeRegistry } from '../../src/distributor/node-registry.js';
import { ReservedContract } from '../../src/distributor/reserved-contract.js';
import {
  type NodeDescription,
  NodeState,
  type RegisterRequest,
  type Snapshot,
} from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { checkHealth, reflect, watchHealth } from '../helpers/grpc-clients.js';
import { gatewayNode, goodsDescriptorSet, goodsNode } from '../helpers/nodes.js';
import { startSilentServer } from '../helpers/silent-server.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { unloadedStopwatch } from '../helpers/unloaded-stopwatch.js';
import { capturingLogger } from './support/capturing-logger.js';
import { describeNode, stateMessage, useDistributorHarness } from './support/distributor-harness.js';

const { cleanups, startDistributor, openRegistration: open, watch, list } = useDistributorHarness();
const openRegistration = (address: string, ...messages: RegisterRequest[]) => open(address, messages);

const listedIds = (snapshot: Snapshot) => snapshot.nodes.map((node) => `${node.id}:${NodeState[node.state]}`);

describe('distributor over gRPC', () => {
  it('sends two nodes and a watcher the same lists, in order, on every change', async () => {
    const { address } = await startDistributor();
    const watcher = watch(address);
    await vi.waitFor(() => expect(watcher).toHaveLength(1));

    const goods = openRegistration(address, describeNode(goodsNode()));
    await vi.waitFor(() => expect(watcher).toHaveLength(2));
    const gateway = openRegistration(address, describeNode(gatewayNode()));
    await vi.waitFor(() => expect(watcher).toHaveLength(3));
    goods.call.write(stateMessage(NodeState.NODE_STATE_DRAINING));
    await vi.waitFor(() => expect(watcher).toHaveLength(4));
    goods.call.end();
    expect((await goods.ended).code).toBe(status.OK);
    await vi.waitFor(() => expect(watcher).toHaveLength(5));

    expect(watcher.map((snapshot) => snapshot.revision)).toEqual([0, 1, 2, 3, 4]);
    expect(watcher.map(listedIds)).toEqual([
      [],
      ['goods@127.0.0.1:9010:NODE_STATE_SERVING'],
      ['goods@127.0.0.1:9010:NODE_STATE_SERVING', 'gateway@127.0.0.1:8000:NODE_STATE_SERVING'],
      ['goods@127.0.0.1:9010:NODE_STATE_DRAINING', 'gateway@127.0.0.1:8000:NODE_STATE_SERVING'],
      ['gateway@127.0.0.1:8000:NODE_STATE_SERVING'],
    ]);
    expect(goods.revisions()).toEqual([1, 2, 3]);
    expect(goods.responses.every((response) => response.nodeId === 'goods@127.0.0.1:9010')).toBe(true);
    await vi.waitFor(() => expect(gateway.revisions()).toEqual([2, 3, 4]));
    expect(gateway.responses[0]!.snapshot).toEqual(watcher[2]);
    expect((await list(address)).snapshot).toEqual(watcher[4]);
  });

  it('lists a node that gives no host under the address it connected from', async () => {
    const { address } = await startDistributor();
    const node = openRegistration(address, describeNode(goodsNode({ host: '' })));
    await vi.waitFor(() => expect(node.responses).toHaveLength(1));
    expect(node.responses[0]!.nodeId).toBe('goods@127.0.0.1:9010');
    expect(observedHost('::ffff:10.1.2.3:5000')).toBe('10.1.2.3');
    expect(observedHost('[::1]:5000')).toBe('::1');
  });

  it('drops a node whose connection is destroyed without a goodbye', async () => {
    const { address, port } = await startDistributor();
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    const node = openRegistration(`127.0.0.1:${proxy.port}`, describeNode(goodsNode()));
    await vi.waitFor(() => expect(node.responses).toHaveLength(1));
    expect((await list(address)).snapshot!.nodes).toHaveLength(1);
    await proxy.refuse();
    await vi.waitFor(async () => expect((await list(address)).snapshot!.nodes).toEqual([]));
  });

  it('drops a peer that goes silent, through keepalive', async () => {
    const { address, port } = await startDistributor({ keepalive: { timeMs: 300, timeoutMs: 300 } });
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    const node = openRegistration(`127.0.0.1:${proxy.port}`, describeNode(goodsNode()));
    await vi.waitFor(() => expect(node.responses).toHaveLength(1));
    proxy.blackhole();
    await vi.waitFor(async () => expect((await list(address)).snapshot!.nodes).toEqual([]), {
      timeout: 10_000,
    });
  });

  it('says why it dropped a peer that went silent: not "closed by the node"', async () => {
    // Found by probing across network namespaces: a service whose link went down was logged as
    // "left, closed by the node", as if it had said goodbye.
    const captured = capturingLogger();
    const { address, port } = await startDistributor({
      keepalive: { timeMs: 300, timeoutMs: 300 },
      log: captured.log,
    });
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    const node = openRegistration(`127.0.0.1:${proxy.port}`, describeNode(goodsNode()));
    await vi.waitFor(() => expect(node.responses).toHaveLength(1));
    proxy.blackhole();
    await vi.waitFor(() => expect(captured.lines.filter((line) => line.event === 'leave')).toHaveLength(1), {
      timeout: 10_000,
    });
    expect(captured.lines.find((line) => line.event === 'leave')!.reason).toMatch(
      /^stream lost: the node cancelled it, its process ended, or the link failed$/,
    );
    const leaving = openRegistration(address, describeNode(goodsNode({ port: 9011 })));
    await vi.waitFor(() => expect(leaving.responses).toHaveLength(1));
    leaving.call.end();
    await vi.waitFor(() => expect(captured.lines.filter((line) => line.event === 'leave')).toHaveLength(2));
    expect(captured.lines.filter((line) => line.event === 'leave')[1]!.reason).toBe('closed by the node');
  });

  it('replaces a node that registers again with the same identity and ends the old stream', async () => {
    const { address } = await startDistributor();
    const first = openRegistration(address, describeNode(goodsNode()));
    await vi.waitFor(() => expect(first.responses).toHaveLength(1));
    const second = openRegistration(address, describeNode(goodsNode()));
    const ended = await first.ended;
    expect(ended.code).toBe(status.ABORTED);
    await vi.waitFor(() => expect(second.responses).toHaveLength(1));
    expect((await list(address)).snapshot!.nodes.map((node) => node.id)).toEqual(['goods@127.0.0.1:9010']);
  });

  it.each([
    [
      'a first message that is a state',
      [stateMessage(NodeState.NODE_STATE_DRAINING)],
      'the first message must describe the node',
    ],
    [
      'an empty first message',
      [{ kind: undefined, options: undefined }],
      'the first message must describe the node',
    ],
    ['a node without a name', [describeNode(goodsNode({ name: '' }))], 'name is required'],
    ['a node without a port', [describeNode(goodsNode({ port: 0 }))], 'port must be from 1 to 65535'],
    [
      'a route that names no package.Service/Method',
      [
        describeNode(
          goodsNode({
            routes: [{ httpMethod: 'GET', path: '/goods', grpcMethod: 'ListGoods', responseFields: [] }],
          }),
        ),
      ],
      'package.Service/Method',
    ],
    [
      'a route that is not METHOD /path',
      [
        describeNode(
          goodsNode({
            routes: [
              {
                httpMethod: 'GET',
                path: 'goods',
                grpcMethod: 'shop.v1.GoodsService/ListGoods',
                responseFields: [],
              },
            ],
          }),
        ),
      ],
      'the path must start with "/"',
    ],
    [
      'a descriptor set that does not parse',
      [describeNode(gatewayNode({ name: 'rogue', descriptorSet: goodsDescriptorSet().subarray(0, 100) }))],
      'descriptor_set must be a google.protobuf.FileDescriptorSet',
    ],
    [
      'a second description',
      [describeNode(goodsNode({ port: 9099 })), describeNode(goodsNode({ port: 9099 }))],
      'only the first message',
    ],
    [
      'an empty message after the description (or a case of the oneof it does not know)',
      [describeNode(goodsNode({ port: 9099 })), { kind: undefined, options: undefined }],
      'a message after the first must carry a state or a resync',
    ],
    [
      'an unknown state',
      [describeNode(goodsNode({ port: 9099 })), stateMessage(NodeState.NODE_STATE_UNSPECIFIED)],
      'state must be',
    ],
  ])('refuses %s with INVALID_ARGUMENT and disturbs no one else', async (_label, messages, message) => {
    const { address } = await startDistributor();
    const bystander = openRegistration(address, describeNode(gatewayNode()));
    await vi.waitFor(() => expect(bystander.responses).toHaveLength(1));

    const refused = openRegistration(address, ...messages);
    const ended = await refused.ended;
    expect(ended.code).toBe(status.INVALID_ARGUMENT);
    expect(ended.details).toContain(message);

    const nodes = (await list(address)).snapshot!.nodes;
    expect(nodes.map((node) => node.id)).toEqual(['gateway@127.0.0.1:8000']);
    bystander.call.write(stateMessage(NodeState.NODE_STATE_DRAINING));
    await vi.waitFor(async () =>
      expect((await list(address)).snapshot!.nodes[0]!.state).toBe(NodeState.NODE_STATE_DRAINING),
    );
  });

  it("refuses a node of another name that declares a service of the shop's contract, with PERMISSION_DENIED, and logs it", async () => {
    const log = capturingLogger();
    const { address } = await startDistributor({ log: log.log });
    // No goods is registered: goods' service and routes are goods' all the same.
    const rival = openRegistration(address, describeNode(goodsNode({ name: 'rival', port: 9099 })));
    expect(await rival.ended).toMatchObject({
      code: status.PERMISSION_DENIED,
      details:
        'service "shop.v1.GoodsService" is served by "goods" (the served_by option of the shop\'s contract): a node named "rival" cannot serve it',
    });
    expect(log.lines).toContainEqual(
      expect.objectContaining({ event: 'refused', code: 'PERMISSION_DENIED', peer: '127.0.0.1' }),
    );
    expect((await list(address)).snapshot!.nodes).toEqual([]);
    const goods = openRegistration(address, describeNode(goodsNode()));
    await vi.waitFor(() => expect(goods.responses).toHaveLength(1));
  });

  it('refuses a service whose REST routes another service serves, with ALREADY_EXISTS, and logs it', async () => {
    const log = capturingLogger();
    // The first-come rule of routes outside the shop's contract, shown on goods' as if they were.
    const { address } = await startDistributor({
      log: log.log,
      registry: new NodeRegistry({ log: log.log, reserved: ReservedContract.none() }),
    });
    const goods = openRegistration(address, describeNode(goodsNode()));
    await vi.waitFor(() => expect(goods.responses).toHaveLength(1));
    // Another service declaring GoodsService's routes (its descriptors copied).
    const rival = openRegistration(address, describeNode(goodsNode({ name: 'rival', port: 9099 })));
    expect(await rival.ended).toMatchObject({
      code: status.ALREADY_EXISTS,
      details: expect.stringContaining(
        'route "POST /goods" is served by goods@127.0.0.1:9010: a node named "rival" cannot serve it too',
      ),
    });
    expect(
      log.lines.some((line) => line.event === 'route-conflict' && line.node === 'rival@127.0.0.1:9099'),
    ).toBe(true);
    // The rival retries (its holder may leave): refused each time, one line per 10 s, not one a try.
    for (let attempt = 0; attempt < 3; attempt++) {
      const again = openRegistration(address, describeNode(goodsNode({ name: 'rival', port: 9099 })));
      expect(await again.ended).toMatchObject({ code: status.ALREADY_EXISTS });
    }
    expect(log.lines.filter((line) => line.event === 'route-conflict')).toHaveLength(1);
    // Another instance of goods declares them as well: no conflict.
    const second = openRegistration(address, describeNode(goodsNode({ port: 9011 })));
    await vi.waitFor(() => expect(second.responses).toHaveLength(1));
    expect((await list(address)).snapshot!.nodes.map((node) => node.id)).toEqual([
      'goods@127.0.0.1:9010',
      'goods@127.0.0.1:9011',
    ]);
  });

  it('serves reflection v1 and v1alpha that resolves every type of its methods, and health', async () => {
    const { address } = await startDistributor();
    for (const version of ['v1', 'v1alpha'] as const) {
      const { services, registry } = await reflect(address, version);
      expect(services).toEqual(
        expect.arrayContaining(['shop.v1.DistributorService', 'grpc.health.v1.Health']),
      );
      const service = registry.getService('shop.v1.DistributorService')!;
      expect(service.methods.map((method) => method.name)).toEqual([
        'Register',
        'Watch',
        'List',
        'GetDescriptorSet',
      ]);
      for (const method of service.methods) {
        expect(registry.getMessage(method.input.typeName)).toBeDefined();
        expect(registry.getMessage(method.output.typeName)).toBeDefined();
      }
      const node = registry.getMessage('shop.v1.Node')!;
      expect(node.fields.find((field) => field.name === 'registered_at')!.message!.typeName).toBe(
        'google.protobuf.Timestamp',
      );
      expect(registry.getService('grpc.health.v1.Health')).toBeDefined();
    }
    expect(await checkHealth(address)).toBe('SERVING');
    expect(await checkHealth(address, 'shop.v1.DistributorService')).toBe('SERVING');
  });
});

describe('registration client', () => {
  const fastBackoff = { initialMs: 20, maxMs: 200 };

  function registrationClient(
    address: string,
    node: NodeDescription,
    watchNodes = false,
  ): RegistrationClient {
    const registration = new RegistrationClient({
      distributor: address,
      node,
      backoff: fastBackoff,
      watchNodes,
    });
    cleanups.push(() => registration.stop(200));
    return registration;
  }

  it('registers by itself once a distributor that started later comes up', async () => {
    const probe = await startDistributor();
    await probe.distributor.stop(100);
    const registration = registrationClient(probe.address, goodsNode(), true);
    registration.start();
    const snapshots: Snapshot[] = [];
    registration.on('snapshot', (snapshot) => snapshots.push(snapshot));
    const { distributor } = await startDistributor({}, probe.port);
    await vi.waitFor(() => expect(registration.nodeId).toBe('goods@127.0.0.1:9010'));
    expect(distributor.registry.snapshot().nodes.map((node) => node.id)).toEqual(['goods@127.0.0.1:9010']);
    await vi.waitFor(() => expect(snapshots.at(-1)?.nodes).toHaveLength(1));
    expect(registration.snapshot).toBe(snapshots.at(-1));
    // The list it keeps has the descriptor set filled in, fetched by its hash.
    expect(registration.snapshot!.nodes[0]!.descriptorSet).toEqual(goodsDescriptorSet());
  });

  it('ends health Watch calls when it stops, NOT_SERVING first, rather than wait its grace for them', async () => {
    const { distributor, address } = await startDistributor();
    // Health needs no token: anybody may hold one open (a load balancer, a monitoring probe).
    const watcher = watchHealth(address);
    cleanups.push(() => watcher.close());
    await vi.waitFor(() => expect(watcher.statuses).toEqual(['SERVING']));
    // Timed less the waits for a CPU: a busy machine stretches the stop's work, not a grace waited out.
    const stopMs = unloadedStopwatch();
    await distributor.stop(5_000);
    expect(stopMs()).toBeLessThan(2_000);
    expect(watcher.statuses).toEqual(['SERVING', 'NOT_SERVING']);
    expect((await watcher.ended).code).toBe(status.UNAVAILABLE);
  });

  it('does not tell the nodes still connected that the others left while it is stopping', async () => {
    const { distributor, address } = await startDistributor();
    const watcher = watch(address);
    const goods = openRegistration(address, describeNode(goodsNode()));
    // One after the other, so that the revisions each sees are known.
    await vi.waitFor(() => expect(goods.revisions()).toEqual([1]));
    const gateway = openRegistration(address, describeNode(gatewayNode()));
    await vi.waitFor(() => expect(watcher.at(-1)!.nodes).toHaveLength(2));
    await vi.waitFor(() => expect(gateway.revisions()).toEqual([2]));
    await distributor.stop(100);
    expect((await goods.ended).code).toBe(status.UNAVAILABLE);
    expect((await gateway.ended).code).toBe(status.UNAVAILABLE);
    expect(gateway.revisions()).toEqual([2]);
    expect(goods.revisions()).toEqual([1, 2]);
    expect(watcher.at(-1)!.nodes).toHaveLength(2);
  });

  it('registers every client again by itself after the distributor restarts on the same port', async () => {
    const first = await startDistributor();
    const goods = registrationClient(first.address, goodsNode());
    const gateway = registrationClient(first.address, gatewayNode(), true);
    goods.start();
    gateway.start();
    await vi.waitFor(() => expect(first.distributor.registry.snapshot().nodes).toHaveLength(2));

    const disconnected = vi.fn();
    goods.on('disconnected', disconnected);
    await first.distributor.stop(100);
    await vi.waitFor(() => expect(disconnected).toHaveBeenCalled());
    expect(disconnected.mock.calls[0]![0].code).toBe(status.UNAVAILABLE);

    const second: DistributorServer = (await startDistributor({}, first.port)).distributor;
    await vi.waitFor(() =>
      expect(
        second.registry
          .snapshot()
          .nodes.map((node) => node.id)
          .sort(),
      ).toEqual(['gateway@127.0.0.1:8000', 'goods@127.0.0.1:9010']),
    );
    await vi.waitFor(() => expect(gateway.snapshot?.nodes).toHaveLength(2));
  });

  it('re-registers with the state it last set', async () => {
    const first = await startDistributor();
    const goods = registrationClient(first.address, goodsNode());
    goods.start();
    await vi.waitFor(() => expect(goods.nodeId).toBeDefined());
    goods.setState(NodeState.NODE_STATE_DRAINING);
    await vi.waitFor(() =>
      expect(first.distributor.registry.snapshot().nodes[0]!.state).toBe(NodeState.NODE_STATE_DRAINING),
    );
    await first.distributor.stop(100);
    const second = (await startDistributor({}, first.port)).distributor;
    await vi.waitFor(() =>
      expect(second.registry.snapshot().nodes[0]?.state).toBe(NodeState.NODE_STATE_DRAINING),
    );
  });

  it('sends its token as authorization metadata, over the credentials it is given', async () => {
    const { distributor, address } = await startDistributor({ registryToken: 'the-token' });
    const registration = new RegistrationClient({
      distributor: address,
      node: goodsNode(),
      backoff: fastBackoff,
      token: 'the-token',
      credentials: credentials.createInsecure(),
    });
    cleanups.push(() => registration.stop(200));
    registration.start();
    await vi.waitFor(() => expect(registration.nodeId).toBe('goods@127.0.0.1:9010'));
    expect(distributor.registry.snapshot().nodes).toHaveLength(1);
  });

  it('gives up on a refusal no retry can change (no token): one error, a refused event, no retry', async () => {
    const { log, lines } = capturingLogger();
    const { address } = await startDistributor({ registryToken: 'the-token' });
    const registration = new RegistrationClient({
      distributor: address,
      node: goodsNode(),
      backoff: fastBackoff,
      log,
    });
    cleanups.push(() => registration.stop(200));
    const disconnected = vi.fn();
    const refused = vi.fn();
    registration.on('disconnected', disconnected);
    registration.on('refused', refused);
    registration.start();
    await vi.waitFor(() => expect(refused).toHaveBeenCalledTimes(1));
    expect(refused.mock.calls[0]![0]).toMatchObject({ code: status.UNAUTHENTICATED });
    expect(registration.refusal?.code).toBe(status.UNAUTHENTICATED);
    expect(lines.filter((line) => line.level >= 40).map((line) => [line.level, line.msg])).toEqual([
      [
        50,
        'the distributor refused this node (UNAUTHENTICATED: missing credentials: send the registry token as metadata "authorization: Bearer <token>"); ' +
          'retrying cannot change that, so registration stops here' +
          " — this component has no registry token: set SHOP_REGISTRY_TOKEN to the distributor's",
      ],
    ]);
    // Its status by name, as the distributor's own refusal line and a service's call lines write it.
    expect(lines.find((line) => line.level === 50)).toMatchObject({
      event: 'refused',
      code: 'UNAUTHENTICATED',
    });
    // A retry would come within fastBackoff's 20 ms: none comes.
    await expect(
      vi.waitFor(() => expect(disconnected).toHaveBeenCalledTimes(2), { timeout: 500 }),
    ).rejects.toThrow();
    expect(registration.nodeId).toBeUndefined();
  });

  it('keeps retrying a refusal that may clear, warns at each, and registers once it has cleared', async () => {
    const { log, warnings } = capturingLogger();
    const { distributor, address } = await startDistributor({ limits: { nodesPerName: 1 } });
    const first = openRegistration(address, describeNode(goodsNode()));
    await vi.waitFor(() => expect(first.responses).toHaveLength(1));
    const second = new RegistrationClient({
      distributor: address,
      node: goodsNode({ port: 9011 }),
      backoff: fastBackoff,
      log,
    });
    cleanups.push(() => second.stop(200));
    const refused = vi.fn();
    second.on('refused', refused);
    second.start();
    await vi.waitFor(() => expect(warnings().length).toBeGreaterThanOrEqual(3));
    expect(new Set(warnings().map((line) => line.msg))).toEqual(
      new Set([
        'the distributor refused this node for now (RESOURCE_EXHAUSTED: too many nodes named goods: at most 1); retrying with backoff',
      ]),
    );
    first.call.end();
    await vi.waitFor(() => expect(second.nodeId).toBe('goods@127.0.0.1:9011'));
    expect(distributor.registry.snapshot().nodes.map((node) => node.id)).toEqual(['goods@127.0.0.1:9011']);
    expect(refused).not.toHaveBeenCalled();
  });

  it('backs off, with one warning that says why, when another live process registers the same node', async () => {
    // Two instances given the same --advertise-host and port: each takeover ends the other's
    // registration. Were the backoff restarted at each registration, they would trade the node
    // every few ms for ever, a warning and two registry changes each time.
    const { distributor, address } = await startDistributor();
    const backoff = { initialMs: 10, maxMs: 300 };
    const logs = [capturingLogger(), capturingLogger()];
    const clients = logs.map(({ log }) => {
      const registration = new RegistrationClient({ distributor: address, node: goodsNode(), backoff, log });
      cleanups.push(() => registration.stop(200));
      return registration;
    });
    for (const registration of clients) registration.start();
    const revisionAfterStart = async () => {
      await vi.waitFor(() => expect(clients.some((registration) => registration.nodeId)).toBe(true));
      return distributor.registry.snapshot().revision;
    };
    const start = await revisionAfterStart();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // At most one takeover per ~150 ms once backed off (each a leave and a join), not hundreds.
    expect(distributor.registry.snapshot().revision - start).toBeLessThan(40);
    const warnings = logs.flatMap(({ warnings }) => warnings());
    expect(warnings.length).toBeLessThanOrEqual(2);
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings[0]!.msg).toContain(
      'give each instance its own --advertise-host (ADVERTISE_HOST) or --port',
    );
  });

  it('registers again at once after a distributor restart, however many attempts its first registration took', async () => {
    // Backing off after a takeover must not hold back a registration lost otherwise: started
    // before the distributor, a node that had failed 8 times waited 1 to 2 s more (5 s by default)
    // to come back after a restart soon after it had registered.
    const port = await freePort();
    const registration = new RegistrationClient({
      distributor: `127.0.0.1:${port}`,
      node: goodsNode(),
      backoff: { initialMs: 10, maxMs: 2_000 },
    });
    cleanups.push(() => registration.stop(200));
    const disconnected = vi.fn();
    registration.on('disconnected', disconnected);
    registration.start();
    await vi.waitFor(() => expect(disconnected.mock.calls.length).toBeGreaterThanOrEqual(8), {
      timeout: 10_000,
    });
    const first = await startDistributor({}, port);
    await vi.waitFor(() => expect(registration.nodeId).toBeDefined(), { timeout: 5_000 });
    await first.distributor.stop(100);
    const restarted = Date.now();
    const second = (await startDistributor({}, port)).distributor;
    await vi.waitFor(() => expect(second.registry.snapshot().nodes).toHaveLength(1), {
      timeout: 5_000,
      interval: 5,
    });
    // At once: its first retry 5 to 10 ms later, not the 1 to 2 s its failures before had reached.
    expect(Date.now() - restarted).toBeLessThan(700);
  }, 20_000);

  it('retries quietly while the distributor is unreachable: one warning for the reason, not one per attempt', async () => {
    const { log, lines, warnings } = capturingLogger();
    const registration = new RegistrationClient({
      distributor: `127.0.0.1:${await freePort()}`,
      node: goodsNode(),
      backoff: fastBackoff,
      log,
    });
    cleanups.push(() => registration.stop(200));
    const disconnected = vi.fn();
    registration.on('disconnected', disconnected);
    registration.start();
    // At least three attempts (fast backoff: a loaded machine may see many more before it looks).
    await vi.waitFor(() => expect(disconnected.mock.calls.length).toBeGreaterThanOrEqual(3), {
      timeout: 10_000,
    });
    const codes = disconnected.mock.calls.map(([ended]) => ended.code);
    expect(codes).toEqual(Array(codes.length).fill(status.UNAVAILABLE));
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]!.msg).toMatch(
      /^not registered with the distributor \(UNAVAILABLE: .*\); retrying with backoff$/,
    );
    expect(lines.filter((line) => line.event === 'disconnected').length).toBeGreaterThanOrEqual(3);
  });

  it('gives up a registration the distributor never answers (a hung process at its address) and tries again, saying why', async () => {
    const silent = await startSilentServer();
    cleanups.push(() => silent.close());
    const { log, warnings } = capturingLogger();
    const registration = new RegistrationClient({
      distributor: `127.0.0.1:${silent.port}`,
      node: goodsNode(),
      backoff: fastBackoff,
      answerTimeoutMs: 200,
      log,
    });
    cleanups.push(() => registration.stop(200));
    const disconnected = vi.fn();
    registration.on('disconnected', disconnected);
    registration.start();
    await vi.waitFor(() => expect(disconnected.mock.calls.length).toBeGreaterThanOrEqual(2), {
      timeout: 5_000,
    });
    expect(disconnected.mock.calls[0]![0]).toMatchObject({
      code: status.UNAVAILABLE,
      details: 'no answer within 200 ms to the registration',
    });
    expect(warnings()[0]!.msg).toBe(
      'not registered with the distributor (UNAVAILABLE: no answer within 200 ms to the registration); retrying with backoff',
    );
  });

  it('replaces a connection attempt that hangs, so that it registers once the distributor can be reached', async () => {
    const { port } = await startDistributor();
    // A host that drops packets: the first connection is accepted by the proxy and held for ever,
    // as a TCP connect waits on its SYN; connections made after restore() go through.
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    proxy.blackhole();
    const { log, warnings } = capturingLogger();
    const registration = new RegistrationClient({
      distributor: `127.0.0.1:${proxy.port}`,
      node: goodsNode(),
      backoff: fastBackoff,
      connectTimeoutMs: 300,
      log,
    });
    cleanups.push(() => registration.stop(200));
    const disconnected = vi.fn();
    registration.on('disconnected', disconnected);
    registration.start();
    await vi.waitFor(() => expect(proxy.connectionsHeld).toBe(1));
    await proxy.restore({ keepHeld: true });
    await vi.waitFor(() => expect(registration.nodeId).toBe('goods@127.0.0.1:9010'), { timeout: 5_000 });
    expect(disconnected.mock.calls[0]![0]).toMatchObject({
      code: status.UNAVAILABLE,
      details: 'no connection to the distributor within 300 ms; trying a new one',
    });
    expect(warnings()[0]!.msg).toBe(
      'not registered with the distributor (UNAVAILABLE: no connection to the distributor within 300 ms; trying a new one); retrying with backoff',
    );
  });

  it('replaces a failed channel whose next connection attempt hangs, so that it registers once the distributor can be reached', async () => {
    const { port } = await startDistributor();
    // A host that refused, then drops packets: grpc-js reports the channel TRANSIENT_FAILURE (sticky,
    // until an attempt succeeds) while its next attempt hangs, and fails each registration at once.
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    await proxy.refuse();
    const registration = new RegistrationClient({
      distributor: `127.0.0.1:${proxy.port}`,
      node: goodsNode(),
      backoff: fastBackoff,
      connectTimeoutMs: 300,
    });
    cleanups.push(() => registration.stop(200));
    const disconnected = vi.fn();
    registration.on('disconnected', disconnected);
    registration.start();
    await vi.waitFor(() => expect(disconnected).toHaveBeenCalled());
    await proxy.restore();
    proxy.blackhole();
    await vi.waitFor(() => expect(proxy.connectionsHeld).toBe(1), { timeout: 5_000 });
    await proxy.restore({ keepHeld: true });
    await vi.waitFor(() => expect(registration.nodeId).toBe('goods@127.0.0.1:9010'), { timeout: 5_000 });
  });

  it('ends the connection attempt of each channel it replaces, not leaving one open per replacement', async () => {
    const { port } = await startDistributor();
    // A peer that accepts and never speaks HTTP/2: grpc-js waits for its settings without a limit.
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    proxy.blackhole();
    const registration = new RegistrationClient({
      distributor: `127.0.0.1:${proxy.port}`,
      node: goodsNode(),
      backoff: fastBackoff,
      connectTimeoutMs: 100,
    });
    cleanups.push(() => registration.stop(200));
    registration.start();
    await vi.waitFor(() => expect(proxy.connectionsHeld).toBeGreaterThanOrEqual(5), { timeout: 5_000 });
    await vi.waitFor(() => expect(proxy.clientConnectionsOpen()).toBeLessThanOrEqual(2));
  });

  it('ends a connection attempt still being made when stopped', async () => {
    const { port } = await startDistributor();
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    proxy.blackhole();
    const registration = new RegistrationClient({
      distributor: `127.0.0.1:${proxy.port}`,
      node: goodsNode(),
      backoff: fastBackoff,
    });
    registration.start();
    await vi.waitFor(() => expect(proxy.connectionsHeld).toBe(1));
    await registration.stop(200);
    await vi.waitFor(() => expect(proxy.clientConnectionsOpen()).toBe(0));
  });

  it('says draining, then leaves, when stopped', async () => {
    const { address } = await startDistributor();
    const watcher = watch(address);
    const goods = new RegistrationClient({ distributor: address, node: goodsNode(), backoff: fastBackoff });
    goods.start();
    await vi.waitFor(() => expect(watcher.at(-1)!.nodes).toHaveLength(1));
    await goods.stop();
    await vi.waitFor(() => expect(watcher.at(-1)!.nodes).toHaveLength(0));
    expect(watcher.map(listedIds)).toEqual([
      [],
      ['goods@127.0.0.1:9010:NODE_STATE_SERVING'],
      ['goods@127.0.0.1:9010:NODE_STATE_DRAINING'],
      [],
    ]);
  });
});
