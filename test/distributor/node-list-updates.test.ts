import {
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerWritableStream,
  status,
} from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import {
  type DistributorServiceServer,
  DistributorServiceService,
  type Node,
  type NodeListSubscription,
  type NodeListUpdate,
  NodeState,
  type RegisterRequest,
  type RegisterResponse,
  type Snapshot,
  type WatchRequest,
  type WatchResponse,
} from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { RegistryWatcher } from '../../src/registry-client/registry-watcher.js';
import { gatewayNode, goodsDescriptorSet, goodsNode } from '../helpers/nodes.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { capturingLogger } from './support/capturing-logger.js';
import {
  describeNode,
  describeNodeWith,
  NO_RESUME,
  resyncMessage,
  stateMessage,
  useDistributorHarness,
} from './support/distributor-harness.js';

const { cleanups, startDistributor, client, openRegistration, subscribe } = useDistributorHarness();

const TOKEN = 'test-registry-token-0123456789';
const WITH_TOKEN = { authorization: `Bearer ${TOKEN}` };
const fastBackoff = { initialMs: 20, maxMs: 200 };

describe('the node list as updates', () => {
  it('sends a subscriber one snapshot, then one event per change, each with the next revision', async () => {
    const { address, distributor } = await startDistributor();
    const first = subscribe(address);
    await vi.waitFor(() => expect(first.updates).toHaveLength(1));

    const goods = openRegistration(address, [describeNodeWith(goodsNode())]);
    await vi.waitFor(() => expect(first.updates).toHaveLength(2));
    goods.call.write(stateMessage(NodeState.NODE_STATE_DRAINING));
    await vi.waitFor(() => expect(first.updates).toHaveLength(3));
    goods.call.end();
    await vi.waitFor(() => expect(first.updates).toHaveLength(4));

    expect(first.kinds()).toEqual(['snapshot@0', 'added@1', 'stateChanged@2', 'removed@3']);
    expect(first.updates.every((update) => update.instanceId === distributor.registry.instanceId)).toBe(true);
    const added = first.updates[1]!.change;
    expect(added?.$case === 'added' && added.value).toMatchObject({
      id: 'goods@127.0.0.1:9010',
      routes: goodsNode().routes,
      // The hash, not the bytes.
      descriptorSet: Buffer.alloc(0),
      descriptorSetSha256: expect.any(Buffer),
    });
    // Events are small, whatever the descriptor set weighs.
    expect(Math.max(...first.sizes.slice(1))).toBeLessThan(400);
    expect(goodsDescriptorSet().length).toBeGreaterThan(10_000);

    // A later subscriber starts from a snapshot of the list as it is.
    const second = subscribe(address);
    await vi.waitFor(() => expect(second.updates).toHaveLength(1));
    expect(second.kinds()).toEqual(['snapshot@3']);
  });

  it('writes the same bytes to every Watch and Register stream that receives the list', async () => {
    const { address } = await startDistributor();
    const watcher = subscribe(address);
    const gateway = openRegistration(address, [describeNodeWith(gatewayNode(), NO_RESUME)]);
    await vi.waitFor(() => expect(gateway.responses).toHaveLength(2));
    const raw: Buffer[][] = [[], []];
    // Raw streams: the bytes each one receives, as they came.
    const rawWatch = client(address).makeServerStreamRequest(
      '/shop.v1.DistributorService/Watch',
      () => Buffer.from([0x0a, 0x00]),
      (bytes: Buffer) => bytes,
      {},
    );
    rawWatch.on('data', (bytes: Buffer) => raw[0]!.push(bytes));
    rawWatch.on('error', () => {});
    cleanups.push(() => rawWatch.cancel());
    const rawRegister = client(address).makeBidiStreamRequest(
      '/shop.v1.DistributorService/Register',
      (request: Buffer) => request,
      (bytes: Buffer) => bytes,
    );
    rawRegister.on('data', (bytes: Buffer) => raw[1]!.push(bytes));
    rawRegister.on('error', () => {});
    cleanups.push(() => rawRegister.cancel());
    const { RegisterRequest } = await import('../../src/gen/distributor.js');
    rawRegister.write(
      Buffer.from(RegisterRequest.encode(describeNodeWith(gatewayNode({ port: 8001 }), NO_RESUME)).finish()),
    );
    await vi.waitFor(() => expect(raw[1]!.length).toBeGreaterThanOrEqual(2));
    await vi.waitFor(() => expect(raw[0]!.length).toBeGreaterThanOrEqual(2));

    openRegistration(address, [describeNodeWith(goodsNode())]);
    await vi.waitFor(() => expect(watcher.view.snapshot?.nodes).toHaveLength(3));
    await vi.waitFor(() => expect(raw[0]!.at(-1)).toEqual(raw[1]!.at(-1)));
    // Watch: snapshot@1 then added@2 and added@3; Register: ack, snapshot@2, added@3. The event of
    // the last join is the same bytes on both.
    expect(raw[0]!.at(-1)!.length).toBeLessThan(400);
  });

  it('sends a registered node that does not ask for the list its acknowledgements only', async () => {
    const { address, distributor } = await startDistributor();
    const goods = openRegistration(address, [describeNodeWith(goodsNode())]);
    await vi.waitFor(() => expect(goods.responses).toHaveLength(1));
    const others = [8001, 8002, 8003].map((port) =>
      openRegistration(address, [describeNodeWith(gatewayNode({ port }))]),
    );
    await vi.waitFor(() => expect(distributor.registry.snapshot().nodes).toHaveLength(4));
    goods.call.write(stateMessage(NodeState.NODE_STATE_DRAINING));
    await vi.waitFor(() => expect(goods.responses).toHaveLength(2));
    others[0]!.call.end();
    await vi.waitFor(() => expect(distributor.registry.snapshot().nodes).toHaveLength(3));

    const instanceId = distributor.registry.instanceId;
    const expected: RegisterResponse[] = [
      {
        nodeId: 'goods@127.0.0.1:9010',
        snapshot: undefined,
        update: undefined,
        ack: { state: NodeState.NODE_STATE_SERVING, revision: 1, instanceId, sentAt: expect.any(Date) },
      },
      {
        nodeId: 'goods@127.0.0.1:9010',
        snapshot: undefined,
        update: undefined,
        ack: { state: NodeState.NODE_STATE_DRAINING, revision: 5, instanceId, sentAt: expect.any(Date) },
      },
    ];
    expect(goods.responses).toEqual(expected);
  });

  it('serves a client of the first contract as before: full lists, with their descriptor sets', async () => {
    const { address } = await startDistributor();
    const old = openRegistration(address, [describeNode(gatewayNode())]);
    openRegistration(address, [describeNodeWith(goodsNode())]);
    await vi.waitFor(() => expect(old.responses).toHaveLength(2));
    const [, latest] = old.responses;
    expect(latest!.update).toBeUndefined();
    expect(latest!.nodeId).toBe('gateway@127.0.0.1:8000');
    const goods = latest!.snapshot!.nodes.find((node) => node.name === 'goods')!;
    expect(goods.descriptorSet).toEqual(goodsDescriptorSet());
    expect(goods.descriptorSetSha256).toHaveLength(32);
  });

  it('resumes a subscriber from the revision it holds on the same instance, else sends a snapshot', async () => {
    const { address, distributor } = await startDistributor();
    const first = subscribe(address);
    openRegistration(address, [describeNodeWith(goodsNode())]);
    await vi.waitFor(() => expect(first.view.snapshot?.revision).toBe(1));
    const held = first.view.resumePoint();
    first.call.cancel();
    openRegistration(address, [describeNodeWith(goodsNode({ port: 9011 }))]);
    const gateway = openRegistration(address, [describeNodeWith(gatewayNode())]);
    await vi.waitFor(() => expect(distributor.registry.revision).toBe(3));

    const resumed = subscribe(address, held);
    await vi.waitFor(() => expect(resumed.updates).toHaveLength(3));
    expect(resumed.kinds()).toEqual(['resumed@1', 'added@2', 'added@3']);

    const current = subscribe(address, { ...held, resumeRevision: 3 });
    await vi.waitFor(() => expect(current.updates).toHaveLength(1));
    expect(current.kinds()).toEqual(['resumed@3']);
    gateway.call.end();
    await vi.waitFor(() => expect(current.kinds()).toEqual(['resumed@3', 'removed@4']));

    for (const elsewhere of [
      { resumeInstanceId: 'another-instance', resumeRevision: 1 },
      { ...held, resumeRevision: 99 },
    ]) {
      const fresh = subscribe(address, elsewhere);
      await vi.waitFor(() => expect(fresh.updates).toHaveLength(1));
      expect(fresh.kinds()).toEqual(['snapshot@4']);
    }
  });

  it('sends a snapshot to a subscriber whose missed changes the history no longer holds', async () => {
    const { address, distributor } = await startDistributor({ history: { historyEvents: 2 } });
    const first = subscribe(address);
    await vi.waitFor(() => expect(first.updates).toHaveLength(1));
    const held = first.view.resumePoint();
    first.call.cancel();
    for (const port of [8001, 8002, 8003])
      openRegistration(address, [describeNodeWith(gatewayNode({ port }))]);
    await vi.waitFor(() => expect(distributor.registry.revision).toBe(3));
    const late = subscribe(address, held);
    await vi.waitFor(() => expect(late.view.snapshot?.nodes).toHaveLength(3));
    expect(late.kinds()[0]).toBe('snapshot@3');
  });

  it('answers a resync on a Register stream with the list again', async () => {
    const { address } = await startDistributor();
    const gateway = openRegistration(address, [describeNodeWith(gatewayNode(), NO_RESUME)]);
    await vi.waitFor(() => expect(gateway.responses).toHaveLength(2));
    gateway.call.write(resyncMessage());
    await vi.waitFor(() => expect(gateway.responses).toHaveLength(3));
    expect(gateway.responses.map((response) => response.update?.change?.$case ?? 'ack')).toEqual([
      'ack',
      'snapshot',
      'snapshot',
    ]);
    // A node that did not ask for the list may not ask for it again.
    const goods = openRegistration(address, [describeNodeWith(goodsNode()), resyncMessage()]);
    expect(await goods.ended).toMatchObject({ code: status.INVALID_ARGUMENT });
  });
});

describe('clients of the node list', () => {
  it('keeps a gateway’s list from updates, descriptor sets filled in, and resyncs after a restart', async () => {
    const first = await startDistributor({ registryToken: TOKEN });
    const gateway = new RegistrationClient({
      distributor: first.address,
      node: gatewayNode(),
      watchNodes: true,
      token: TOKEN,
      backoff: fastBackoff,
    });
    cleanups.push(() => gateway.stop(200));
    const seen: Snapshot[] = [];
    gateway.on('snapshot', (snapshot) => seen.push(snapshot));
    gateway.start();
    const goods = openRegistration(first.address, [describeNodeWith(goodsNode())], WITH_TOKEN);
    await vi.waitFor(() => expect(gateway.snapshot?.nodes).toHaveLength(2));
    const listedGoods = gateway.snapshot!.nodes.find((node) => node.name === 'goods')!;
    expect(listedGoods.descriptorSet).toEqual(goodsDescriptorSet());
    goods.call.write(stateMessage(NodeState.NODE_STATE_DRAINING));
    await vi.waitFor(() =>
      expect(gateway.snapshot!.nodes.find((node) => node.name === 'goods')?.state).toBe(
        NodeState.NODE_STATE_DRAINING,
      ),
    );
    const revisions = seen.map((snapshot) => snapshot.revision);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(seen.every((snapshot) => snapshot.instanceId === first.distributor.registry.instanceId)).toBe(
      true,
    );

    await first.distributor.stop(100);
    const second = await startDistributor({ registryToken: TOKEN }, first.port);
    await vi.waitFor(() => expect(gateway.snapshot?.instanceId).toBe(second.distributor.registry.instanceId));
    // The new instance lists the gateway alone (goods' raw stream ended with the old one).
    expect(gateway.snapshot!.nodes.map((node) => node.name)).toEqual(['gateway']);
    expect(second.distributor.registry.instanceId).not.toBe(first.distributor.registry.instanceId);
  });

  it('confirms a service’s state without sending it the list', async () => {
    const { address } = await startDistributor();
    const goods = new RegistrationClient({ distributor: address, node: goodsNode(), backoff: fastBackoff });
    cleanups.push(() => goods.stop(200));
    const states: NodeState[] = [];
    goods.on('state', (state) => states.push(state));
    goods.start();
    await vi.waitFor(() => expect(states).toEqual([NodeState.NODE_STATE_SERVING]));
    openRegistration(address, [describeNodeWith(gatewayNode())]);
    goods.setState(NodeState.NODE_STATE_DRAINING);
    await vi.waitFor(() =>
      expect(states).toEqual([NodeState.NODE_STATE_SERVING, NodeState.NODE_STATE_DRAINING]),
    );
    expect(goods.snapshot).toBeUndefined();
  });

  it('watches without registering, and resumes where it was after its stream is cut', async () => {
    const { address, port, distributor } = await startDistributor();
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    const { log, lines } = capturingLogger();
    const watcher = new RegistryWatcher({
      distributor: `127.0.0.1:${proxy.port}`,
      backoff: fastBackoff,
      descriptorSets: true,
      log,
    });
    cleanups.push(() => watcher.stop());
    const disconnected = vi.fn();
    watcher.on('disconnected', disconnected);
    watcher.start();
    openRegistration(address, [describeNodeWith(goodsNode())]);
    await vi.waitFor(() => expect(watcher.snapshot?.nodes).toHaveLength(1));
    expect(watcher.snapshot!.nodes[0]!.descriptorSet).toEqual(goodsDescriptorSet());

    await proxy.refuse();
    await vi.waitFor(() => expect(disconnected).toHaveBeenCalled());
    // Its status by name, as every other line of the shop writes `code`.
    expect(lines.find((line) => line.event === 'watch-disconnected')).toMatchObject({ code: 'UNAVAILABLE' });
    openRegistration(address, [describeNodeWith(gatewayNode())]);
    const resumes = subscribe(address);
    await vi.waitFor(() => expect(resumes.updates).toHaveLength(1));
    await proxy.restore();
    await vi.waitFor(() => expect(watcher.snapshot?.nodes).toHaveLength(2));
    expect(watcher.snapshot!.revision).toBe(distributor.registry.revision);
  });

  it('watches on a new connection when one hangs connecting (a host that dropped packets and is back)', async () => {
    const { address, port } = await startDistributor();
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    proxy.blackhole();
    const watcher = new RegistryWatcher({
      distributor: `127.0.0.1:${proxy.port}`,
      backoff: fastBackoff,
      connectTimeoutMs: 300,
    });
    cleanups.push(() => watcher.stop());
    const disconnected = vi.fn();
    watcher.on('disconnected', disconnected);
    watcher.start();
    openRegistration(address, [describeNodeWith(goodsNode())]);
    await vi.waitFor(() => expect(proxy.connectionsHeld).toBe(1));
    await proxy.restore({ keepHeld: true });
    await vi.waitFor(() => expect(watcher.snapshot?.nodes).toHaveLength(1), { timeout: 5_000 });
    expect(disconnected.mock.calls[0]![0]).toMatchObject({
      code: status.UNAVAILABLE,
      details: 'no connection to the distributor within 300 ms; trying a new one',
    });
  });

  it('takes the full lists of a distributor of the first contract as they are, on a Watch', async () => {
    // The README promises that a new client of an old distributor uses its full snapshots: the
    // watcher (and so the distributor:/// resolver) dropped every answer without an update.
    const server = new Server();
    const listed = (port: number): Node => ({
      id: `goods@h:${port}`,
      name: 'goods',
      host: 'h',
      port,
      routes: [],
      descriptorSet: goodsDescriptorSet(),
      state: NodeState.NODE_STATE_SERVING,
      registeredAt: new Date(0),
      descriptorSetSha256: Buffer.alloc(0),
    });
    const implementation = {
      watch(call: ServerWritableStream<WatchRequest, WatchResponse>) {
        // An old distributor knows no subscription: the whole list, then the whole list again.
        const full = (revision: number, nodes: Node[]) =>
          call.write({ snapshot: { revision, nodes, instanceId: '' }, update: undefined });
        full(1, [listed(1)]);
        setTimeout(() => full(2, [listed(1), listed(2)]), 20);
        call.on('error', () => {});
      },
    } as unknown as DistributorServiceServer;
    server.addService(DistributorServiceService, implementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    cleanups.push(() => server.forceShutdown());
    const watcher = new RegistryWatcher({
      distributor: `127.0.0.1:${port}`,
      backoff: fastBackoff,
      descriptorSets: true,
    });
    cleanups.push(() => watcher.stop());
    watcher.start();
    await vi.waitFor(() => expect(watcher.snapshot?.revision).toBe(2));
    expect(watcher.snapshot!.nodes.map((node) => node.id)).toEqual(['goods@h:1', 'goods@h:2']);
    expect(watcher.snapshot!.nodes[1]!.descriptorSet).toEqual(goodsDescriptorSet());
  });

  it('detects a gap in revisions and resyncs, on a Register stream and on a Watch', async () => {
    const fake = await startFakeDistributor();
    cleanups.push(() => fake.stop());
    const gateway = new RegistrationClient({
      distributor: fake.address,
      node: gatewayNode(),
      watchNodes: true,
      backoff: fastBackoff,
    });
    cleanups.push(() => gateway.stop(200));
    gateway.start();
    await vi.waitFor(() => expect(gateway.snapshot?.revision).toBe(3));
    expect(fake.resyncs).toEqual([{ resumeInstanceId: '', resumeRevision: 0 }]);
    expect(gateway.snapshot!.nodes.map((node) => node.id)).toEqual(['a@h:1', 'c@h:3']);

    const watcher = new RegistryWatcher({ distributor: fake.address, backoff: fastBackoff });
    cleanups.push(() => watcher.stop());
    watcher.start();
    await vi.waitFor(() => expect(watcher.snapshot?.revision).toBe(3));
    // The second Watch asked for a snapshot, not for what followed the revision it held.
    expect(fake.watches.map((subscription) => subscription?.resumeInstanceId)).toEqual(['', '']);
    expect(watcher.snapshot!.nodes.map((node) => node.id)).toEqual(['a@h:1', 'c@h:3']);
  });
});

/**
 * A distributor that skips a revision: a snapshot at 1, then an event at 3; asked again (a resync or
 * a second Watch), a snapshot at 3.
 */
async function startFakeDistributor() {
  const server = new Server();
  const resyncs: NodeListSubscription[] = [];
  const watches: Array<NodeListSubscription | undefined> = [];
  const bare = (id: string): Node => ({ ...listedGateway, id });
  const listedGateway: Node = {
    id: '',
    name: 'gateway',
    host: 'h',
    port: 1,
    routes: [],
    descriptorSet: Buffer.alloc(0),
    state: NodeState.NODE_STATE_SERVING,
    registeredAt: new Date(0),
    descriptorSetSha256: Buffer.alloc(0),
  };
  const update = (revision: number, change: NodeListUpdate['change']): NodeListUpdate => ({
    instanceId: 'fake',
    revision,
    change,
  });
  const snapshot = (revision: number, ids: string[]) =>
    update(revision, { $case: 'snapshot', value: { revision, nodes: ids.map(bare), instanceId: 'fake' } });
  const gap = [snapshot(1, ['a@h:1']), update(3, { $case: 'added', value: bare('b@h:2') })];
  const implementation = {
    register(call: ServerDuplexStream<RegisterRequest, RegisterResponse>) {
      const send = (message: Partial<RegisterResponse>) =>
        call.write({ nodeId: '', snapshot: undefined, update: undefined, ack: undefined, ...message });
      call.on('data', (request: RegisterRequest) => {
        if (request.kind?.$case === 'node') {
          send({
            nodeId: 'gateway@h:1',
            ack: { state: NodeState.NODE_STATE_SERVING, revision: 1, instanceId: 'fake', sentAt: undefined },
          });
          for (const message of gap) send({ update: message });
        } else if (request.kind?.$case === 'resync') {
          resyncs.push(request.kind.value);
          send({ update: snapshot(3, ['a@h:1', 'c@h:3']) });
        }
      });
      call.on('error', () => {});
    },
    watch(call: ServerWritableStream<WatchRequest, WatchResponse>) {
      watches.push(call.request.subscription);
      const updates = watches.length === 1 ? gap : [snapshot(3, ['a@h:1', 'c@h:3'])];
      for (const message of updates) call.write({ snapshot: undefined, update: message });
      call.on('error', () => {});
    },
    list() {},
    getDescriptorSet() {},
  } as unknown as DistributorServiceServer;
  server.addService(DistributorServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return { address: `127.0.0.1:${port}`, resyncs, watches, stop: () => server.forceShutdown() };
}
