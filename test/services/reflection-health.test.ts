import { createRequire } from 'node:module';
import {
  type Client,
  credentials,
  type GrpcObject,
  loadPackageDefinition,
  makeGenericClientConstructor,
  type ServiceClientConstructor,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AnyShopService } from '../../src/services/common/define-service.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import type { ServiceStore } from '../../src/services/common/service-store.js';
import { SHOP_SERVICES } from '../../src/services/service-list.js';
import { checkHealth, reflect, watchHealth } from '../helpers/grpc-clients.js';
import { captureLog } from '../helpers/log-capture.js';
import { backendsOf, type OpenedStore } from './support/backends.js';
import { startTestServer, type TestServer } from './support/test-server.js';

const SERVICES: readonly AnyShopService[] = SHOP_SERVICES;

describe.each(SERVICES.map((service) => ({ service })))('$service.grpc.name', ({ service }) => {
  const serviceName = service.grpc.name;
  const methodNames = Object.values(service.grpc.definition).map(({ path }) => path.split('/')[2]);
  let opened: OpenedStore<ServiceStore> | undefined;
  let running: TestServer<Client> | undefined;

  afterEach(async () => {
    await running?.close();
    await opened?.dispose();
  });

  async function start(log?: ReturnType<typeof captureLog>['log']): Promise<TestServer<Client>> {
    opened = await backendsOf(service)[0]!.open();
    const Client = makeGenericClientConstructor(service.grpc.definition, service.name);
    running = await startTestServer(
      createServiceServer(service, { store: opened.store, ...(log ? { log } : {}) }),
      Client,
    );
    return running;
  }

  it.each(['v1', 'v1alpha'] as const)(
    'reflection %s lists the service and health, and resolves every method type',
    async (version) => {
      const { address } = await start();
      const { services, registry } = await reflect(address, version);
      expect(services).toEqual(expect.arrayContaining([serviceName, 'grpc.health.v1.Health']));
      const described = registry.getService(serviceName);
      expect(described?.methods.map((method) => method.name).sort()).toEqual(methodNames.sort());
      for (const method of described!.methods) {
        expect(registry.getMessage(method.input.typeName)).toBeDefined();
        expect(registry.getMessage(method.output.typeName)).toBeDefined();
      }
      // Every file the service's file imports must come with it: services.proto's
      // google/protobuf/timestamp.proto among them.
      const imports = described!.file.proto.dependency;
      for (const name of imports) expect(registry.getFile(name), name).toBeDefined();
      if (imports.includes('google/protobuf/timestamp.proto')) {
        expect(registry.getMessage('google.protobuf.Timestamp')?.fields.map((field) => field.name)).toEqual([
          'seconds',
          'nanos',
        ]);
      }
      expect(registry.getService('grpc.health.v1.Health')?.methods.map((method) => method.name)).toEqual(
        expect.arrayContaining(['Check', 'Watch']),
      );
    },
  );

  it.each(['v1', 'v1alpha'] as const)(
    'reflection %s answers NOT_FOUND for names that are members of a plain object (constructor, toString, __proto__)',
    async (version) => {
      const { address } = await start();
      const answers = await askReflection(address, version, [
        { file_containing_symbol: 'constructor' },
        { file_containing_symbol: '__proto__' },
        { file_containing_symbol: 'hasOwnProperty' },
        { file_by_filename: 'toString' },
        { file_by_filename: '__proto__' },
        { all_extension_numbers_of_type: 'constructor' },
        { file_containing_symbol: serviceName },
      ]);
      const codes = answers.map(
        (answer) => (answer.error_response as { error_code: number } | undefined)?.error_code ?? status.OK,
      );
      expect(codes).toEqual([...Array(6).fill(status.NOT_FOUND), status.OK]);
    },
  );

  it.each(['v1', 'v1alpha'] as const)(
    'reflection %s finds the extensions of a type named as clients name it (no leading dot)',
    async (version) => {
      const { address } = await start();
      // Every method carries (google.api.http), field 72295728 of google.protobuf.MethodOptions;
      // grpcurl asks for the extensions of a type by "<package>.<type>", as reflection.proto says.
      const [numbers, file, none, unknown, dotted] = await askReflection(address, version, [
        { all_extension_numbers_of_type: 'google.protobuf.MethodOptions' },
        {
          file_containing_extension: {
            containing_type: 'google.protobuf.MethodOptions',
            extension_number: 72295728,
          },
        },
        // A type served that nothing extends: an empty list, as grpc-go answers, since grpcurl
        // gives up on every option at the first error; a type it does not know: NOT_FOUND.
        { all_extension_numbers_of_type: 'google.protobuf.FieldOptions' },
        { all_extension_numbers_of_type: 'no.such.Type' },
        // The form the library answered before, still answered for a client that sends it.
        { all_extension_numbers_of_type: '.google.protobuf.MethodOptions' },
      ]);
      expect(numbers?.all_extension_numbers_response).toEqual({
        base_type_name: 'google.protobuf.MethodOptions',
        extension_number: expect.arrayContaining([72295728]),
      });
      const files = (file?.file_descriptor_response as { file_descriptor_proto: Buffer[] } | undefined)
        ?.file_descriptor_proto;
      expect(files?.[0]?.includes('google/api/annotations.proto')).toBe(true);
      // An empty repeated field is not on the wire, so it arrives absent.
      const noExtensions = none?.all_extension_numbers_response as
        | { base_type_name: string; extension_number?: number[] }
        | undefined;
      expect(noExtensions?.base_type_name).toBe('google.protobuf.FieldOptions');
      expect(noExtensions?.extension_number ?? []).toEqual([]);
      expect((unknown?.error_response as { error_code: number } | undefined)?.error_code).toBe(
        status.NOT_FOUND,
      );
      expect(dotted?.all_extension_numbers_response).toMatchObject({
        extension_number: expect.arrayContaining([72295728]),
      });
    },
  );

  it('health says SERVING for the server and for the service, and NOT_SERVING once draining', async () => {
    const { address, server } = await start();
    expect(await checkHealth(address)).toBe('SERVING');
    expect(await checkHealth(address, serviceName)).toBe('SERVING');
    server.drain();
    expect(await checkHealth(address)).toBe('NOT_SERVING');
    expect(await checkHealth(address, serviceName)).toBe('NOT_SERVING');
  });

  it('logs each health change without a `status` field: that one is the HTTP status, a number, on the gateway', async () => {
    const captured = captureLog(service.name);
    const { server } = await start(captured.log);
    server.drain();
    await vi.waitFor(() =>
      expect(
        captured.lines.filter((line) => line.event === 'health').map((line) => line.servingStatus),
      ).toEqual(['SERVING', 'NOT_SERVING']),
    );
    for (const line of captured.lines) expect(typeof (line.status ?? 0), JSON.stringify(line)).toBe('number');
  });

  it('ends health Watch calls when it stops, NOT_SERVING first, rather than wait its grace for them', async () => {
    const { address, server } = await start();
    const watchers = [watchHealth(address), watchHealth(address, serviceName)];
    try {
      await vi.waitFor(() => {
        for (const watcher of watchers) expect(watcher.statuses).toEqual(['SERVING']);
      });
      const begun = performance.now();
      await server.stop(5_000);
      expect(performance.now() - begun).toBeLessThan(2_000);
      for (const watcher of watchers) {
        expect(watcher.statuses).toEqual(['SERVING', 'NOT_SERVING']);
        expect((await watcher.ended).code).toBe(status.UNAVAILABLE);
      }
    } finally {
      for (const watcher of watchers) watcher.close();
    }
  });
});

const require = createRequire(import.meta.url);

/** Sends reflection requests on one stream, in order, and resolves with their answers. */
async function askReflection(
  address: string,
  version: 'v1' | 'v1alpha',
  requests: Record<string, unknown>[],
): Promise<Record<string, unknown>[]> {
  const protoFile = require.resolve(
    `@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`,
  );
  const loaded = loadPackageDefinition(loadSync(protoFile, { keepCase: true, defaults: false }));
  let node: unknown = loaded;
  for (const part of ['grpc', 'reflection', version, 'ServerReflection']) node = (node as GrpcObject)[part];
  const ServerReflection = node as ServiceClientConstructor;
  const client = new ServerReflection(address, credentials.createInsecure());
  try {
    const stream = client.ServerReflectionInfo({ deadline: Date.now() + 10_000 });
    const answers: Record<string, unknown>[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (answer: Record<string, unknown>) => answers.push(answer));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    for (const request of requests) stream.write(request);
    stream.end();
    await done;
    return answers;
  } finally {
    client.close();
  }
}
