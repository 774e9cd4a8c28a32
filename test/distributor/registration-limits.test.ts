import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BUDGET,
  REGISTRATION_LIMITS,
  registrationBudget,
  resolveLimits,
} from '../../src/distributor/registration-limits.js';
import { nodeEntryBytes, SNAPSHOT_LIMIT_BYTES, varintBytes } from '../../src/distributor/snapshot-size.js';
import { type Node, RegisterRequest, Snapshot } from '../../src/gen/distributor.js';
import { goodsNode } from '../helpers/nodes.js';
import { junkNode, largestResponseBytes, listedNode } from './support/junk-nodes.js';

const AT = new Date('2026-01-01T00:00:00.123Z');

describe('registration limits', () => {
  it('keeps every response within what a grpc-js client accepts by default', () => {
    expect(SNAPSHOT_LIMIT_BYTES).toBe(4 * 1024 * 1024);
    expect(REGISTRATION_LIMITS.snapshotBytes).toBe(SNAPSHOT_LIMIT_BYTES);
    expect(DEFAULT_BUDGET.listBytes + DEFAULT_BUDGET.envelopeBytes).toBe(SNAPSHOT_LIMIT_BYTES);
    expect(DEFAULT_BUDGET.envelopeBytes).toBeLessThan(512);
    expect(DEFAULT_BUDGET.nameBytes).toBe(Math.floor(DEFAULT_BUDGET.listBytes / 4));
  });

  it('counts a node as exactly what it adds to an encoded snapshot, its descriptor set by hash', () => {
    const nodes = [listedNode(goodsNode(), AT), listedNode(junkNode('junk', 9100, 200_000), AT)];
    const empty = Snapshot.encode({ revision: 7, nodes: [], instanceId: 'i' }).finish().length;
    const full = Snapshot.encode({ revision: 7, nodes, instanceId: 'i' }).finish().length;
    expect(full - empty).toBe(nodes.reduce((sum, node) => sum + nodeEntryBytes(node), 0));
    expect(nodes.map((node) => [node.descriptorSet.length, node.descriptorSetSha256.length])).toEqual([
      [0, 32],
      [0, 32],
    ]);
    expect(nodeEntryBytes(nodes[1]!)).toBeLessThan(200);
  });

  it('makes a list full to the last byte encode, with the longest ids and revision, to exactly the limit', () => {
    // One opaque node that takes the whole list budget stands for any nodes that do.
    const filler = (bytes: number): Node => ({
      ...listedNode(goodsNode(), AT),
      descriptorSet: Buffer.alloc(bytes),
    });
    let padding = DEFAULT_BUDGET.listBytes - nodeEntryBytes(filler(0));
    padding += DEFAULT_BUDGET.listBytes - nodeEntryBytes(filler(padding));
    expect(nodeEntryBytes(filler(padding))).toBe(DEFAULT_BUDGET.listBytes);
    const full: Snapshot = { revision: 1, nodes: [filler(padding)], instanceId: 'i' };
    expect(largestResponseBytes(full, DEFAULT_BUDGET.maxNodeIdLength)).toBe(SNAPSHOT_LIMIT_BYTES);
  });

  it('fits the largest valid node in one name’s share and sizes the receive limit to it', () => {
    expect(DEFAULT_BUDGET.maxNodeBytes).toBeLessThanOrEqual(DEFAULT_BUDGET.nameBytes);
    expect(REGISTRATION_LIMITS.descriptorSetBytes).toBeLessThanOrEqual(
      DEFAULT_BUDGET.nameDescriptorSetsBytes,
    );
    const largestDescriptor = junkNode('n'.repeat(64), 65535, REGISTRATION_LIMITS.descriptorSetBytes);
    const request = RegisterRequest.encode({
      kind: { $case: 'node', value: largestDescriptor },
      options: { nodeList: { resumeInstanceId: 'i'.repeat(64), resumeRevision: 2 ** 40 } },
    }).finish();
    expect(request.length).toBeLessThan(DEFAULT_BUDGET.maxRequestBytes);
    expect(nodeEntryBytes(listedNode(largestDescriptor, AT))).toBeLessThan(DEFAULT_BUDGET.maxNodeBytes);
  });

  it('admits thousands of goods-like nodes: the defaults derive from each other', () => {
    const goods = nodeEntryBytes(listedNode(goodsNode({ host: '10.100.200.123', port: 65535 }), AT));
    expect(goods).toBeLessThan(320);
    expect(REGISTRATION_LIMITS.nodes).toBe(8192);
    expect(REGISTRATION_LIMITS.nodesPerName).toBe(REGISTRATION_LIMITS.nodes * REGISTRATION_LIMITS.nameShare);
    expect(REGISTRATION_LIMITS.registrationBurst).toBe(REGISTRATION_LIMITS.nodesPerName);
    expect(REGISTRATION_LIMITS.descriptorSetsBytes).toBe(REGISTRATION_LIMITS.snapshotBytes);
    // Every node of the registry, and one name's every node, fit their bytes.
    expect(REGISTRATION_LIMITS.nodes * goods).toBeLessThan(DEFAULT_BUDGET.listBytes);
    expect(REGISTRATION_LIMITS.nodesPerName * goods).toBeLessThan(DEFAULT_BUDGET.nameBytes);
  });

  it('counts varints as protobuf writes them', () => {
    expect([0, 127, 128, 16_383, 16_384, 2 ** 21, 2 ** 28, 2 ** 53 - 1].map(varintBytes)).toEqual([
      1, 1, 2, 2, 3, 4, 5, 8,
    ]);
  });

  it.each([
    [{ nodes: 0 }, 'nodes: expected a positive integer'],
    [{ routes: 1.5 }, 'routes: expected a positive integer'],
    [{ nameShare: 0 }, 'nameShare: expected a fraction in (0, 1]'],
    [{ snapshotBytes: SNAPSHOT_LIMIT_BYTES + 1 }, 'expected at most 4194304, what clients accept'],
    [{ descriptorSetBytes: 1024 * 1024 + 1 }, 'the largest valid descriptor set takes'],
    [{ descriptorSetsBytes: 512 * 1024 }, 'the largest valid descriptor set takes'],
    [{ heldRoutes: 128 }, "a node may serve 64 routes, over one name's share of the held routes, 32"],
    [{ nameShare: 0.03 }, 'the largest valid node takes 1'],
  ])('refuses limits that do not hold together: %o', (overrides, message) => {
    expect(() => registrationBudget(resolveLimits(overrides))).toThrow(message);
  });
});
