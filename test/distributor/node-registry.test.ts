import { describe, expect, it } from 'vitest';
import { NodeRegistry } from '../../src/distributor/node-registry.js';
import { NodeState, type Snapshot } from '../../src/gen/distributor.js';
import { gatewayNode, goodsNode } from '../helpers/nodes.js';

function recordSnapshots(registry: NodeRegistry): Snapshot[] {
  const seen: Snapshot[] = [];
  registry.subscribe((snapshot) => seen.push(snapshot));
  return seen;
}

const ids = (snapshot: Snapshot): string[] => snapshot.nodes.map((node) => node.id);

describe('NodeRegistry', () => {
  it('starts empty at revision 0', () => {
    expect(new NodeRegistry().snapshot()).toEqual({ revision: 0, nodes: [] });
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
