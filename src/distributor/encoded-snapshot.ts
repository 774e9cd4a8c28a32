import { DistributorServiceService, Snapshot } from '../gen/distributor.js';

const asIs = (bytes: Buffer): Buffer => bytes;

/**
 * The distributor's methods with responses that are already bytes: an update or a snapshot is
 * encoded once and shared by every stream, instead of once per stream (grpc-js still frames each
 * message with a copy of its own), and a descriptor set's answer once per set.
 */
export const PRE_ENCODED_DISTRIBUTOR_SERVICE = {
  ...DistributorServiceService,
  register: { ...DistributorServiceService.register, responseSerialize: asIs },
  watch: { ...DistributorServiceService.watch, responseSerialize: asIs },
  getDescriptorSet: { ...DistributorServiceService.getDescriptorSet, responseSerialize: asIs },
} as const;

/**
 * Encodes the first contract's RegisterResponse and WatchResponse messages around one shared
 * encoding of a snapshot (for clients that subscribe without options; see NodeRegistry.legacySnapshot).
 */
export class SnapshotEncoder {
  #snapshot: Snapshot | undefined;
  #watchResponse: Buffer = Buffer.alloc(0);

  /** WatchResponse { snapshot = 1 }: the same buffer for every watcher of this revision. */
  watchResponse(snapshot: Snapshot): Buffer {
    this.#encode(snapshot);
    return this.#watchResponse;
  }

  /** RegisterResponse { node_id = 1, snapshot = 2 } for one registered node. */
  registerResponse(nodeId: string, snapshot: Snapshot): Buffer {
    const watchResponse = this.watchResponse(snapshot);
    const id = Buffer.from(nodeId, 'utf8');
    const header = Buffer.concat([Buffer.from([0x0a]), varint(id.length), id, Buffer.from([0x12])]);
    // The WatchResponse is the snapshot's field 1: the same length-delimited bytes under tag 2.
    return Buffer.concat([header, watchResponse.subarray(1)]);
  }

  #encode(snapshot: Snapshot): void {
    if (snapshot === this.#snapshot) return;
    const encoded = Snapshot.encode(snapshot).finish();
    this.#snapshot = snapshot;
    this.#watchResponse = Buffer.concat([Buffer.from([0x0a]), varint(encoded.length), encoded]);
  }
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}
