import { createRequire } from 'node:module';
import { create, createFileRegistry, type FileRegistry, fromBinary } from '@bufbuild/protobuf';
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from '@bufbuild/protobuf/wkt';
import {
  type ChannelCredentials,
  type ChannelOptions,
  credentials,
  type GrpcObject,
  loadPackageDefinition,
  type ServiceClientConstructor,
  type StatusObject,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

const require = createRequire(import.meta.url);

function loadService(protoFile: string, servicePath: string[]): ServiceClientConstructor {
  const loaded = loadPackageDefinition(
    loadSync(protoFile, { keepCase: true, longs: String, enums: String, defaults: true }),
  );
  let node: unknown = loaded;
  for (const part of servicePath) node = (node as GrpcObject)[part];
  return node as ServiceClientConstructor;
}

/** What a stock reflection client (like grpcurl) learns from a server. */
export interface ReflectedSchema {
  /** The services the server lists. */
  services: string[];
  /** Every file fetched, resolved together: building it fails if any import is missing. */
  registry: FileRegistry;
}

/**
 * Asks a server's reflection service, as grpcurl does: list the services, fetch the file of each
 * service, then fetch every imported file by name until nothing is missing.
 */
export async function reflect(
  address: string,
  version: 'v1' | 'v1alpha' = 'v1',
  channelCredentials: ChannelCredentials = credentials.createInsecure(),
  channelOptions: ChannelOptions = {},
): Promise<ReflectedSchema> {
  const protoFile = require.resolve(
    `@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`,
  );
  const Client = loadService(protoFile, ['grpc', 'reflection', version, 'ServerReflection']);
  const client = new Client(address, channelCredentials, channelOptions);
  const stream = client.ServerReflectionInfo({ deadline: Date.now() + 10_000 });
  const replies: Array<(message: Record<string, unknown>) => void> = [];
  const failures: Array<(error: Error) => void> = [];
  stream.on('data', (message: Record<string, unknown>) => replies.shift()?.(message));
  stream.on('error', (error: Error) => {
    for (const fail of failures) fail(error);
  });
  const ask = (request: Record<string, unknown>): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      replies.push(resolve);
      failures.push(reject);
      stream.write(request);
    });
  try {
    const listed = await ask({ list_services: '' });
    const services = (
      (listed.list_services_response as { service: Array<{ name: string }> } | undefined)?.service ?? []
    ).map((service) => service.name);
    const files = new Map<string, FileDescriptorProto>();
    const absorb = (reply: Record<string, unknown>): void => {
      const error = reply.error_response as { error_message: string } | undefined;
      if (error) throw new Error(`reflection error: ${error.error_message}`);
      const encoded = (reply.file_descriptor_response as { file_descriptor_proto: Buffer[] })
        .file_descriptor_proto;
      for (const bytes of encoded) {
        const file = fromBinary(FileDescriptorProtoSchema, bytes);
        files.set(file.name, file);
      }
    };
    for (const service of services.filter((name) => !name.startsWith('grpc.reflection.'))) {
      absorb(await ask({ file_containing_symbol: service }));
    }
    for (let missing = missingImports(files); missing.length > 0; missing = missingImports(files)) {
      for (const name of missing) absorb(await ask({ file_by_filename: name }));
    }
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: dependenciesFirst(files) }));
    return { services, registry };
  } finally {
    stream.end();
    client.close();
  }
}

function dependenciesFirst(files: Map<string, FileDescriptorProto>): FileDescriptorProto[] {
  const ordered: FileDescriptorProto[] = [];
  const visit = (file: FileDescriptorProto | undefined): void => {
    if (!file || ordered.includes(file)) return;
    for (const dependency of file.dependency) visit(files.get(dependency));
    ordered.push(file);
  };
  for (const file of files.values()) visit(file);
  return ordered;
}

function missingImports(files: Map<string, FileDescriptorProto>): string[] {
  const missing = new Set<string>();
  for (const file of files.values()) {
    for (const dependency of file.dependency) if (!files.has(dependency)) missing.add(dependency);
  }
  return [...missing];
}

/** Calls grpc.health.v1.Health/Check and resolves with the status name, e.g. "SERVING". */
export async function checkHealth(address: string, service = ''): Promise<string> {
  const Client = loadService(healthProtoPath, ['grpc', 'health', 'v1', 'Health']);
  const client = new Client(address, credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) => {
      client.Check(
        { service },
        { deadline: Date.now() + 5_000 },
        (error: Error | null, reply: { status: string }) => (error ? reject(error) : resolve(reply.status)),
      );
    });
  } finally {
    client.close();
  }
}

/**
 * A health Watch call on `service`, as a load balancer or a channel with health checking keeps one:
 * the statuses it received, in order, and how it ended.
 */
export function watchHealth(address: string, service = '') {
  const Client = loadService(healthProtoPath, ['grpc', 'health', 'v1', 'Health']);
  const client = new Client(address, credentials.createInsecure());
  const call = client.Watch({ service });
  const statuses: string[] = [];
  call.on('data', (reply: { status: string }) => statuses.push(reply.status));
  call.on('error', () => {});
  const ended = new Promise<StatusObject>((resolve) => call.once('status', resolve));
  return {
    statuses,
    ended,
    close(): void {
      call.cancel();
      client.close();
    },
  };
}
