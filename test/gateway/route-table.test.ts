import { create } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Metadata, Server, ServerCredentials, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  encodeDescriptorSet,
  filesForServices,
  loadShopDescriptorSet,
} from '../../src/common/descriptors.js';
import type { Logger } from '../../src/common/logger.js';
import { InstancePool } from '../../src/gateway/instance-pool.js';
import { RouteTable } from '../../src/gateway/route-table.js';
import { type Node, NodeState, type Snapshot } from '../../src/gen/distributor.js';
import { freePort } from '../e2e/support/processes.js';
import { goodsDescriptorSet } from '../helpers/nodes.js';
import { startSilentServer } from '../helpers/silent-server.js';
import { descriptorSetOf, httpOptions, kitchenFile } from './support/descriptors.js';

const GOODS_SET = goodsDescriptorSet();

/** The kitchen's file with one more method, routed by `options`. */
function kitchenWith(method: string, options: ReturnType<typeof httpOptions>) {
  const file = kitchenFile();
  const service = file.service[0]!;
  const echo = service.method[0]!;
  return create(FileDescriptorProtoSchema, {
    ...file,
    service: [{ ...service, method: [...service.method, { ...echo, name: method, options }] }],
  });
}

function node(name: string, port: number, descriptorSet: Uint8Array, registeredAt = new Date(2_000)): Node {
  return {
    id: `${name}@127.0.0.1:${port}`,
    name,
    host: '127.0.0.1',
    port,
    routes: [],
    descriptorSet: Buffer.from(descriptorSet),
    state: NodeState.NODE_STATE_SERVING,
    registeredAt,
    descriptorSetSha256: Buffer.alloc(0),
  };
}

function goods(port: number, state = NodeState.NODE_STATE_SERVING, registeredAt = new Date(1_000)): Node {
  return {
    id: `goods@127.0.0.1:${port}`,
    name: 'goods',
    host: '127.0.0.1',
    port,
    routes: [],
    descriptorSet: GOODS_SET,
    state,
    registeredAt,
    descriptorSetSha256: Buffer.alloc(0),
  };
}

function snapshot(revision: number, ...nodes: Node[]): Snapshot {
  return { revision, nodes, instanceId: 'test' };
}

describe('RouteTable', () => {
  const pools: InstancePool[] = [];
  const table = (log?: Logger): { table: RouteTable; pool: InstancePool } => {
    const pool = new InstancePool();
    pools.push(pool);
    return { table: new RouteTable({ pool, ...(log ? { log } : {}) }), pool };
  };
  afterEach(() => {
    for (const pool of pools.splice(0)) pool.close();
  });

  it('knows nothing before the first snapshot, then routes what nodes register', () => {
    const { table: routes } = table();
    expect(routes.ready).toBe(false);
    routes.apply(snapshot(1));
    expect(routes.ready).toBe(true);
    expect(routes.get('GET /goods')).toBeUndefined();
    routes.apply(snapshot(2, goods(9010)));
    expect(routes.revision).toBe(2);
    const list = routes.get('GET /goods')!;
    expect(list.pick()?.plan.grpcMethod).toBe('shop.v1.GoodsService/ListGoods');
    expect(list.pick()?.plan.path).toBe('/shop.v1.GoodsService/ListGoods');
    expect(routes.get('POST /goods')?.pick()?.nodeId).toBe('goods@127.0.0.1:9010');
    expect(routes.get('PUT /goods')).toBeUndefined();
  });

  it('balances round robin over serving instances, wrapping as the list changes', () => {
    const { table: routes } = table();
    routes.apply(snapshot(1, goods(9010), goods(9011)));
    const route = routes.get('GET /goods')!;
    expect([1, 2, 3, 4].map(() => route.pick()!.nodeId)).toEqual([
      'goods@127.0.0.1:9010',
      'goods@127.0.0.1:9011',
      'goods@127.0.0.1:9010',
      'goods@127.0.0.1:9011',
    ]);
    route.pick();
    routes.apply(snapshot(2, goods(9011)));
    expect(routes.get('GET /goods')).toBe(route);
    expect([1, 2].map(() => route.pick()!.nodeId)).toEqual(['goods@127.0.0.1:9011', 'goods@127.0.0.1:9011']);
  });

  it('gives a draining instance nothing, from the snapshot that says so', () => {
    const { table: routes } = table();
    routes.apply(snapshot(1, goods(9010), goods(9011)));
    routes.apply(snapshot(2, goods(9010, NodeState.NODE_STATE_DRAINING), goods(9011)));
    const route = routes.get('GET /goods')!;
    expect(new Set([1, 2, 3, 4].map(() => route.pick()!.nodeId))).toEqual(new Set(['goods@127.0.0.1:9011']));
    routes.apply(
      snapshot(3, goods(9010, NodeState.NODE_STATE_DRAINING), goods(9011, NodeState.NODE_STATE_DRAINING)),
    );
    expect(route.pick()).toBeUndefined();
    expect(routes.describe().find((info) => info.method === 'GET')).toMatchObject({
      serving: [],
      draining: ['goods@127.0.0.1:9010', 'goods@127.0.0.1:9011'],
    });
  });

  it('tells of templates and gRPC methods once no live or retired route has them, as the oldest retired routes are forgotten', () => {
    const pool = new InstancePool();
    pools.push(pool);
    const forgotten: string[] = [];
    const methods: string[] = [];
    const routes = new RouteTable({
      pool,
      retiredLimit: 1,
      onForgotten: ({ templates, grpcPaths }) => {
        forgotten.push(...templates);
        methods.push(...grpcPaths);
      },
    });
    routes.apply(snapshot(1, goods(9010)));
    const templates = [...new Set(routes.describe().map((route) => route.template))].sort();
    expect(templates).toEqual(['/goods', '/goods/{id}']);
    // Every goods route retires, and all but the newest retired one are forgotten.
    routes.apply(snapshot(2));
    const held = routes.describe().map((route) => route.template);
    expect(held).toHaveLength(1);
    expect(forgotten.sort()).toEqual(templates.filter((template) => !held.includes(template)));
    // Each goods method but the one the route still held calls.
    expect(methods).toHaveLength(2);
    expect(methods.every((path) => path.startsWith('/shop.v1.GoodsService/'))).toBe(true);
    // A route that comes back is live; its template is not told of while it is held.
    forgotten.length = 0;
    methods.length = 0;
    routes.apply(snapshot(3, goods(9011)));
    routes.apply(snapshot(4, goods(9011)));
    expect([forgotten, methods]).toEqual([[], []]);
  });

  it('tells of a gRPC method a route stopped calling (a new build of its service) once nothing else calls it', () => {
    const pool = new InstancePool();
    pools.push(pool);
    const methods: string[] = [];
    const routes = new RouteTable({ pool, onForgotten: ({ grpcPaths }) => methods.push(...grpcPaths) });
    const v2 = descriptorSetOf(kitchenWith('EchoAgain', httpOptions('GET /kitchen-extra/{f_string}')));
    const v1 = descriptorSetOf(kitchenWith('Echo2', httpOptions('GET /kitchen-extra/{f_string}')));
    routes.apply(snapshot(1, node('kitchen', 9050, v1)));
    routes.apply(snapshot(2, node('kitchen', 9050, v1), node('kitchen', 9051, v2)));
    expect(methods).toEqual([]);
    routes.apply(snapshot(3, node('kitchen', 9051, v2)));
    expect(methods).toEqual([expect.stringMatching(/\/Echo2$/)]);
  });

  it('removes a departed instance and closes its channel; a route left with none stays known', () => {
    const { table: routes, pool } = table();
    routes.apply(snapshot(1, goods(9010), goods(9011)));
    expect(pool.addresses().sort()).toEqual(['127.0.0.1:9010', '127.0.0.1:9011']);
    routes.apply(snapshot(2, goods(9011)));
    expect(pool.addresses()).toEqual(['127.0.0.1:9011']);
    routes.apply(snapshot(3));
    expect(routes.get('GET /goods')).toBeUndefined();
    expect(routes.isRetired('GET /goods')).toBe(true);
    expect(routes.isRetired('GET /members')).toBe(false);
    expect(pool.addresses()).toEqual([]);
    routes.apply(snapshot(4, goods(9012)));
    expect(routes.isRetired('GET /goods')).toBe(false);
    expect(routes.get('GET /goods')?.pick()?.nodeId).toBe('goods@127.0.0.1:9012');
  });

  it('keeps a departed channel open until its last call ends', async () => {
    const { table: routes, pool } = table();
    // A port just found free, so nothing listens there: not a fixed one, which `npm start` may hold.
    routes.apply(snapshot(1, goods(await freePort())));
    const instance = routes.get('GET /goods')!.pick()!;
    const close = vi.spyOn(instance.upstream.client, 'close');
    // Nothing listens there: the call fails, but only after the node has left.
    const ended = new Promise<{ code: number | undefined; closes: number }>((resolve) => {
      const { upstream, plan } = instance;
      pool.call(
        upstream,
        plan.path,
        (bytes) => bytes,
        Buffer.alloc(0),
        new Metadata(),
        Date.now() + 5_000,
        (error) => resolve({ code: error?.code, closes: close.mock.calls.length }),
      );
    });
    routes.apply(snapshot(2));
    expect(close).not.toHaveBeenCalled();
    // Closed once the call is over, before its caller hears of it.
    expect(await ended).toEqual({ code: status.UNAVAILABLE, closes: 1 });
  });

  it('picks up a route a new revision adds, from a service it has never seen', () => {
    const { table: routes } = table();
    routes.apply(snapshot(1, goods(9010)));
    const kitchen = node('kitchen', 9050, descriptorSetOf(kitchenFile()));
    routes.apply(snapshot(2, goods(9010), kitchen));
    expect(routes.get('POST /kitchen')?.pick()?.plan.grpcMethod).toBe('test.kitchen.v1.KitchenService/Echo');
    expect(routes.get('PATCH /kitchen/*/**')?.pick()?.plan.grpcMethod).toBe(
      'test.kitchen.v1.KitchenService/Update',
    );
    expect(routes.get('GET /goods')).toBeDefined();
  });

  it('shares plans between instances with the same descriptors and recompiles for a new registration', () => {
    const { table: routes } = table();
    routes.apply(snapshot(1, goods(9010), goods(9011)));
    const route = routes.get('GET /goods')!;
    const [first, second] = [route.pick()!, route.pick()!];
    expect(first.plan).toBe(second.plan);
    routes.apply(snapshot(2, goods(9010), goods(9011)));
    expect(route.pick()!.plan).toBe(first.plan);
    // The same node registers again, now with other descriptors (every shop service, with comments).
    const changed: Node = {
      ...goods(9010, NodeState.NODE_STATE_SERVING, new Date(5_000)),
      descriptorSet: Buffer.from(
        encodeDescriptorSet(filesForServices(loadShopDescriptorSet(), ['shop.v1.GoodsService'])),
      ),
    };
    routes.apply(snapshot(3, changed));
    expect(route.pick()!.plan).not.toBe(first.plan);
    expect(routes.get('GET /members')?.pick()?.nodeId).toBe('goods@127.0.0.1:9010');
  });

  it('skips a route whose descriptors cannot serve it, warning once, and keeps the rest', () => {
    const warn = vi.fn();
    const log = { warn, debug: vi.fn(), info: vi.fn(), error: vi.fn() } as unknown as Logger;
    const { table: routes } = table(log);
    const broken = node(
      'kitchen',
      9050,
      descriptorSetOf(kitchenWith('Nope', httpOptions('GET /nope', { body: '*' }))),
    );
    routes.apply(snapshot(1, broken));
    routes.apply(snapshot(2, broken));
    expect(routes.get('GET /nope')).toBeUndefined();
    expect(routes.get('POST /kitchen')).toBeDefined();
    expect(warn).toHaveBeenCalledOnce();
    expect(String(warn.mock.calls[0]![1])).toContain(
      'test.kitchen.v1.KitchenService/Nope: a GET route cannot have a body',
    );
    // A registration cannot change its descriptors; registering again (a new registered_at) can.
    routes.apply(
      snapshot(3, { ...broken, descriptorSet: Buffer.from([1, 2, 3]), registeredAt: new Date(9_000) }),
    );
    expect(routes.get('POST /kitchen')).toBeUndefined();
    expect(String(warn.mock.calls[1]![1])).toContain('its descriptor set does not resolve');
  });

  it('retries on another address only', () => {
    const { table: routes } = table();
    routes.apply(snapshot(1, goods(9010), goods(9011)));
    const route = routes.get('GET /goods')!;
    const failed = route.pick()!;
    for (let attempt = 0; attempt < 3; attempt++) {
      expect(route.pickOther(failed)!.upstream.address).not.toBe(failed.upstream.address);
    }
    routes.apply(snapshot(2, goods(9010)));
    expect(route.pickOther(route.pick()!)).toBeUndefined();
  });

  it('gives nothing once every instance has been out of reach past the connect timeout, and takes one back once it connects', async () => {
    // A peer that accepts TCP and never speaks HTTP/2: to grpc-js, a channel connecting for ever,
    // as to a host that drops packets. Calls handed to it were queued until their deadline.
    const silent = await startSilentServer();
    const pool = new InstancePool({ connectTimeoutMs: 300 });
    pools.push(pool);
    const routes = new RouteTable({ pool });
    routes.apply(snapshot(1, goods(silent.port)));
    const route = routes.get('GET /goods')!;
    // A fresh channel, its first connection under way: handed over, the call waits for it.
    expect(route.pick()?.nodeId).toBe(`goods@127.0.0.1:${silent.port}`);
    const upstream = route.serving[0]!.upstream;
    // Its attempt outlasts the connect timeout (unreachable, as /readyz reads it), then the timeout again.
    await vi.waitFor(() => expect(upstream.unreachableSince).toBeDefined(), { timeout: 2_000, interval: 10 });
    expect(route.pick()).toBeDefined();
    await vi.waitFor(() => expect(route.pick()).toBeUndefined(), { timeout: 2_000 });
    expect(route.pickOther(route.serving[0]!)).toBeUndefined();

    // Another instance whose first connection is under way is handed over, not the one out of reach.
    const fresh = await startSilentServer();
    routes.apply(snapshot(2, goods(silent.port), goods(fresh.port)));
    expect([1, 2, 3].map(() => route.pick()?.nodeId)).toEqual(
      [1, 2, 3].map(() => `goods@127.0.0.1:${fresh.port}`),
    );
    await fresh.close();
    routes.apply(snapshot(3, goods(silent.port)));

    // The instance answers again at its address: handed over as soon as its channel connects.
    await silent.close();
    const server = new Server();
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${silent.port}`, ServerCredentials.createInsecure(), (error) =>
        error ? reject(error) : resolve(),
      ),
    );
    try {
      await vi.waitFor(() => expect(route.pick()?.nodeId).toBe(`goods@127.0.0.1:${silent.port}`), {
        timeout: 3_000,
      });
      expect(upstream.unreachableSince).toBeUndefined();
    } finally {
      server.forceShutdown();
    }
  });

  it("matches templates: the additional binding DELETE /goods/{id} beside the book's DELETE /goods", () => {
    const { table: routes } = table();
    routes.apply(snapshot(1, goods(9010)));
    const byQuery = routes.match('DELETE', '/goods')!;
    expect(byQuery.route.key).toBe('DELETE /goods');
    expect(byQuery.pathValues).toEqual([]);
    const byPath = routes.match('DELETE', '/goods/42')!;
    expect(byPath.route.key).toBe('DELETE /goods/*');
    expect(byPath.route.template.text).toBe('/goods/{id}');
    expect(byPath.pathValues).toEqual(['42']);
    expect(byPath.route.pick()!.plan.route.pathVariables.map((variable) => variable.fieldPath)).toEqual([
      'id',
    ]);
    expect(routes.match('DELETE', '/goods/a%2Fb')!.pathValues).toEqual(['a/b']);
    for (const [method, path] of [
      ['DELETE', '/goods/'],
      ['DELETE', '/goods/1/2'],
      ['GET', '/goods/1'],
      ['DELETE', '/goods/%zz'],
    ]) {
      expect(routes.match(method!, path!), `${method} ${path}`).toBeUndefined();
    }
    expect(routes.methodsOf('/goods')).toEqual(['DELETE', 'GET', 'POST']);
    expect(routes.methodsOf('/goods/7')).toEqual(['DELETE']);
    expect(routes.methodsOf('/nope')).toEqual([]);
    expect(routes.describe().find((info) => info.path === '/goods/*')).toMatchObject({
      method: 'DELETE',
      template: '/goods/{id}',
      grpcMethods: ['shop.v1.GoodsService/DeleteGoods'],
    });
  });

  it('prefers literal segments to variables, and matches ** over any depth', () => {
    const { table: routes } = table();
    const file = kitchenWith('Special', httpOptions('PATCH /kitchen/special/{f_string}'));
    routes.apply(snapshot(1, node('kitchen', 9050, descriptorSetOf(file))));
    const special = routes.match('PATCH', '/kitchen/special/x')!;
    expect(special.route.pick()!.plan.grpcMethod).toBe('test.kitchen.v1.KitchenService/Special');
    expect(special.pathValues).toEqual(['x']);
    const deep = routes.match('PATCH', '/kitchen/7/a/b/c')!;
    expect(deep.route.pick()!.plan.grpcMethod).toBe('test.kitchen.v1.KitchenService/Update');
    expect(deep.pathValues).toEqual(['7', 'a/b/c']);
  });

  it('matches a literal template with %-escapes as a templated one is matched: decoded, whatever the hex case', () => {
    const { table: routes } = table();
    const file = kitchenWith('Cafe', httpOptions('GET /caf%C3%A9', { additional: ['GET /go%6Fds'] }));
    routes.apply(snapshot(1, node('kitchen', 9050, descriptorSetOf(file))));
    // The gateway routes a path with its unreserved escapes decoded (routingPath): "/go%6Fds" is "/goods".
    for (const path of ['/caf%C3%A9', '/caf%c3%a9', '/goods']) {
      expect(routes.match('GET', path)?.route.pick()?.plan.grpcMethod, path).toBe(
        'test.kitchen.v1.KitchenService/Cafe',
      );
      expect(routes.methodsOf(path), path).toEqual(['GET']);
    }
    expect(routes.templateOf('/caf%c3%a9')).toBe('/caf%C3%A9');
  });

  it("keeps a route with the name that declared it first, skipping another name's instances with one warning", () => {
    const warn = vi.fn();
    const log = { warn, debug: vi.fn(), info: vi.fn(), error: vi.fn() } as unknown as Logger;
    const { table: routes } = table(log);
    const rogue = node('rogue', 9099, GOODS_SET, new Date(3_000));
    routes.apply(snapshot(1, goods(9010), rogue));
    routes.apply(snapshot(2, goods(9010), rogue));
    expect(routes.get('GET /goods')!.serving.map((instance) => instance.nodeId)).toEqual([
      'goods@127.0.0.1:9010',
    ]);
    // One warning per route the registration cannot have.
    expect(warn).toHaveBeenCalledTimes(4);
    expect(warn.mock.calls.map((call) => String(call[1]))).toContain(
      'not routing to rogue@127.0.0.1:9099: GET /goods belongs to "goods", which declared it first',
    );
    // Once goods has left, the route is the other name's.
    routes.apply(snapshot(3, rogue));
    expect(routes.get('GET /goods')!.pick()!.nodeId).toBe('rogue@127.0.0.1:9099');
  });

  it('knows since when no instance has served a route, draining or gone, and forgets it once one serves', () => {
    const { table: routes } = table();
    const unservedSince = () =>
      routes.describe().find((route) => route.method === 'GET' && route.path === '/goods')?.unservedSince;
    routes.apply(snapshot(1, goods(9010)));
    expect(unservedSince()).toBeUndefined();
    const before = performance.now();
    routes.apply(snapshot(2, goods(9010, NodeState.NODE_STATE_DRAINING)));
    const since = unservedSince();
    expect(since).toBeGreaterThanOrEqual(before);
    // Still unserved when its last instance goes: the same moment, not a new one.
    routes.apply(snapshot(3));
    expect(unservedSince()).toBe(since);
    routes.apply(snapshot(4, goods(9011)));
    expect(unservedSince()).toBeUndefined();
  });

  it("routes a path to another name's live route rather than to a retired route that also takes it", () => {
    // Found with real processes: a service declaring DELETE /goods/special left, goods then held
    // DELETE /goods/{id} (the distributor frees the paths of a name whose nodes have all left), and
    // DELETE /goods/special was still answered 503 "No serving instance" by the retired literal.
    const { table: routes } = table();
    const file = kitchenWith('Special', httpOptions('DELETE /goods/special'));
    routes.apply(snapshot(1, node('kitchen', 9050, descriptorSetOf(file))));
    routes.apply(snapshot(2));
    expect(routes.match('DELETE', '/goods/special')).toMatchObject({ retired: true });
    routes.apply(snapshot(3, goods(9010)));
    const match = routes.match('DELETE', '/goods/special')!;
    expect(match).toMatchObject({ retired: false, pathValues: ['special'] });
    expect(match.route.pick()!.plan.grpcMethod).toBe('shop.v1.GoodsService/DeleteGoods');
    // With no live route taking the path, the retired one answers it again (503, not 404).
    routes.apply(snapshot(4));
    expect(routes.match('DELETE', '/goods/special')).toMatchObject({ retired: true, pathValues: [] });
  });

  it('answers a retired templated route as retired, not unknown', () => {
    const { table: routes } = table();
    routes.apply(snapshot(1, goods(9010)));
    routes.apply(snapshot(2));
    expect(routes.match('DELETE', '/goods/3')).toMatchObject({ retired: true, pathValues: ['3'] });
    expect(routes.isRetired('DELETE /goods/*')).toBe(true);
    expect(routes.methodsOf('/goods')).toEqual(['DELETE', 'GET', 'POST']);
  });
});
