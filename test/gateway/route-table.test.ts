import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  encodeDescriptorSet,
  filesForServices,
  loadShopDescriptorSet,
} from '../../src/common/descriptors.js';
import type { Logger } from '../../src/common/logger.js';
import { ENVELOPE_ROOM } from '../../src/gateway/envelope.js';
import { InstancePool } from '../../src/gateway/instance-pool.js';
import { RouteTable } from '../../src/gateway/route-table.js';
import { type Node, NodeState, type Snapshot } from '../../src/gen/distributor.js';
import { GOODS_ROUTES } from '../helpers/nodes.js';
import { descriptorSetOf, kitchenFile } from './support/descriptors.js';

const GOODS_SET = Buffer.from(
  encodeDescriptorSet(filesForServices(loadShopDescriptorSet(), ['shop.v1.GoodsService'])),
);

function goods(port: number, state = NodeState.NODE_STATE_SERVING, registeredAt = new Date(1_000)): Node {
  return {
    id: `goods@127.0.0.1:${port}`,
    name: 'goods',
    host: '127.0.0.1',
    port,
    routes: GOODS_ROUTES,
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

  it('keeps a departed channel open until its last call ends', () => {
    const { table: routes, pool } = table();
    routes.apply(snapshot(1, goods(9010)));
    const instance = routes.get('GET /goods')!.pick()!;
    const close = vi.spyOn(instance.upstream.client, 'close');
    pool.begin(instance.upstream);
    routes.apply(snapshot(2));
    expect(close).not.toHaveBeenCalled();
    pool.end(instance.upstream);
    expect(close).toHaveBeenCalledOnce();
  });

  it('picks up a route a new revision adds, from a service it has never seen', () => {
    const { table: routes } = table();
    routes.apply(snapshot(1, goods(9010)));
    const kitchen: Node = {
      id: 'kitchen@127.0.0.1:9050',
      name: 'kitchen',
      host: '127.0.0.1',
      port: 9050,
      routes: [
        {
          httpMethod: 'PUT',
          path: '/kitchen',
          grpcMethod: 'test.kitchen.v1.KitchenService/Echo',
          responseFields: ['f_int32'],
        },
      ],
      descriptorSet: Buffer.from(descriptorSetOf(kitchenFile())),
      state: NodeState.NODE_STATE_SERVING,
      registeredAt: new Date(2_000),
      descriptorSetSha256: Buffer.alloc(0),
    };
    routes.apply(snapshot(2, goods(9010), kitchen));
    expect(routes.get('PUT /kitchen')?.pick()?.plan.grpcMethod).toBe('test.kitchen.v1.KitchenService/Echo');
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
    // The same node registers again, now with a descriptor set that lacks ListGoods' response field.
    const changed: Node = {
      ...goods(9010, NodeState.NODE_STATE_SERVING, new Date(5_000)),
      routes: [{ ...GOODS_ROUTES[1]!, responseFields: [] }],
    };
    routes.apply(snapshot(3, changed));
    expect(route.pick()!.plan).not.toBe(first.plan);
    expect(route.pick()!.plan.render(Buffer.alloc(0)).subarray(ENVELOPE_ROOM).toString()).toBe('}');
  });

  it('skips a route whose descriptors cannot serve it, warning once, and keeps the rest', () => {
    const warn = vi.fn();
    const log = { warn, debug: vi.fn(), info: vi.fn(), error: vi.fn() } as unknown as Logger;
    const { table: routes } = table(log);
    const broken: Node = {
      ...goods(9010),
      routes: [
        ...GOODS_ROUTES,
        { httpMethod: 'GET', path: '/nope', grpcMethod: 'shop.v1.GoodsService/Nope', responseFields: [] },
      ],
    };
    routes.apply(snapshot(1, broken));
    routes.apply(snapshot(2, broken));
    expect(routes.get('GET /nope')).toBeUndefined();
    expect(routes.get('GET /goods')).toBeDefined();
    expect(warn).toHaveBeenCalledOnce();
    expect(String(warn.mock.calls[0]![1])).toContain('has no shop.v1.GoodsService/Nope');
    // A registration cannot change its descriptors; registering again (a new registered_at) can.
    routes.apply(
      snapshot(3, { ...broken, descriptorSet: Buffer.from([1, 2, 3]), registeredAt: new Date(9_000) }),
    );
    expect(routes.get('GET /goods')).toBeUndefined();
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
});
