import { Node, RegisterResponse } from '../gen/distributor.js';

/** The longest distributor instance id (Snapshot.instance_id) the envelope is sized for. */
export const MAX_INSTANCE_ID_LENGTH = 64;

/**
 * The largest message a client of the distributor accepts: grpc-js's default receive limit
 * (`grpc.max_receive_message_length`, 4 MiB), which no component raises. A snapshot that grew past it
 * would be refused by every node and watcher at once, so the registry keeps every response under it.
 */
export const SNAPSHOT_LIMIT_BYTES = 4 * 1024 * 1024;

/** How many bytes `value` (a non-negative integer) takes as a protobuf varint. */
export function varintBytes(value: number): number {
  let bytes = 1;
  for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) bytes++;
  return bytes;
}

/**
 * What one node adds to an encoded Snapshot: its field tag, its length and the node itself.
 * The snapshot's nodes take exactly the sum of these, so the registry keeps a running total instead
 * of encoding the whole list on every join.
 */
export function nodeEntryBytes(node: Node): number {
  const length = Node.encode(node).finish().length;
  return 1 + varintBytes(length) + length;
}

/**
 * The most a response adds around the nodes of a snapshot holding `snapshotBytes` in all, with the
 * longest node id and instance id and the largest revision a JavaScript number holds. The largest of
 * the framings: a first-contract RegisterResponse { node_id, snapshot }, and an update
 * (RegisterResponse or WatchResponse { update { instance_id, revision, snapshot } }), whose two
 * length prefixes both widen with the list.
 */
export function responseEnvelopeBytes(maxNodeIdLength: number, snapshotBytes: number): number {
  const instanceId = 'i'.repeat(MAX_INSTANCE_ID_LENGTH);
  const revision = Number.MAX_SAFE_INTEGER;
  const snapshot = { revision, nodes: [], instanceId };
  const legacy = RegisterResponse.encode({
    nodeId: 'x'.repeat(maxNodeIdLength),
    snapshot,
    update: undefined,
    ack: undefined,
  }).finish().length;
  const update = RegisterResponse.encode({
    nodeId: '',
    snapshot: undefined,
    update: { instanceId, revision, change: { $case: 'snapshot', value: snapshot } },
    ack: undefined,
  }).finish().length;
  // An empty snapshot's length fits one byte; a full one's takes varintBytes(snapshotBytes).
  const wide = varintBytes(snapshotBytes) - 1;
  return Math.max(legacy + wide, update + 2 * wide);
}
