import type { FileDescriptorSet } from '@bufbuild/protobuf/wkt';
import type { Server } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { encodeFiles, filesForServices, loadShopDescriptorSet } from './descriptors.js';
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
  const files = encodeFiles([...byName.values()]);
  // The argument stands for a proto-loader package definition: only `fileDescriptorProtos` is read.
  const packageDefinition = { shop: { fileDescriptorProtos: files } };
  const reflection = new ReflectionService(packageDefinition as never, { services });
  withoutInheritedNames(reflection);
  reflection.addToServer(strictServer(server));
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
