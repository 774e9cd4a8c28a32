import { describe, expect, it } from 'vitest';
import { SnapshotEncoder } from '../../src/distributor/encoded-snapshot.js';
import { RegisterResponse, type Snapshot, WatchResponse } from '../../src/gen/distributor.js';
import { goodsNode } from '../helpers/nodes.js';

describe('SnapshotEncoder', () => {
  const node = goodsNode();
  const snapshot: Snapshot = {
    revision: 7,
    nodes: [{ ...node, id: 'goods@127.0.0.1:9010', registeredAt: new Date(1_000) }],
    instanceId: 'instance',
  };

  it('encodes the messages the generated code would, sharing one snapshot encoding', () => {
    const encoder = new SnapshotEncoder();
    const watch = encoder.watchResponse(snapshot);
    expect(WatchResponse.decode(watch)).toEqual(
      WatchResponse.decode(WatchResponse.encode({ snapshot, update: undefined }).finish()),
    );
    expect(encoder.watchResponse(snapshot)).toBe(watch);
    const nodeId = 'goods@127.0.0.1:9010';
    expect(RegisterResponse.decode(encoder.registerResponse(nodeId, snapshot))).toEqual(
      RegisterResponse.decode(
        RegisterResponse.encode({ nodeId, snapshot, update: undefined, ack: undefined }).finish(),
      ),
    );
  });

  it('encodes lengths over 127 bytes (multi-byte varints) and ids of any length', () => {
    const encoder = new SnapshotEncoder();
    const nodeId = `goods@${'h'.repeat(300)}:9010`;
    const decoded = RegisterResponse.decode(encoder.registerResponse(nodeId, snapshot));
    expect(decoded.nodeId).toBe(nodeId);
    expect(decoded.snapshot?.nodes[0]?.descriptorSet.length).toBe(node.descriptorSet.length);
  });
});
