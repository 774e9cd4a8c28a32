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
  new ReflectionService(packageDefinition as never, { services }).addToServer(strictServer(server));
}
