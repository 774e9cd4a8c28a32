import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { asIs } from '../common/bytes-method.js';
import { DistributorServiceService, Snapshot } from '../gen/distributor.js';
import { finishedBuffer, tag } from './update-encoding.js';

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
  #encoded: Uint8Array = new Uint8Array(0);
  #watchResponse: Buffer = Buffer.alloc(0);

  /** WatchResponse { snapshot = 1 }: the same buffer for every watcher of this revision. */
  watchResponse(snapshot: Snapshot): Buffer {
    this.#encode(snapshot);
    return this.#watchResponse;
  }

  /** RegisterResponse { node_id = 1, snapshot = 2 } for one registered node. */
  registerResponse(nodeId: string, snapshot: Snapshot): Buffer {
    this.#encode(snapshot);
    return finishedBuffer(
      new BinaryWriter()
        .uint32(tag(1, WireType.LengthDelimited))
        .string(nodeId)
        .uint32(tag(2, WireType.LengthDelimited))
        .bytes(this.#encoded),
    );
  }

  #encode(snapshot: Snapshot): void {
    if (snapshot === this.#snapshot) return;
    this.#snapshot = snapshot;
    this.#encoded = Snapshot.encode(snapshot).finish();
    this.#watchResponse = finishedBuffer(
      new BinaryWriter().uint32(tag(1, WireType.LengthDelimited)).bytes(this.#encoded),
    );
  }
}
