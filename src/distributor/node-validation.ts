import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { ServiceError } from '../common/service-error.js';
import type { NodeDescription, Route } from '../gen/distributor.js';
import { NodeState } from '../gen/distributor.js';

/** Bounds on what one node may register, so that one node cannot bloat every broadcast. */
export const REGISTRATION_LIMITS = {
  nameLength: 64,
  hostLength: 253,
  routes: 64,
  pathLength: 256,
  responseFields: 32,
  descriptorSetBytes: 256 * 1024,
} as const;

const HTTP_METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
const NAME = /^[A-Za-z0-9._-]+$/;
const HOST = /^[A-Za-z0-9.:_-]+$/;
const PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const GRPC_METHOD = /^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\/([A-Za-z_][A-Za-z0-9_]*)$/;

function invalid(message: string): ServiceError {
  return new ServiceError(status.INVALID_ARGUMENT, `invalid registration: ${message}`);
}

/**
 * Checks a node description and throws INVALID_ARGUMENT with a message that names the first problem.
 * Routes must be well formed and, since a gateway transcodes with the node's descriptor set, every
 * route's gRPC method and response fields must exist in that set.
 */
export function validateNodeDescription(node: NodeDescription): void {
  if (!node.name) throw invalid('name is required');
  if (node.name.length > REGISTRATION_LIMITS.nameLength || !NAME.test(node.name)) {
    throw invalid(`name must be 1 to ${REGISTRATION_LIMITS.nameLength} characters of A-Z a-z 0-9 . _ -`);
  }
  if (node.host && (node.host.length > REGISTRATION_LIMITS.hostLength || !HOST.test(node.host))) {
    throw invalid('host must be a host name or an IP address');
  }
  if (!Number.isInteger(node.port) || node.port < 1 || node.port > 65535) {
    throw invalid(`port must be from 1 to 65535, got ${node.port}`);
  }
  if (node.state !== NodeState.NODE_STATE_UNSPECIFIED && !(node.state in NodeState)) {
    throw invalid('state is not a known NodeState');
  }
  if (node.routes.length > REGISTRATION_LIMITS.routes) {
    throw invalid(`at most ${REGISTRATION_LIMITS.routes} routes per node`);
  }
  if (node.descriptorSet.length > REGISTRATION_LIMITS.descriptorSetBytes) {
    throw invalid(`descriptor_set must be at most ${REGISTRATION_LIMITS.descriptorSetBytes} bytes`);
  }
  const seen = new Set<string>();
  for (const route of node.routes) {
    validateRouteSyntax(route);
    const key = `${route.httpMethod} ${route.path}`;
    if (seen.has(key)) throw invalid(`route "${key}" is listed twice`);
    seen.add(key);
  }
  if (node.routes.length > 0) validateRoutesAgainstDescriptors(node);
}

function validateRouteSyntax(route: Route): void {
  const label = `route "${route.httpMethod} ${route.path}"`;
  if (!HTTP_METHODS.has(route.httpMethod)) {
    throw invalid(`${label}: the HTTP method must be one of ${[...HTTP_METHODS].join(', ')}`);
  }
  if (route.path.length > REGISTRATION_LIMITS.pathLength || !PATH.test(route.path)) {
    throw invalid(`${label}: the path must start with "/" and hold no spaces, "?" or "#"`);
  }
  if (!GRPC_METHOD.test(route.grpcMethod)) {
    throw invalid(`${label}: the gRPC method must be "package.Service/Method", got "${route.grpcMethod}"`);
  }
  if (route.responseFields.length > REGISTRATION_LIMITS.responseFields) {
    throw invalid(`${label}: at most ${REGISTRATION_LIMITS.responseFields} response fields`);
  }
  for (const field of route.responseFields) {
    if (!IDENTIFIER.test(field)) throw invalid(`${label}: "${field}" is not a field name`);
  }
}

function validateRoutesAgainstDescriptors(node: NodeDescription): void {
  let registry: ReturnType<typeof createFileRegistry>;
  try {
    registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, node.descriptorSet));
  } catch {
    throw invalid(
      "descriptor_set must be a google.protobuf.FileDescriptorSet holding the routes' methods and their imports",
    );
  }
  for (const route of node.routes) {
    const [, serviceName, methodName] = GRPC_METHOD.exec(route.grpcMethod)!;
    const method = registry
      .getService(serviceName!)
      ?.methods.find((candidate) => candidate.name === methodName);
    if (!method)
      throw invalid(`route "${route.httpMethod} ${route.path}": descriptor_set has no ${route.grpcMethod}`);
    if (method.methodKind !== 'unary') {
      throw invalid(`route "${route.httpMethod} ${route.path}": ${route.grpcMethod} must be a unary method`);
    }
    for (const field of route.responseFields) {
      if (!method.output.fields.some((candidate) => candidate.name === field)) {
        throw invalid(
          `route "${route.httpMethod} ${route.path}": ${method.output.typeName} has no field "${field}"`,
        );
      }
    }
  }
}
