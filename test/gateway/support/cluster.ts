import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { vi } from 'vitest';
import { registrationDescriptorSet } from '../../../src/common/descriptors.js';
import {
  createDistributorServer,
  type DistributorServer,
} from '../../../src/distributor/distributor-server.js';
import { createGateway, type Gateway, type GatewayOptions } from '../../../src/gateway/gateway-server.js';
import { NodeState } from '../../../src/gen/distributor.js';
import { type GoodsServiceServer, GoodsServiceService } from '../../../src/gen/services.js';
import { RegistrationClient } from '../../../src/registry-client/registration-client.js';

/** Things to close after a test, in reverse order of creation. */
export class Closer {
  readonly #closers: (() => Promise<void> | void)[] = [];

  add<T>(value: T, close: (value: T) => Promise<void> | void): T {
    this.#closers.push(() => close(value));
    return value;
  }

  async closeAll(): Promise<void> {
    for (const close of this.#closers.splice(0).reverse()) await close();
  }
}

/** A distributor on 127.0.0.1, any port. */
export async function startDistributor(
  closer: Closer,
): Promise<{ server: DistributorServer; address: string }> {
  const server = closer.add(createDistributorServer(), (distributor) => distributor.stop(100));
  const port = await server.listen('127.0.0.1', 0);
  return { server, address: `127.0.0.1:${port}` };
}

/** A gateway on 127.0.0.1, any port, that has received its first snapshot. */
export async function startGateway(
  closer: Closer,
  distributor: string,
  options: Partial<GatewayOptions> = {},
): Promise<{ gateway: Gateway; port: number }> {
  const gateway = closer.add(
    createGateway({ distributor, registrationBackoff: { initialMs: 20, maxMs: 200 }, ...options }),
    (started) => started.stop(),
  );
  const port = await gateway.listen('127.0.0.1', 0);
  return { gateway, port };
}

/** Waits until the gateway lists `METHOD /path` with this many serving and draining instances. */
export async function waitForRoute(
  gateway: Gateway,
  route: string,
  serving: number,
  draining = 0,
): Promise<void> {
  await vi.waitFor(
    () => {
      const info = gateway.routes().find((candidate) => `${candidate.method} ${candidate.path}` === route);
      if (!info || info.serving.length !== serving || info.draining.length !== draining) {
        throw new Error(`${route}: ${JSON.stringify(info)}`);
      }
    },
    { timeout: 5_000, interval: 5 },
  );
}

/** A gRPC server of a test, registered with the distributor like a real service. */
export interface TestService {
  readonly port: number;
  readonly server: Server;
  readonly registration: RegistrationClient;
  /** Says DRAINING to the distributor. */
  drain(): void;
  /** Leaves the registry and stops the server, as a service stopping cleanly does. */
  stop(): Promise<void>;
}

export interface TestServiceOptions {
  distributor: string;
  name: string;
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
  /** The services it serves, with their google.api.http options: its REST routes. */
  descriptorSet: Uint8Array;
  /** Its gRPC server's credentials; plaintext by default (it registers in plaintext either way). */
  credentials?: ServerCredentials;
}

export async function startService(closer: Closer, options: TestServiceOptions): Promise<TestService> {
  const server = new Server();
  server.addService(options.definition, options.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      options.credentials ?? ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    ),
  );
  const registration = new RegistrationClient({
    distributor: options.distributor,
    node: {
      name: options.name,
      host: '127.0.0.1',
      port,
      routes: [],
      descriptorSet: Buffer.from(options.descriptorSet),
      state: NodeState.NODE_STATE_SERVING,
    },
    backoff: { initialMs: 20, maxMs: 200 },
  });
  const registered = new Promise<void>((resolve) => registration.once('registered', () => resolve()));
  registration.start();
  await registered;
  let stopped = false;
  const service: TestService = {
    port,
    server,
    registration,
    drain: () => registration.setState(NodeState.NODE_STATE_DRAINING),
    async stop() {
      if (stopped) return;
      stopped = true;
      await registration.stop(500);
      server.forceShutdown();
    },
  };
  closer.add(service, (started) => started.stop());
  return service;
}

/**
 * A TCP proxy to a host:port that a test can cut, to lose a peer without it saying goodbye: `cut`
 * for good, or `blip` every connection of the moment while it keeps listening (every client loses
 * the target at once, as at a network blip or a frozen process thawed, and may connect again).
 */
export async function startCuttableProxy(
  closer: Closer,
  target: string,
): Promise<{ address: string; cut(): void; blip(): void }> {
  const { createServer, connect } = await import('node:net');
  const [host, port] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ];
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((incoming) => {
    const outgoing = connect(port, host);
    for (const socket of [incoming, outgoing]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        incoming.destroy();
        outgoing.destroy();
      });
    }
    incoming.pipe(outgoing).pipe(incoming);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cut = (): void => {
    server.close();
    for (const socket of sockets) socket.destroy();
  };
  closer.add(server, cut);
  const address = server.address();
  return {
    address: `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    cut,
    blip: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * A goods service made by the test (any of GoodsService's methods), registered as `goods` with the
 * shop's GoodsService descriptors, so that the gateway routes the book's goods paths to it.
 */
export function startGoodsService(
  closer: Closer,
  distributor: string,
  implementation: Partial<GoodsServiceServer>,
  credentials?: ServerCredentials,
  descriptorSet: Buffer = registrationDescriptorSet(['shop.v1.GoodsService']),
): Promise<TestService> {
  return startService(closer, {
    distributor,
    name: 'goods',
    definition: GoodsServiceService,
    implementation: implementation as UntypedServiceImplementation,
    descriptorSet,
    ...(credentials ? { credentials } : {}),
  });
}
