import type { DescriptorProto, FileDescriptorProto, FileDescriptorSet } from '@bufbuild/protobuf/wkt';
import type {
  Server,
  ServerDuplexStream,
  ServiceDefinition,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { encodeFiles, filesForServices, loadShopDescriptorSet } from './descriptors.js';
import { wrapHandlers } from './service-handlers.js';
import { strictServer } from './strict-requests.js';

/** The standard health service every server of the shop serves. */
export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/**
 * Serves gRPC server reflection, v1 and v1alpha, for the given services and the standard health
 * service, so that stock grpcurl can list, describe and call them. The services' files come from
 * `descriptors` (default: the shop's), the health service's from the shop's.
 *
 * @grpc/reflection is fed the exact files `buf build` made, with their whole import closure and
 * comments: descriptors rebuilt by @grpc/proto-loader merge each package into one file, drop its
 * imports and use relative type names, and strict clients then fail to resolve them.
 */
export function addReflection(
  server: Server,
  serviceNames: readonly string[],
  descriptors?: FileDescriptorSet,
): void {
  const services = [...serviceNames, HEALTH_SERVICE];
  const shop = loadShopDescriptorSet();
  const own = descriptors ? filesForServices(descriptors, serviceNames) : [];
  const shared = filesForServices(shop, descriptors ? [HEALTH_SERVICE] : services);
  // One file per name, dependencies first: a name both sets hold (a google/protobuf import) once.
  const byName = new Map([...shared, ...own].map((file) => [file.name, file]));
  const served = [...byName.values()];
  const files = encodeFiles(served);
  // The argument stands for a proto-loader package definition: only `fileDescriptorProtos` is read.
  const packageDefinition = { shop: { fileDescriptorProtos: files } };
  const reflection = new ReflectionService(packageDefinition as never, { services });
  extensionsByClientTypeName(reflection, messageTypeNames(served));
  withoutInheritedNames(reflection);
  reflection.addToServer(strictServer(readingAsAnswersLeave(server)));
}

/**
 * The server as @grpc/reflection adds its service to it, each ServerReflectionInfo call read only
 * while its answers leave. The library answers every request as it comes and never waits for its
 * writes (an answer holds a service's files: some 18 KB from a request of 27 bytes), so a client
 * that took no answer and sent requests had the server read them all and hold an answer for each
 * until the unread-answer timeout (80 MB for 5 MB of requests, in 30 s of a fast link far more).
 * Paused while its answers wait, the call leaves the requests to HTTP/2's flow control, in the client.
 */
function readingAsAnswersLeave(server: Pick<Server, 'addService'>): Pick<Server, 'addService'> {
  return {
    addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation): void {
      server.addService(
        definition,
        wrapHandlers(definition, implementation, (handler, method) =>
          method.requestStream && method.responseStream ? pausedWhileAnswersWait(handler) : undefined,
        ),
      );
    },
  };
}

function pausedWhileAnswersWait(handler: UntypedHandleCall): UntypedHandleCall {
  return ((call: ServerDuplexStream<unknown, unknown>) => {
    const write = call.write.bind(call) as (...args: unknown[]) => boolean;
    call.write = ((...args: unknown[]) => {
      const room = write(...args);
      if (!room && !call.isPaused()) {
        call.pause();
        call.once('drain', () => call.resume());
      }
      return room;
    }) as typeof call.write;
    (handler as (call: unknown) => void)(call);
  }) as UntypedHandleCall;
}

/**
 * Keys @grpc/reflection's index of extensions by the extended type's name as clients ask for it.
 * The library keys it by each extension's `extendee` as the descriptor holds it, fully qualified
 * with a leading dot (".google.protobuf.MethodOptions"), while grpcurl and every other reflection
 * client send "<package>.<type>" (reflection.proto), so all_extension_numbers_of_type and
 * file_containing_extension were NOT_FOUND for every type: a client could not learn the
 * google.api.http option that every method of the shop carries. A message type it serves that
 * nothing extends answers an empty list, as grpc-go's reflection does, rather than NOT_FOUND:
 * grpcurl asks for the extensions of every options type a descriptor holds (FeatureSet,
 * ServiceOptions...) and gives up on all of them at the first error.
 */
function extensionsByClientTypeName(reflection: ReflectionService, messageTypes: readonly string[]): void {
  const { v1, v1Alpha } = reflection as unknown as Record<string, Record<string, unknown> | undefined>;
  for (const implementation of [v1, v1Alpha]) {
    const index = implementation?.extensions;
    // A library version that keeps them otherwise (in a Map, say) is left as it is.
    if (!implementation || index === null || typeof index !== 'object' || index instanceof Map) continue;
    const byTypeName: Record<string, Record<string, unknown>> = Object.create(null);
    for (const typeName of messageTypes) byTypeName[typeName] = {};
    for (const [typeName, byNumber] of Object.entries(index as Record<string, Record<string, unknown>>)) {
      const asAsked = typeName.replace(/^\./, '');
      byTypeName[asAsked] = { ...byTypeName[asAsked], ...byNumber };
      // The form the library answered before, kept for a client that asks with it.
      byTypeName[typeName] = byTypeName[asAsked];
    }
    implementation.extensions = byTypeName;
  }
}

/** The fully qualified names (no leading dot) of every message type the files declare, nested ones too. */
function messageTypeNames(files: readonly FileDescriptorProto[]): string[] {
  const names: string[] = [];
  const visit = (scope: string, messages: readonly DescriptorProto[]): void => {
    for (const message of messages) {
      const name = scope ? `${scope}.${message.name}` : message.name;
      names.push(name);
      visit(name, message.nestedType);
    }
  };
  for (const file of files) visit(file.package, file.messageType);
  return names;
}

/** The indexes by name that @grpc/reflection's implementations (v1 and v1alpha) look names up in. */
const NAME_INDEXES = ['files', 'symbols', 'extensions', 'services'] as const;

/**
 * Makes @grpc/reflection's indexes by name plain dictionaries. They are object literals, so a name
 * asked for that is a member of Object.prototype (`constructor`, `toString`, `__proto__`...) was
 * found in them: a file_containing_symbol or file_by_filename for it was answered with one empty
 * file descriptor instead of NOT_FOUND, and all_extension_numbers_of_type with an empty list.
 */
function withoutInheritedNames(reflection: ReflectionService): void {
  const { v1, v1Alpha } = reflection as unknown as Record<string, Record<string, unknown> | undefined>;
  for (const implementation of [v1, v1Alpha]) {
    for (const name of NAME_INDEXES) {
      const index = implementation?.[name];
      // A library version that keeps them otherwise (in Maps, say) is left as it is.
      if (index !== null && typeof index === 'object' && Object.getPrototypeOf(index) === Object.prototype) {
        Object.setPrototypeOf(index, null);
      }
    }
  }
}
