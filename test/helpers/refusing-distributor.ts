import { Server, ServerCredentials, type ServerDuplexStream, type ServerWritableStream } from '@grpc/grpc-js';
import type {
  DistributorServiceServer,
  RegisterRequest,
  RegisterResponse,
  WatchRequest,
  WatchResponse,
} from '../../src/gen/distributor.js';
import { DistributorServiceService } from '../../src/gen/distributor.js';

/** A stand-in distributor that ends every Register and Watch at once with one refusal, and no proof. */
export interface RefusingDistributor {
  readonly address: string;
  readonly port: number;
  /** The Register and Watch calls it has refused so far. */
  readonly calls: number;
  stop(): void;
}

/**
 * Starts a {@link RefusingDistributor} on 127.0.0.1: a distributor older than the proofs (asking for
 * the bearer), or a process holding the distributor's port, as the component sees either.
 */
export async function startRefusingDistributor(
  refusal: { code: number; details: string },
  credentials: ServerCredentials = ServerCredentials.createInsecure(),
): Promise<RefusingDistributor> {
  const server = new Server();
  let calls = 0;
  const refuse = (
    call:
      | ServerDuplexStream<RegisterRequest, RegisterResponse>
      | ServerWritableStream<WatchRequest, WatchResponse>,
  ): void => {
    calls++;
    call.on('error', () => {});
    call.emit('error', refusal);
  };
  server.addService(DistributorServiceService, {
    register: refuse,
    watch: refuse,
  } as unknown as DistributorServiceServer);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    address: `127.0.0.1:${port}`,
    port,
    get calls() {
      return calls;
    },
    stop: () => server.forceShutdown(),
  };
}
