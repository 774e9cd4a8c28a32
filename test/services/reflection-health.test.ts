import type { Client } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadShopDescriptorSet } from '../../src/common/descriptors.js';
import { GoodsServiceClient, MembersServiceClient, PurchasesServiceClient } from '../../src/gen/services.js';
import type { ServiceStore } from '../../src/services/common/service-store.js';
import type { ServiceSpec } from '../../src/services/common/start-service.js';
import { goodsSpec } from '../../src/services/goods/goods-spec.js';
import { membersSpec } from '../../src/services/members/members-spec.js';
import { purchasesSpec } from '../../src/services/purchases/purchases-spec.js';
import { checkHealth, reflect } from '../helpers/grpc-clients.js';
import { backendsOf, type OpenedStore } from './support/backends.js';
import { startTestServer, type TestServer } from './support/test-server.js';

const SERVICES = [
  {
    spec: goodsSpec as ServiceSpec<ServiceStore>,
    Client: GoodsServiceClient as new (...args: never[]) => Client,
  },
  {
    spec: membersSpec as ServiceSpec<ServiceStore>,
    Client: MembersServiceClient as new (...args: never[]) => Client,
  },
  {
    spec: purchasesSpec as ServiceSpec<ServiceStore>,
    Client: PurchasesServiceClient as new (...args: never[]) => Client,
  },
];

describe.each(SERVICES)('$spec.serviceName', ({ spec, Client }) => {
  let opened: OpenedStore<ServiceStore> | undefined;
  let service: TestServer<Client> | undefined;

  afterEach(async () => {
    await service?.close();
    await opened?.dispose();
  });

  async function start(): Promise<TestServer<Client>> {
    opened = await backendsOf(spec)[0]!.open();
    service = await startTestServer(spec.createServer({ store: opened.store }), Client as never);
    return service;
  }

  it.each(['v1', 'v1alpha'] as const)(
    'reflection %s lists the service and health, and resolves every method type',
    async (version) => {
      const { address } = await start();
      const { services, registry } = await reflect(address, version);
      expect(services).toEqual(expect.arrayContaining([spec.serviceName, 'grpc.health.v1.Health']));
      const described = registry.getService(spec.serviceName);
      expect(described?.methods.map((method) => method.name).sort()).toEqual(
        loadShopDescriptorSet()
          .file.flatMap((file) => file.service)
          .find((service) => `shop.v1.${service.name}` === spec.serviceName)!
          .method.map((method) => method.name)
          .sort(),
      );
      for (const method of described!.methods) {
        expect(registry.getMessage(method.input.typeName)).toBeDefined();
        expect(registry.getMessage(method.output.typeName)).toBeDefined();
      }
      // services.proto imports google/protobuf/timestamp.proto: it must come with it.
      expect(registry.getMessage('google.protobuf.Timestamp')?.fields.map((field) => field.name)).toEqual([
        'seconds',
        'nanos',
      ]);
      expect(registry.getService('grpc.health.v1.Health')?.methods.map((method) => method.name)).toEqual(
        expect.arrayContaining(['Check', 'Watch']),
      );
    },
  );

  it('health says SERVING for the server and for the service, and NOT_SERVING once draining', async () => {
    const { address, server } = await start();
    expect(await checkHealth(address)).toBe('SERVING');
    expect(await checkHealth(address, spec.serviceName)).toBe('SERVING');
    server.drain();
    expect(await checkHealth(address)).toBe('NOT_SERVING');
    expect(await checkHealth(address, spec.serviceName)).toBe('NOT_SERVING');
  });
});
