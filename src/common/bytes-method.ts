import type { MethodDefinition } from '@grpc/grpc-js';

/** The (de)serializer of a message that is already bytes, or stays bytes. */
export const asIs = (bytes: Buffer): Buffer => bytes;

/**
 * A unary (or server-streaming) gRPC method whose messages stay bytes both ways: for the benchmark's
 * sinks and probes, and tests, which speak no schema or send hand-made protobuf.
 */
export function bytesMethod(path: string, responseStream = false): MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: false,
    responseStream,
    requestSerialize: asIs,
    requestDeserialize: asIs,
    responseSerialize: asIs,
    responseDeserialize: asIs,
  };
}
