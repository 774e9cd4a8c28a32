import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BUDGET,
  REGISTRATION_LIMITS,
  registrationBudget,
  resolveLimits,
} from '../../src/distributor/registration-limits.js';
import { nodeEntryBytes, SNAPSHOT_LIMIT_BYTES, varintBytes } from '../../src/distributor/snapshot-size.js';
import { type Node, RegisterRequest, RegisterResponse, Snapshot } from '../../src/gen/distributor.js';
import { goodsNode } from '../helpers/nodes.js';
import { junkNode, listedNode } from './support/junk-nodes.js';

const AT = new Date('2026-01-01T00:00:00.123Z');

describe('registration limits', () => {
  it('keeps every response within what a grpc-js client accepts by default', () => {
    expect(SNAPSHOT_LIMIT_BYTES).toBe(4 * 1024 * 1024);
    expect(REGISTRATION_LIMITS.snapshotBytes).toBe(SNAPSHOT_LIMIT_BYTES);
    expect(DEFAULT_BUDGET.listBytes + DEFAULT_BUDGET.envelopeBytes).toBe(SNAPSHOT_LIMIT_BYTES);
    expect(DEFAULT_BUDGET.nameBytes).toBe(Math.floor(DEFAULT_BUDGET.listBytes / 4));
  });

  it('counts a node as exactly what it adds to an encoded snapshot', () => {
    const nodes = [listedNode(goodsNode(), AT), listedNode(junkNode('junk', 9100, 200_000), AT)];
    const empty = Snapshot.encode({ revision: 7, nodes: [] }).finish().length;
    const full = Snapshot.encode({ revision: 7, nodes }).finish().length;
    expect(full - empty).toBe(nodes.reduce((sum, node) => sum + nodeEntryBytes(node), 0));
  });

  it('makes a list full to the last byte encode, with the longest id and revision, to exactly the limit', () => {
    const longestId = 'i'.repeat(DEFAULT_BUDGET.maxNodeIdLength);
    // One opaque node that takes the whole list budget stands for any nodes that do.
    const filler = (bytes: number): Node => ({
      ...listedNode(goodsNode(), AT),
      descriptorSet: Buffer.alloc(bytes),
    });
    let padding = DEFAULT_BUDGET.listBytes - nodeEntryBytes(filler(0));
    padding += DEFAULT_BUDGET.listBytes - nodeEntryBytes(filler(padding));
    expect(nodeEntryBytes(filler(padding))).toBe(DEFAULT_BUDGET.listBytes);
    const response = RegisterResponse.encode({
      nodeId: longestId,
      snapshot: { revision: Number.MAX_SAFE_INTEGER, nodes: [filler(padding)] },
    }).finish();
    expect(response.length).toBe(SNAPSHOT_LIMIT_BYTES);
  });

  it('fits the largest valid node in one name’s share and sizes the receive limit to it', () => {
    expect(DEFAULT_BUDGET.maxNodeBytes).toBeLessThanOrEqual(DEFAULT_BUDGET.nameBytes);
    const largestDescriptor = junkNode('n'.repeat(64), 65535, REGISTRATION_LIMITS.descriptorSetBytes);
    const request = RegisterRequest.encode({ kind: { $case: 'node', value: largestDescriptor } }).finish();
    expect(request.length).toBeLessThan(DEFAULT_BUDGET.maxRequestBytes);
    expect(nodeEntryBytes(listedNode(largestDescriptor, AT))).toBeLessThan(DEFAULT_BUDGET.maxNodeBytes);
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
    [{ descriptorSetBytes: 1024 * 1024 }, 'the largest valid node takes'],
    [{ nameShare: 0.1 }, "over one name's share"],
  ])('refuses limits that do not hold together: %o', (overrides, message) => {
    expect(() => registrationBudget(resolveLimits(overrides))).toThrow(message);
  });
});
