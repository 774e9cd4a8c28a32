import {
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientUnaryCall,
  credentials,
  Metadata as GrpcMetadata,
  type Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { expect, vi } from 'vitest';
import type { ServiceServer } from '../../../src/services/common/service-server.js';
import { checkHealth } from '../../helpers/grpc-clients.js';

/** A service listening on 127.0.0.1 with a port the OS chose, and a client connected to it. */
export interface TestServer<C extends Client> {
  readonly address: string;
  readonly server: ServiceServer;
  readonly client: C;
  /** Closes the client and stops the server (the store is left to its owner). */
  close(): Promise<void>;
}

/**
 * Starts a built server on 127.0.0.1:0 and, unless told otherwise, waits until its health says
 * SERVING (its first database probe succeeded).
 */
export async function startTestServer<C extends Client>(
  server: ServiceServer,
  ClientClass: new (address: string, credentials: ChannelCredentials) => C,
  { waitUntilServing = true }: { waitUntilServing?: boolean } = {},
): Promise<TestServer<C>> {
  const port = await server.listen('127.0.0.1', 0);
  const address = `127.0.0.1:${port}`;
  const client = new ClientClass(address, credentials.createInsecure());
  if (waitUntilServing) await waitForHealth(address, 'SERVING');
  return {
    address,
    server,
    client,
    async close() {
      client.close();
      await server.stop(1_000);
    },
  };
}

/** Waits until health reports `expected` (vi.waitFor polls; a Watch stream would outlive the test). */
export async function waitForHealth(address: string, expected: string, timeoutMs = 10_000): Promise<void> {
  await vi.waitFor(async () => expect(await checkHealth(address)).toBe(expected), {
    timeout: timeoutMs,
    interval: 25,
  });
}

/** A generated client method, in its fullest overload. */
type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Response) => void,
) => ClientUnaryCall;

/** Calls a unary method with a deadline and resolves with its response or rejects with its status. */
export function call<Request, Response>(
  client: Client,
  method: UnaryMethod<Request, Response>,
  request: Request,
  deadlineMs = 10_000,
  metadata: Metadata = new GrpcMetadata(),
): Promise<Response> {
  return new Promise((resolve, reject) => {
    method.call(client, request, metadata, { deadline: Date.now() + deadlineMs }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/** {@link call} with `idempotency-key` metadata (each value given is sent, in order). */
export function callWithKey<Request, Response>(
  client: Client,
  method: UnaryMethod<Request, Response>,
  request: Request,
  ...keys: string[]
): Promise<Response> {
  const metadata = new GrpcMetadata();
  for (const key of keys) metadata.add('idempotency-key', key);
  return call(client, method, request, 10_000, metadata);
}
