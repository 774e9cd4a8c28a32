import { Node, RegisterResponse } from '../gen/distributor.js';

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
 * The most a response adds around the nodes of a snapshot holding `snapshotBytes` in all: a
 * RegisterResponse (the largest of the three) with the longest node id, the largest revision a
 * JavaScript number holds, and the snapshot's length prefix at its widest.
 */
export function responseEnvelopeBytes(maxNodeIdLength: number, snapshotBytes: number): number {
  const empty: RegisterResponse = {
    nodeId: 'x'.repeat(maxNodeIdLength),
    snapshot: { revision: Number.MAX_SAFE_INTEGER, nodes: [] },
  };
  // The empty snapshot's length fits one byte; a full one's takes varintBytes(snapshotBytes).
  return RegisterResponse.encode(empty).finish().length - 1 + varintBytes(snapshotBytes);
}
