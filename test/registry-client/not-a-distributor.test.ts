import { credentials, Server, ServerCredentials, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { capturingLogger } from '../distributor/support/capturing-logger.js';
import { goodsNode } from '../helpers/nodes.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a registration sent to a gRPC server that is not the distributor', () => {
  it('gives up saying that the address is not the distributor, naming the setting to check', async () => {
    // A gRPC server without the registry, as a service's port given as --distributor is.
    const server = new Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    cleanups.push(() => server.forceShutdown());
    const { log, lines } = capturingLogger();
    const address = `127.0.0.1:${port}`;
    const registration = new RegistrationClient({
      distributor: address,
      node: goodsNode(),
      backoff: { initialMs: 20, maxMs: 200 },
      credentials: credentials.createInsecure(),
      log,
    });
    cleanups.push(() => registration.stop(200));
    const refused = vi.fn();
    registration.on('refused', refused);
    registration.start();
    await vi.waitFor(() => expect(refused).toHaveBeenCalledTimes(1));
    expect(refused.mock.calls[0]![0]).toMatchObject({ code: status.UNIMPLEMENTED });
    const refusal = lines.find((line) => line.event === 'refused');
    expect(refusal?.msg).toMatch(/^the distributor refused this node \(UNIMPLEMENTED: /);
    expect(refusal?.msg).toContain(
      `; retrying cannot change that, so registration stops here — ${address} is not the distributor's gRPC port ` +
        '(a gRPC or HTTP/2 server without the registry answered): check --distributor (DISTRIBUTOR_ADDRESS)',
    );
  });
});
