import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { ServiceError } from '../common/service-error.js';
import type { NodeDescription, Route } from '../gen/distributor.js';
import { NodeState } from '../gen/distributor.js';
import { HTTP_METHODS, REGISTRATION_LIMITS, type RegistrationLimits } from './registration-limits.js';

const NAME = /^[A-Za-z0-9._-]+$/;
const HOST = /^[A-Za-z0-9.:_-]+$/;
const PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const GRPC_METHOD = /^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\/([A-Za-z_][A-Za-z0-9_]*)$/;

function invalid(message: string): ServiceError {
  return new ServiceError(status.INVALID_ARGUMENT, `invalid registration: ${message}`);
}

/** The SHA-256 a descriptor set is known by: 32 bytes. */
export const SHA256_BYTES = 32;

/**
 * What route validation needs of a descriptor set: its unary-or-not methods by
 * "package.Service/Method", each with the field names of its output. Small, so that the distributor
 * keeps one per distinct set instead of parsing the set again for every instance that registers it.
 */
export type MethodIndex = ReadonlyMap<string, IndexedMethod>;

/** One method of a {@link MethodIndex}. */
export interface IndexedMethod {
  readonly unary: boolean;
  /** The output message's full name, e.g. "shop.v1.ListGoodsResponse". */
  readonly outputType: string;
  readonly outputFields: ReadonlySet<string>;
}

/**
 * Checks a node description against `limits` and throws INVALID_ARGUMENT with a message that names the
 * first problem. Routes must be well formed and, since a gateway transcodes with the node's descriptor
 * set, every route's gRPC method and response fields must exist in that set. A node without routes
 * sends no descriptor set: nothing would use it, and it would only swell every node's list.
 *
 * The distributor runs the two halves apart (validateNodeShape, then the routes against the index of
 * a set it may already hold); this is both at once, on the bytes given.
 */
export function validateNodeDescription(
  node: NodeDescription,
  limits: RegistrationLimits = REGISTRATION_LIMITS,
): void {
  validateNodeShape(node, limits);
  if (node.routes.length > 0) validateRoutesAgainst(node.routes, indexDescriptorSet(node.descriptorSet));
}

/**
 * Checks everything of a node description but whether its descriptor set serves its routes: names,
 * host, port, state, the routes' syntax, the sizes, and the announced hash's length. Throws
 * INVALID_ARGUMENT.
 */
export function validateNodeShape(
  node: NodeDescription,
  limits: RegistrationLimits = REGISTRATION_LIMITS,
): void {
  validateName(node.name, limits);
  if (node.host) validateHost(node.host, limits);
  if (!Number.isInteger(node.port) || node.port < 1 || node.port > 65535) {
    throw invalid(`port must be from 1 to 65535, got ${node.port}`);
  }
  if (node.state !== NodeState.NODE_STATE_UNSPECIFIED && !(node.state in NodeState)) {
    throw invalid('state is not a known NodeState');
  }
  if (node.routes.length > limits.routes) {
    throw invalid(`at most ${limits.routes} routes per node, got ${node.routes.length}`);
  }
  if (node.descriptorSet.length > limits.descriptorSetBytes) {
    throw invalid(
      `descriptor_set must be at most ${limits.descriptorSetBytes} bytes, got ${node.descriptorSet.length}`,
    );
  }
  if (node.routes.length === 0 && (node.descriptorSet.length > 0 || node.descriptorSetSha256.length > 0)) {
    throw invalid('a node without routes must send no descriptor_set');
  }
  if (node.descriptorSetSha256.length !== 0 && node.descriptorSetSha256.length !== SHA256_BYTES) {
    throw invalid(
      `descriptor_set_sha256 must be ${SHA256_BYTES} bytes, got ${node.descriptorSetSha256.length}`,
    );
  }
  const seen = new Set<string>();
  for (const route of node.routes) {
    validateRouteSyntax(route, limits);
    const key = `${route.httpMethod} ${route.path}`;
    if (seen.has(key)) throw invalid(`route "${key}" is listed twice`);
    seen.add(key);
  }
}

/**
 * Checks a node name alone: the cheap check the distributor makes before it looks at who may
 * register under the name, and before it parses the rest. Throws INVALID_ARGUMENT.
 */
export function validateName(name: string, limits: RegistrationLimits = REGISTRATION_LIMITS): void {
  if (!name) throw invalid('name is required');
  if (name.length > limits.nameLength || !NAME.test(name)) {
    throw invalid(`name must be 1 to ${limits.nameLength} characters of A-Z a-z 0-9 . _ -`);
  }
}

/**
 * Checks an advertised or observed host, which becomes part of the node's id: throws INVALID_ARGUMENT
 * unless it is a host name or an IP address of at most `limits.hostLength` characters.
 */
export function validateHost(host: string, limits: RegistrationLimits = REGISTRATION_LIMITS): void {
  if (host.length > limits.hostLength || !HOST.test(host)) {
    throw invalid(`host must be a host name or an IP address of at most ${limits.hostLength} characters`);
  }
}

function validateRouteSyntax(route: Route, limits: RegistrationLimits): void {
  // Cut what is echoed, so that a refusal never carries a caller's megabytes into messages and logs.
  const label = `route "${route.httpMethod.slice(0, 16)} ${route.path.slice(0, limits.pathLength)}"`;
  if (!HTTP_METHODS.has(route.httpMethod)) {
    throw invalid(`${label}: the HTTP method must be one of ${[...HTTP_METHODS].join(', ')}`);
  }
  if (route.path.length > limits.pathLength || !PATH.test(route.path)) {
    throw invalid(
      `${label}: the path must start with "/", hold no spaces, "?" or "#", and be at most ${limits.pathLength} characters`,
    );
  }
  if (route.grpcMethod.length > limits.grpcMethodLength || !GRPC_METHOD.test(route.grpcMethod)) {
    throw invalid(
      `${label}: the gRPC method must be "package.Service/Method" of at most ${limits.grpcMethodLength} characters, got "${route.grpcMethod.slice(0, limits.grpcMethodLength)}"`,
    );
  }
  if (route.responseFields.length > limits.responseFields) {
    throw invalid(`${label}: at most ${limits.responseFields} response fields`);
  }
  for (const field of route.responseFields) {
    if (field.length > limits.fieldNameLength || !IDENTIFIER.test(field)) {
      throw invalid(
        `${label}: "${field.slice(0, limits.fieldNameLength)}" is not a field name of at most ${limits.fieldNameLength} characters`,
      );
    }
  }
}

/**
 * Parses a serialized FileDescriptorSet into the index of its methods; throws INVALID_ARGUMENT when
 * it does not parse or its imports do not resolve.
 */
export function indexDescriptorSet(bytes: Uint8Array): MethodIndex {
  let registry: ReturnType<typeof createFileRegistry>;
  try {
    registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  } catch {
    throw invalid(
      "descriptor_set must be a google.protobuf.FileDescriptorSet holding the routes' methods and their imports",
    );
  }
  const index = new Map<string, IndexedMethod>();
  for (const file of registry.files) {
    for (const service of file.services) {
      for (const method of service.methods) {
        index.set(`${service.typeName}/${method.name}`, {
          unary: method.methodKind === 'unary',
          outputType: method.output.typeName,
          outputFields: new Set(method.output.fields.map((field) => field.name)),
        });
      }
    }
  }
  return index;
}

/**
 * Checks that every route's gRPC method is a unary method of the descriptor set indexed, and that
 * its response fields are fields of the method's output. Throws INVALID_ARGUMENT.
 */
export function validateRoutesAgainst(routes: readonly Route[], methods: MethodIndex): void {
  for (const route of routes) {
    const method = methods.get(route.grpcMethod);
    if (!method)
      throw invalid(`route "${route.httpMethod} ${route.path}": descriptor_set has no ${route.grpcMethod}`);
    if (!method.unary) {
      throw invalid(`route "${route.httpMethod} ${route.path}": ${route.grpcMethod} must be a unary method`);
    }
    for (const field of route.responseFields) {
      if (!method.outputFields.has(field)) {
        throw invalid(
          `route "${route.httpMethod} ${route.path}": ${method.outputType} has no field "${field}"`,
        );
      }
    }
  }
}
