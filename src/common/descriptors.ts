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

/** Serializes files as a google.protobuf.FileDescriptorSet (the form a node registers). */
export function encodeDescriptorSet(files: readonly FileDescriptorProto[]): Buffer {
  return Buffer.from(
    toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: [...files] })),
  );
}

/** Serializes each file on its own (the form gRPC reflection answers with). */
export function encodeFiles(files: readonly FileDescriptorProto[]): Buffer[] {
  return files.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
}
