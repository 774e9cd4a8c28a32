import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/common/service-error.js';
import { NodeRegistry } from '../../src/distributor/node-registry.js';
import { DEFAULT_BUDGET, REGISTRATION_LIMITS } from '../../src/distributor/registration-limits.js';
import { ReservedContract } from '../../src/distributor/reserved-contract.js';
import { SNAPSHOT_LIMIT_BYTES } from '../../src/distributor/snapshot-size.js';
import { type NodeDescription, NodeState, type Snapshot } from '../../src/gen/distributor.js';
import { SHOP_SERVICES } from '../../src/services/service-list.js';
import { captureLog } from '../helpers/log-capture.js';
import {
  gatewayNode,
  goodsDescriptorSet,
  goodsDescriptorSetWithoutRoutes,
  goodsNode,
} from '../helpers/nodes.js';
import {
  junkNode,
  junkNodeOfEntrySize,
  largestResponseBytes,
  PIECE_BYTES,
  piecesOf,
} from './support/junk-nodes.js';

function recordSnapshots(registry: NodeRegistry): Snapshot[] {
  const seen: Snapshot[] = [];
  registry.subscribe((snapshot) => seen.push(snapshot));
  return seen;
}

const ids = (snapshot: Snapshot): string[] => snapshot.nodes.map((node) => node.id);

describe('NodeRegistry', () => {
  it('starts empty at revision 0, under an instance id of its own', () => {
    const registry = new NodeRegistry();
    expect(registry.snapshot()).toEqual({ revision: 0, nodes: [], instanceId: registry.instanceId });
    expect(registry.instanceId).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(new NodeRegistry().instanceId).not.toBe(registry.instanceId);
  });

  it('lists a node on join under name@host:port, serving, and tells listeners', () => {
    const registry = new NodeRegistry({ now: () => new Date('2020-11-04T15:31:47.000Z') });
    const seen = recordSnapshots(registry);
    const lease = registry.join(goodsNode({ port: 9010 }), '10.0.0.5', () => {});
    expect(lease.id).toBe('goods@10.0.0.5:9010');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.revision).toBe(1);
    expect(seen[0]!.nodes[0]).toMatchObject({
      id: 'goods@10.0.0.5:9010',
      name: 'goods',
      host: '10.0.0.5',
      port: 9010,
      state: NodeState.NODE_STATE_SERVING,
      registeredAt: new Date('2020-11-04T15:31:47.000Z'),
    });
  });

  it('writes an IPv6 host in brackets in the node id, as every address the project writes', () => {
    const registry = new NodeRegistry();
    // Bare, "goods@fd00::2:9010" reads as one address, the port a part of it.
    expect(registry.join(goodsNode({ port: 9010 }), 'fd00::2', () => {}).id).toBe('goods@[fd00::2]:9010');
    expect(registry.snapshot().nodes[0]).toMatchObject({ host: 'fd00::2', port: 9010 });
  });

  it('removes a node when it leaves, and only once', () => {
    const registry = new NodeRegistry();
    const lease = registry.join(goodsNode(), '127.0.0.1', () => {});
    registry.join(gatewayNode(), '127.0.0.1', () => {});
    const seen = recordSnapshots(registry);
    lease.leave('closed');
    lease.leave('closed again');
    expect(seen.map(ids)).toEqual([['gateway@127.0.0.1:8000']]);
    expect(registry.snapshot().revision).toBe(3);
  });

  it('replaces an entry registered again under the same identity, never listing it twice', () => {
    const registry = new NodeRegistry();
    let replaced = 0;
    const first = registry.join(goodsNode(), '127.0.0.1', () => replaced++);
    const second = registry.join(goodsNode(), '127.0.0.1', () => {});
    expect(replaced).toBe(1);
    expect(ids(registry.snapshot())).toEqual(['goods@127.0.0.1:9010']);
    // The replaced lease can no longer touch the new entry.
    first.leave('old stream ended');
    first.setState(NodeState.NODE_STATE_DRAINING);
    expect(ids(registry.snapshot())).toEqual(['goods@127.0.0.1:9010']);
    expect(registry.snapshot().nodes[0]!.state).toBe(NodeState.NODE_STATE_SERVING);
    second.leave('closed');
    expect(registry.snapshot().nodes).toEqual([]);
  });

  it('logs the address of a replacement that came from another address, as a warning', () => {
    const { log, lines } = captureLog('distributor');
    const registry = new NodeRegistry({ log });
    registry.join(goodsNode(), '10.0.0.2', () => {}, 'spiffe://shop/goods', undefined, '10.0.0.2');
    registry.join(goodsNode(), '10.0.0.2', () => {}, 'spiffe://shop/goods', undefined, '10.0.0.2');
    registry.join(goodsNode(), '10.0.0.2', () => {}, 'spiffe://shop/goods', undefined, '10.0.0.66');
    const joins = lines.filter((line) => line.event === 'join' || line.event === 'rejoin');
    expect(joins.map((line) => [line.level, line.peer, line.previousPeer, line.msg])).toEqual([
      [30, '10.0.0.2', undefined, 'node goods@10.0.0.2:9010 joined'],
      [30, '10.0.0.2', undefined, 'node goods@10.0.0.2:9010 registered again, replacing its earlier entry'],
      [
        40,
        '10.0.0.66',
        '10.0.0.2',
        'node goods@10.0.0.2:9010 registered again from 10.0.0.66, replacing its earlier entry registered from 10.0.0.2',
      ],
    ]);
  });

  it('keeps two instances of one service apart by port', () => {
    const registry = new NodeRegistry();
    registry.join(goodsNode({ port: 9010 }), '127.0.0.1', () => {});
    registry.join(goodsNode({ port: 9011 }), '127.0.0.1', () => {});
    expect(ids(registry.snapshot())).toEqual(['goods@127.0.0.1:9010', 'goods@127.0.0.1:9011']);
  });

  it('keeps a draining node listed with its state; the same state twice is no change', () => {
    const registry = new NodeRegistry();
    const lease = registry.join(goodsNode(), '127.0.0.1', () => {});
    const seen = recordSnapshots(registry);
    lease.setState(NodeState.NODE_STATE_DRAINING);
    lease.setState(NodeState.NODE_STATE_DRAINING);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.nodes[0]!.state).toBe(NodeState.NODE_STATE_DRAINING);
    lease.setState(NodeState.NODE_STATE_SERVING);
    expect(seen.map((snapshot) => snapshot.nodes[0]!.state)).toEqual([
      NodeState.NODE_STATE_DRAINING,
      NodeState.NODE_STATE_SERVING,
    ]);
  });

  it('lists a node that registers as draining as draining', () => {
    const registry = new NodeRegistry();
    registry.join(goodsNode({ state: NodeState.NODE_STATE_DRAINING }), '127.0.0.1', () => {});
    expect(registry.snapshot().nodes[0]!.state).toBe(NodeState.NODE_STATE_DRAINING);
  });

  it('grows the revision by exactly one on every change, in the order listeners see', () => {
    const registry = new NodeRegistry();
    const seen = recordSnapshots(registry);
    const goods = registry.join(goodsNode(), '127.0.0.1', () => {});
    const gateway = registry.join(gatewayNode(), '127.0.0.1', () => {});
    goods.setState(NodeState.NODE_STATE_DRAINING);
    goods.leave('closed');
    gateway.leave('closed');
    expect(seen.map((snapshot) => snapshot.revision)).toEqual([1, 2, 3, 4, 5]);
    expect(seen.map((snapshot) => snapshot.nodes.length)).toEqual([1, 2, 2, 1, 0]);
  });

  it('stops telling a listener once it unsubscribes', () => {
    const registry = new NodeRegistry();
    const seen: number[] = [];
    const unsubscribe = registry.subscribe((snapshot) => seen.push(snapshot.revision));
    registry.join(goodsNode(), '127.0.0.1', () => {});
    unsubscribe();
    registry.join(gatewayNode(), '127.0.0.1', () => {});
    expect(seen).toEqual([1]);
  });
});

function refusal(join: () => unknown): ServiceError {
  try {
    join();
  } catch (error) {
    expect(error).toBeInstanceOf(ServiceError);
    return error as ServiceError;
  }
  throw new Error('the node was accepted');
}

describe("NodeRegistry reserved rule: the shop's contract names who serves each service", () => {
  const reserved = (what: string, name: string) =>
    `${what} (the served_by option of the shop's contract): a node named "${name}" cannot serve it`;

  it('reserves every service the shop runs to the name it registers under', () => {
    // A service renamed on one side only would be refused at its first registration (exit 3).
    const reservedTo = ReservedContract.ofShop().services;
    for (const service of SHOP_SERVICES) expect(reservedTo.get(service.grpc.name)).toBe(service.name);
  });

  it('lets only the name a served_by option gives register the service or its routes, even while no node of it is listed', () => {
    const registry = new NodeRegistry();
    expect(ReservedContract.ofShop().services).toEqual(
      new Map([
        ['shop.v1.GoodsService', 'goods'],
        ['shop.v1.MembersService', 'members'],
        ['shop.v1.PurchasesService', 'purchases'],
      ]),
    );
    const seen = recordSnapshots(registry);
    // Nobody is listed: goods' service is still goods', with its routes or without them (which
    // distributor:/// clients would otherwise resolve to the first name that defines it).
    for (const descriptorSet of [goodsDescriptorSet(), goodsDescriptorSetWithoutRoutes()]) {
      const rival = refusal(() =>
        registry.join(goodsNode({ name: 'rival', descriptorSet }), '127.0.0.1', () => {}),
      );
      expect([rival.code, rival.message]).toEqual([
        status.PERMISSION_DENIED,
        reserved('service "shop.v1.GoodsService" is served by "goods"', 'rival'),
      ]);
    }
    // Another service's route on a reserved path, or one that takes some of its paths.
    const notes = (keys: string[]) =>
      refusal(() =>
        registry.join(gatewayNode({ name: 'notes', port: 9500 }), '127.0.0.1', () => {}, undefined, keys),
      );
    expect(notes(['GET /members']).message).toBe(
      reserved('route "GET /members" is served by "members"', 'notes'),
    );
    expect(notes(['DELETE /goods/1']).message).toBe(
      reserved('route "DELETE /goods/1" takes paths of route "DELETE /goods/*", served by "goods"', 'notes'),
    );
    for (const key of ['GET /{name}', 'POST /{all=**}', 'GET /purchases/*/**']) {
      expect(notes([key]).code).toBe(status.PERMISSION_DENIED);
    }
    expect(seen).toHaveLength(0);
    // Paths the reserved routes never take, and another method, are first-come as before; the
    // names the contract gives register their own.
    registry.join(gatewayNode({ name: 'notes', port: 9500 }), '127.0.0.1', () => {}, undefined, [
      'GET /notes',
      'GET /goods/*/reviews',
      'PUT /members',
    ]);
    registry.join(goodsNode(), '127.0.0.1', () => {});
    expect(registry.snapshot().nodes.map((node) => node.id)).toEqual([
      'notes@127.0.0.1:9500',
      'goods@127.0.0.1:9010',
    ]);
  });
});

describe('NodeRegistry takeover rule', () => {
  it('lets the same principal take over a live identity: newest wins', () => {
    const registry = new NodeRegistry();
    let replaced = 0;
    registry.join(goodsNode(), '127.0.0.1', () => replaced++, 'spiffe://shop/goods');
    registry.join(
      goodsNode({ state: NodeState.NODE_STATE_DRAINING }),
      '127.0.0.1',
      () => {},
      'spiffe://shop/goods',
    );
    expect(replaced).toBe(1);
    expect(registry.snapshot().nodes.map((node) => node.state)).toEqual([NodeState.NODE_STATE_DRAINING]);
  });

  it('refuses another principal with ALREADY_EXISTS and changes nothing', () => {
    const registry = new NodeRegistry();
    let replaced = 0;
    registry.join(goodsNode(), '127.0.0.1', () => replaced++, 'spiffe://shop/goods');
    const seen = recordSnapshots(registry);
    const bytes = registry.listBytes;
    for (const principal of ['token', 'anonymous', 'spiffe://shop/members']) {
      const error = refusal(() =>
        registry.join(goodsNode({ descriptorSet: Buffer.alloc(0) }), '127.0.0.1', () => {}, principal),
      );
      expect(error.code).toBe(status.ALREADY_EXISTS);
      expect(error.message).toContain(
        'goods@127.0.0.1:9010 is held by a live registration of another principal',
      );
    }
    expect(replaced).toBe(0);
    expect(seen).toEqual([]);
    expect(registry.listBytes).toBe(bytes);
    // Listed with its descriptor set (by hash), which the refused registrations did not replace.
    expect(registry.snapshot().nodes[0]!.descriptorSetSha256).toHaveLength(32);
    expect(registry.descriptorSets.size).toBe(1);
  });

  it('lets a takeover with a new descriptor set reuse the room of the set only the replaced entry held', () => {
    // A name at its share of distinct sets (a quarter of descriptorSetsBytes, 1 MiB): four of ~250 KB.
    const registry = new NodeRegistry();
    const store = registry.descriptorSets;
    const replaced: number[] = [];
    for (let index = 0; index < 4; index++) {
      registry.join(junkNode('junk', 9000 + index, 250_000 + index), '127.0.0.1', () => replaced.push(index));
    }
    const before = store.bytes;
    // Node 0 restarts with a set of its own, before its old stream is seen dead: it replaces its old
    // entry, whose set nobody else uses, as it would be let in once that entry left.
    registry.join(junkNode('junk', 9000, 250_010), '127.0.0.1', () => {});
    expect(replaced).toEqual([0]);
    expect(store.size).toBe(4);
    expect(store.bytes).toBe(before - 250_000 + 250_010);
    // Room is given back for the replaced entry only: another instance's new set is still refused.
    const error = refusal(() => registry.join(junkNode('junk', 9009, 250_020), '127.0.0.1', () => {}));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.message).toMatch(/^too much registered under the name junk: its distinct descriptor sets/);
    // A set another instance still uses is not freed by replacing one of its users.
    registry.join(junkNode('junk', 9004, 250_001), '127.0.0.1', () => {});
    expect(() => registry.join(junkNode('junk', 9004, 250_030), '127.0.0.1', () => {})).toThrow(
      /too much registered under the name junk/,
    );
    expect(store.size).toBe(4);
  });

  it('lets a takeover with a new descriptor set reuse the store room of the set only the replaced entry held', () => {
    const limits = { ...REGISTRATION_LIMITS, descriptorSetsBytes: 600_000, nameShare: 0.5 };
    const registry = new NodeRegistry({ limits });
    registry.join(junkNode('a', 9000, 250_000), '127.0.0.1', () => {});
    registry.join(junkNode('b', 9000, 250_001), '127.0.0.1', () => {});
    registry.join(junkNode('c', 9000, 99_000), '127.0.0.1', () => {});
    // a's only node restarts with a new set: 599,010 bytes once its old set goes, within 600,000.
    registry.join(junkNode('a', 9000, 250_010), '127.0.0.1', () => {});
    expect(registry.descriptorSets.bytes).toBe(599_011);
    expect(registry.descriptorSets.size).toBe(3);
    // A new node needs room of its own.
    expect(() => registry.join(junkNode('c', 9001, 2_000), '127.0.0.1', () => {})).toThrow(
      /the registry is full: the distinct descriptor sets would take 601011 bytes/,
    );
  });

  it('refuses a node of another name that declares a route already served, until its holders leave', () => {
    // The first-come rule, shown on the shop's services as if the distributor held no contract.
    const registry = new NodeRegistry({ reserved: ReservedContract.none() });
    const first = registry.join(goodsNode(), '127.0.0.1', () => {});
    const second = registry.join(goodsNode({ port: 9011 }), '127.0.0.1', () => {});
    const seen = recordSnapshots(registry);
    const error = refusal(() => registry.join(goodsNode({ name: 'rival' }), '127.0.0.1', () => {}));
    expect(error.code).toBe(status.ALREADY_EXISTS);
    expect(error.message).toContain('route "POST /goods" is served by goods@127.0.0.1:9010');
    expect(seen).toEqual([]);
    // Route keys given by the caller are what counts: "DELETE /goods/*" whatever the variable's name.
    const byKey = refusal(() =>
      registry.join(gatewayNode({ name: 'other' }), '127.0.0.1', () => {}, undefined, ['DELETE /goods/*']),
    );
    expect(byKey.message).toContain('route "DELETE /goods/*" is served by');
    first.leave('closed');
    expect(refusal(() => registry.join(goodsNode({ name: 'rival' }), '127.0.0.1', () => {})).code).toBe(
      status.ALREADY_EXISTS,
    );
    second.leave('closed');
    expect(registry.join(goodsNode({ name: 'rival' }), '127.0.0.1', () => {}).id).toBe(
      'rival@127.0.0.1:9010',
    );
  });

  it('refuses a route of another name that takes paths of a held route, either way round, and changes nothing', () => {
    // The first-come rule, shown on the shop's services as if the distributor held no contract.
    const registry = new NodeRegistry({ reserved: ReservedContract.none() });
    const seen = recordSnapshots(registry);
    registry.join(goodsNode(), '127.0.0.1', () => {});
    // A literal under goods' template: the gateway, which tries literals first, would hand it over.
    const literal = refusal(() =>
      registry.join(gatewayNode({ name: 'evil', port: 9666 }), '127.0.0.1', () => {}, undefined, [
        'DELETE /goods/1',
      ]),
    );
    expect(literal.code).toBe(status.ALREADY_EXISTS);
    expect(literal.message).toContain(
      'route "DELETE /goods/1" takes paths of route "DELETE /goods/*", served by goods@127.0.0.1:9010',
    );
    // A template over goods' literal, and a "**" over everything under /goods.
    for (const key of ['GET /{name}', 'POST /{all=**}', 'DELETE /goods/*/**']) {
      expect(
        refusal(() =>
          registry.join(gatewayNode({ name: 'evil', port: 9666 }), '127.0.0.1', () => {}, undefined, [key]),
        ).code,
      ).toBe(status.ALREADY_EXISTS);
    }
    expect(seen).toHaveLength(1);
    // Paths goods' routes never take, another method, and goods' own further routes are free.
    const fine = registry.join(gatewayNode({ name: 'other', port: 9667 }), '127.0.0.1', () => {}, undefined, [
      'GET /goods/*/reviews',
      'PUT /goods/*',
      'GET /members',
    ]);
    expect(fine.id).toBe('other@127.0.0.1:9667');
    expect(
      registry.join(goodsNode({ port: 9011 }), '127.0.0.1', () => {}, undefined, ['DELETE /goods/special'])
        .id,
    ).toBe('goods@127.0.0.1:9011');
  });

  it('holds at most heldRoutes distinct routes, a share of them per name, and frees them as nodes leave', () => {
    // 16 routes in all, 4 per name (a node may serve 4).
    const registry = new NodeRegistry({ limits: { ...REGISTRATION_LIMITS, routes: 4, heldRoutes: 16 } });
    const join = (name: string, keys: string[]) =>
      registry.join(gatewayNode({ name, port: 9000 + keys.length }), '127.0.0.1', () => {}, undefined, keys);
    const routesOf = (name: string, count: number) =>
      Array.from({ length: count }, (_, index) => `GET /${name}/${index}`);
    const a = join('a', routesOf('a', 4));
    // Another instance of a, with the same routes, adds none.
    const second = registry.join(
      gatewayNode({ name: 'a', port: 9100 }),
      '127.0.0.1',
      () => {},
      undefined,
      routesOf('a', 4),
    );
    const overName = refusal(() =>
      registry.join(gatewayNode({ name: 'a', port: 9101 }), '127.0.0.1', () => {}, undefined, [
        'GET /a/extra',
      ]),
    );
    expect(overName.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(overName.message).toBe(
      'the registry is full: the nodes named "a" hold 4 distinct REST routes of at most 4',
    );
    join('b', routesOf('b', 4));
    join('c', routesOf('c', 4));
    join('d', routesOf('d', 4));
    const overAll = refusal(() => join('e', routesOf('e', 1)));
    expect(overAll.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(overAll.message).toBe(
      'the registry is full: the registry holds 16 distinct REST routes of at most 16',
    );
    // One instance of a leaving frees nothing; the last one frees a's four.
    a.leave('closed');
    expect(refusal(() => join('e', routesOf('e', 1))).code).toBe(status.RESOURCE_EXHAUSTED);
    second.leave('closed');
    expect(join('e', routesOf('e', 4)).id).toBe('e@127.0.0.1:9004');
    // e, at its share, registers again with other routes: its own old ones are given back first.
    expect(join('e', ['GET /e/new/0', 'GET /e/new/1', 'GET /e/new/2', 'GET /e/new/3']).id).toBe(
      'e@127.0.0.1:9004',
    );
  });

  it('frees the routes of a node that registers again without them', () => {
    // The first-come rule, shown on the shop's services as if the distributor held no contract.
    const registry = new NodeRegistry({ reserved: ReservedContract.none() });
    registry.join(goodsNode(), '127.0.0.1', () => {});
    expect(
      refusal(() => registry.join(goodsNode({ name: 'rival', port: 9011 }), '127.0.0.1', () => {})).code,
    ).toBe(status.ALREADY_EXISTS);
    // The same identity again, now serving no route: its earlier routes go with the entry it replaces.
    registry.join(goodsNode(), '127.0.0.1', () => {}, undefined, []);
    expect(registry.join(goodsNode({ name: 'rival', port: 9011 }), '127.0.0.1', () => {}).id).toBe(
      'rival@127.0.0.1:9011',
    );
  });

  it('lets another principal in once the holder has left', () => {
    const registry = new NodeRegistry();
    registry.join(goodsNode(), '127.0.0.1', () => {}, 'token').leave('closed');
    expect(registry.join(goodsNode(), '127.0.0.1', () => {}, 'spiffe://shop/goods').id).toBe(
      'goods@127.0.0.1:9010',
    );
  });
});

describe('NodeRegistry limits (the defaults)', () => {
  const AT = new Date('2026-01-01T00:00:00.123Z');
  const nodeOf = (name: string, port: number): NodeDescription => gatewayNode({ name, port });

  it(`lists ${REGISTRATION_LIMITS.nodesPerName} nodes of one name, and refuses one more`, () => {
    const registry = new NodeRegistry();
    for (let port = 1; port <= REGISTRATION_LIMITS.nodesPerName; port++) {
      registry.join(nodeOf('gateway', port), '127.0.0.1', () => {});
    }
    const seen = recordSnapshots(registry);
    const error = refusal(() => registry.join(nodeOf('gateway', 9999), '127.0.0.1', () => {}));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.message).toBe(`too many nodes named gateway: at most ${REGISTRATION_LIMITS.nodesPerName}`);
    expect(seen).toEqual([]);
    // A replacement is no extra node.
    registry.join(nodeOf('gateway', 1), '127.0.0.1', () => {});
    expect(registry.snapshot().nodes).toHaveLength(REGISTRATION_LIMITS.nodesPerName);
  });

  it(`lists ${REGISTRATION_LIMITS.nodes} nodes in all, and refuses one more`, () => {
    const registry = new NodeRegistry();
    const names = REGISTRATION_LIMITS.nodes / REGISTRATION_LIMITS.nodesPerName;
    for (let name = 0; name < names; name++) {
      for (let port = 1; port <= REGISTRATION_LIMITS.nodesPerName; port++) {
        registry.join(nodeOf(`service-${name}`, port), '127.0.0.1', () => {});
      }
    }
    expect(registry.snapshot().nodes).toHaveLength(REGISTRATION_LIMITS.nodes);
    const error = refusal(() => registry.join(nodeOf('one-more', 1), '127.0.0.1', () => {}));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.message).toBe(`the registry is full: at most ${REGISTRATION_LIMITS.nodes} nodes`);
    expect(registry.snapshot().revision).toBe(REGISTRATION_LIMITS.nodes);
  });

  it('fills one name up to its share of the bytes exactly, and refuses one byte more', () => {
    const registry = new NodeRegistry({ now: () => AT });
    const share = DEFAULT_BUDGET.nameBytes;
    const sizes = piecesOf(share);
    const lastPort = 9100 + sizes.length - 1;
    sizes.forEach((size, index) => {
      registry.join(junkNodeOfEntrySize('junk', 9100 + index, size, AT), '127.0.0.1', () => {});
    });
    expect(registry.listBytes).toBe(share);
    // A replacement may reuse the room of the entry it replaces, and not a byte more.
    const last = sizes.at(-1)!;
    registry.join(junkNodeOfEntrySize('junk', lastPort, last, AT), '127.0.0.1', () => {});
    const error = refusal(() =>
      registry.join(junkNodeOfEntrySize('junk', lastPort, last + 1, AT), '127.0.0.1', () => {}),
    );
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.message).toBe(
      `too much registered under the name junk: its nodes would take ${share + 1} bytes of the node list, over their share of ${share}`,
    );
    expect(registry.listBytes).toBe(share);
    // Another name has its own share.
    registry.join(junkNodeOfEntrySize('other', 9100, PIECE_BYTES, AT), '127.0.0.1', () => {});
  });

  it('fills the list to exactly what a response can carry, and refuses one byte more', () => {
    const registry = new NodeRegistry({ now: () => AT });
    const share = DEFAULT_BUDGET.nameBytes;
    const join = (name: string, port: number, bytes: number) =>
      registry.join(junkNodeOfEntrySize(name, port, bytes, AT), '127.0.0.1', () => {});
    for (const name of ['a', 'b', 'c', 'd']) {
      for (const [index, bytes] of piecesOf(share - 100_000).entries()) join(name, index + 1, bytes);
    }
    const room = DEFAULT_BUDGET.listBytes - registry.listBytes;
    expect(room).toBeGreaterThan(PIECE_BYTES);
    const [last, ...before] = piecesOf(room).reverse();
    for (const [index, bytes] of before.entries()) join('e', index + 10, bytes);
    const seen = recordSnapshots(registry);
    const error = refusal(() => join('e', 1, last! + 1));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.message).toBe(
      `the registry is full: the node list would take ${DEFAULT_BUDGET.listBytes + 1} bytes, over the ` +
        `${DEFAULT_BUDGET.listBytes} that keep every response within ${SNAPSHOT_LIMIT_BYTES} bytes`,
    );
    expect(seen).toEqual([]);
    const lastNode = join('e', 1, last!);
    expect(registry.listBytes).toBe(DEFAULT_BUDGET.listBytes);
    expect(largestResponseBytes(registry.snapshot(), DEFAULT_BUDGET.maxNodeIdLength)).toBe(
      SNAPSHOT_LIMIT_BYTES,
    );
    // Room comes back when a node leaves.
    expect(() => join('e', 2, 50_000)).toThrow('the registry is full');
    lastNode.leave('closed');
    join('e', 2, 50_000);
  });
});
