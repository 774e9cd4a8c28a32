import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  type FileDescriptorSet,
  FileDescriptorSetSchema,
} from '@bufbuild/protobuf/wkt';
import { fileDescriptorSetBase64 } from '../gen/descriptors.js';

/** Decodes the FileDescriptorSet `buf build` made of proto/ (see scripts/embed-descriptors.mjs). */
export function loadShopDescriptorSet(): FileDescriptorSet {
  return fromBinary(FileDescriptorSetSchema, Buffer.from(fileDescriptorSetBase64, 'base64'));
}

/**
 * The files that define the given fully qualified services, with every file they import, directly
 * or not, dependencies first: what a reflection client or a transcoding gateway needs to resolve
 * every type of those services (google.protobuf.Timestamp included).
 */
export function filesForServices(
  set: FileDescriptorSet,
  serviceNames: readonly string[],
): FileDescriptorProto[] {
  const byName = new Map(set.file.map((file) => [file.name, file]));
  const wanted = new Set(serviceNames);
  const ordered: FileDescriptorProto[] = [];
  const seen = new Set<string>();
  const visit = (file: FileDescriptorProto): void => {
    if (seen.has(file.name)) return;
    seen.add(file.name);
    for (const dependency of file.dependency) {
      const imported = byName.get(dependency);
      if (!imported) throw new Error(`descriptor set lacks ${dependency}, imported by ${file.name}`);
      visit(imported);
    }
    ordered.push(file);
  };
  for (const file of set.file) {
    for (const service of file.service) {
      const fullName = file.package ? `${file.package}.${service.name}` : service.name;
      if (wanted.delete(fullName)) visit(file);
    }
  }
  if (wanted.size > 0) throw new Error(`descriptor set lacks service(s): ${[...wanted].join(', ')}`);
  return ordered;
}

/**
 * The descriptor set a node registers for the services it serves: {@link filesForServices}, with two
 * cuts, because a gateway reads every service of the set as served by the node (its routes come
 * from their google.api.http options) and every node's set travels in every node list:
 *
 * - a file keeps only the named services (services.proto defines all three shop services; a goods
 *   node serves one); its messages all stay, since a pruned file must still resolve;
 * - files outside the named services' packages (google/protobuf/descriptor.proto, google/api/*,
 *   the well-known types) lose their source comments, which are most of their size. The services'
 *   own comments stay: they describe the REST operations (OpenAPI).
 */
export function registrationDescriptorSet(
  serviceNames: readonly string[],
  set: FileDescriptorSet = loadShopDescriptorSet(),
): Buffer {
  const wanted = new Set(serviceNames);
  const packages = new Set(serviceNames.map((name) => name.slice(0, Math.max(0, name.lastIndexOf('.')))));
  const files = filesForServices(set, serviceNames).map((file) => {
    const own = packages.has(file.package);
    const services = file.service.filter((service) =>
      wanted.has(file.package ? `${file.package}.${service.name}` : service.name),
    );
    if (own && services.length === file.service.length) return file;
    const copy = create(FileDescriptorProtoSchema, { ...file, service: services });
    if (!own) copy.sourceCodeInfo = undefined;
    // Comments are found by index: with services gone, those of the services kept point elsewhere.
    else if (services.length !== file.service.length)
      copy.sourceCodeInfo = reindexServiceComments(file, services);
    return copy;
  });
  return encodeDescriptorSet(files);
}

/** The file's comments with those of removed services dropped and the kept services' renumbered. */
function reindexServiceComments(
  file: FileDescriptorProto,
  kept: FileDescriptorProto['service'],
): FileDescriptorProto['sourceCodeInfo'] {
  const info = file.sourceCodeInfo;
  if (!info) return undefined;
  const newIndex = new Map(kept.map((service, index) => [file.service.indexOf(service), index]));
  const location = info.location.flatMap((entry) => {
    if (entry.path[0] !== FILE_SERVICE || entry.path.length < 2) return [entry];
    const index = newIndex.get(entry.path[1]!);
    if (index === undefined) return [];
    return [{ ...entry, path: [FILE_SERVICE, index, ...entry.path.slice(2)] }];
  });
  return { ...info, location };
}

/** FileDescriptorProto.service's field number, the first element of a service's comment path. */
const FILE_SERVICE = 6;

/** Serializes files as a google.protobuf.FileDescriptorSet. */
export function encodeDescriptorSet(files: readonly FileDescriptorProto[]): Buffer {
  return Buffer.from(
    toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: [...files] })),
  );
}

/** Serializes each file on its own (the form gRPC reflection answers with). */
export function encodeFiles(files: readonly FileDescriptorProto[]): Buffer[] {
  return files.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
}
