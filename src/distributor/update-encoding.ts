import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { type NodeState, RegisterResponse, type RegistrationAck } from '../gen/distributor.js';
import type { RegistryChange } from './node-registry.js';

/**
 * Encoders of the distributor's stream messages, written by hand around bytes encoded once: a node
 * is encoded when it joins (or changes state) and every snapshot and `added` event reuses those
 * bytes, so that a snapshot of thousands of nodes costs a copy, not an encoding.
 *
 * Every update is framed as field 3 of its response, which is `update` in both RegisterResponse and
 * WatchResponse: one buffer serves every Register and Watch stream alike.
 */

/** A field's tag: its number and wire type, as they precede its value. */
export const tag = (field: number, wireType: WireType): number => (field << 3) | wireType;

/** What a writer wrote, as a Buffer over the same memory (grpc-js writes Buffers). */
export function finishedBuffer(writer: BinaryWriter): Buffer {
  const bytes = writer.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** RegisterResponse.update = 3 and WatchResponse.update = 3. */
const RESPONSE_UPDATE = tag(3, WireType.LengthDelimited);
/** NodeListUpdate fields. */
const UPDATE_INSTANCE_ID = tag(1, WireType.LengthDelimited);
const UPDATE_REVISION = tag(2, WireType.Varint);
const UPDATE_SNAPSHOT = tag(3, WireType.LengthDelimited);
const UPDATE_RESUMED = tag(4, WireType.LengthDelimited);
const UPDATE_ADDED = tag(5, WireType.LengthDelimited);
const UPDATE_REMOVED = tag(6, WireType.LengthDelimited);
const UPDATE_STATE_CHANGED = tag(7, WireType.LengthDelimited);
/** Snapshot fields. */
const SNAPSHOT_REVISION = tag(1, WireType.Varint);
const SNAPSHOT_NODE = tag(2, WireType.LengthDelimited);
const SNAPSHOT_INSTANCE_ID = tag(3, WireType.LengthDelimited);
/** NodeStateChange fields. */
const STATE_CHANGE_NODE_ID = tag(1, WireType.LengthDelimited);
const STATE_CHANGE_STATE = tag(2, WireType.Varint);

function update(instanceId: string, revision: number, change: (writer: BinaryWriter) => void): Buffer {
  const writer = new BinaryWriter().uint32(RESPONSE_UPDATE).fork();
  writer.uint32(UPDATE_INSTANCE_ID).string(instanceId).uint32(UPDATE_REVISION).uint64(revision);
  change(writer);
  return finishedBuffer(writer.join());
}

/** The update with the whole list, from its nodes encoded one by one (see NodeRegistry.encodedNodes). */
export function encodeSnapshotUpdate(
  instanceId: string,
  revision: number,
  encodedNodes: readonly Uint8Array[],
): Buffer {
  return update(instanceId, revision, (writer) => {
    writer.uint32(UPDATE_SNAPSHOT).fork().uint32(SNAPSHOT_REVISION).uint64(revision);
    for (const node of encodedNodes) writer.uint32(SNAPSHOT_NODE).bytes(node);
    writer.uint32(SNAPSHOT_INSTANCE_ID).string(instanceId).join();
  });
}

/** The update that opens a resumed subscription, at the revision the subscriber holds. */
export function encodeResumedUpdate(instanceId: string, revision: number): Buffer {
  return update(instanceId, revision, (writer) => writer.uint32(UPDATE_RESUMED).fork().join());
}

/** The event of one change. */
export function encodeChangeUpdate(instanceId: string, change: RegistryChange): Buffer {
  return update(instanceId, change.revision, (writer) => {
    switch (change.kind) {
      case 'added':
        writer.uint32(UPDATE_ADDED).bytes(change.encoded);
        return;
      case 'removed':
        writer.uint32(UPDATE_REMOVED).string(change.nodeId);
        return;
      case 'stateChanged':
        writer
          .uint32(UPDATE_STATE_CHANGED)
          .fork()
          .uint32(STATE_CHANGE_NODE_ID)
          .string(change.nodeId)
          .uint32(STATE_CHANGE_STATE)
          .int32(change.state satisfies NodeState)
          .join();
        return;
    }
  });
}

/** RegisterResponse { node_id, ack }: one node's own acknowledgement. */
export function encodeAck(nodeId: string, ack: RegistrationAck): Buffer {
  return finishedBuffer(RegisterResponse.encode({ nodeId, snapshot: undefined, update: undefined, ack }));
}
