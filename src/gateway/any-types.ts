import { createRegistry, type DescMessage, type FileRegistry, type Registry } from '@bufbuild/protobuf';
import {
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
} from '@bufbuild/protobuf/wkt';

/** The full name of the message whose JSON form these types serve. */
export const ANY_TYPE = 'google.protobuf.Any';

/**
 * The well-known types, known to every node's Any: their definitions never change, and a gateway
 * of grpc-gateway's (Go, which links them all) resolves them whatever a service's protos import.
 */
const WELL_KNOWN_FILES = [
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
];

/** The types an Any may hold when no node's descriptor set is given: the well-known ones. */
export const WELL_KNOWN_ANY_TYPES: Registry = createRegistry(...WELL_KNOWN_FILES);

/**
 * The message types a node's `google.protobuf.Any` values may hold, in requests and in answers:
 * those of the descriptor set it registered (the contract-first counterpart of grpc-gateway's
 * linked-in types), plus the well-known types. The set's own definitions win. Made once per
 * descriptor set, with its plans (plan-cache.ts).
 */
export function anyTypesOf(registry: FileRegistry): Registry {
  return createRegistry(...WELL_KNOWN_FILES, registry);
}

/**
 * The message an Any's type URL names, or undefined: the name is what follows the URL's last "/"
 * (`type.googleapis.com/pkg.Msg`), as protobuf-es and Go's protojson read it.
 */
export function anyMessageType(types: Registry, typeUrl: string): DescMessage | undefined {
  const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  return name === '' ? undefined : types.getMessage(name);
}
