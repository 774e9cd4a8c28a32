import type { FileRegistry } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { isHostNameOrAddress } from '../common/config.js';
import { type HttpRoute, readHttpRoutes, registryOfDescriptorSet } from '../common/http-routes.js';
import { isLinkLocalHost, isUnspecifiedHost } from '../common/loopback.js';
import { ServiceError } from '../common/service-error.js';
import type { NodeDescription, Route } from '../gen/distributor.js';
import { NodeState } from '../gen/distributor.js';
import { HTTP_METHODS, REGISTRATION_LIMITS, type RegistrationLimits } from './registration-limits.js';

const NAME = /^[A-Za-z0-9._-]+$/;
const PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const GRPC_METHOD = /^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\/([A-Za-z_][A-Za-z0-9_]*)$/;

function invalid(message: string): ServiceError {
  return new ServiceError(status.INVALID_ARGUMENT, `invalid registration: ${message}`);
}

/** The SHA-256 a descriptor set is known by: 32 bytes. */
export const SHA256_BYTES = 32;

/**
 * Checks a node description against `limits` and throws INVALID_ARGUMENT with a message that names the
 * first problem. Returns the keys of the REST routes the node declares ("METHOD shape", see
 * {@link HttpRoute.key}), for the registry's check that no two services claim one route.
 *
 * The REST routes are the `google.api.http` options of the methods in the node's descriptor set (every
 * service of the set is taken as served by the node): each must follow the HttpRule rules and the
 * gateway's (see readHttpRoutes), within the limits (routes per node, template length, envelope
 * fields). A set must define at least one service: nothing would use it otherwise, and it would only
 * swell every node's list.
 *
 * `routes` (Route messages, deprecated) is no longer read by anyone: it is bounded as before, so that
 * old nodes still register, and otherwise ignored.
 */
export function validateNodeDescription(
  node: NodeDescription,
  limits: RegistrationLimits = REGISTRATION_LIMITS,
): string[] {
  validateNodeShape(node, limits);
  return node.descriptorSet.length > 0
    ? [...validateDescriptorSet(node.descriptorSet, limits).routeKeys]
    : [];
}

/**
 * The states a node may describe itself in (unspecified is serving). Not `state in NodeState`: that
 * also holds for ts-proto's UNRECOGNIZED (-1), which a client can send as it is.
 */
const DESCRIBED_STATES: ReadonlySet<NodeState> = new Set([
  NodeState.NODE_STATE_UNSPECIFIED,
  NodeState.NODE_STATE_SERVING,
  NodeState.NODE_STATE_DRAINING,
]);

/**
 * Checks everything of a node description but what its descriptor set holds: name, host, port,
 * state, the deprecated routes' syntax, the sizes and the announced hash's length. Throws
 * INVALID_ARGUMENT. The distributor runs it on every registration, and {@link validateDescriptorSet}
 * once per distinct set.
 */
export function validateNodeShape(
  node: NodeDescription,
  limits: RegistrationLimits = REGISTRATION_LIMITS,
): void {
  validateName(node.name, limits);
  if (node.host) validateAdvertisedHost(node.host, limits);
  if (!Number.isInteger(node.port) || node.port < 1 || node.port > 65535) {
    throw invalid(`port must be from 1 to 65535, got ${node.port}`);
  }
  if (!DESCRIBED_STATES.has(node.state)) {
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
  if (node.descriptorSetSha256.length !== 0 && node.descriptorSetSha256.length !== SHA256_BYTES) {
    throw invalid(
      `descriptor_set_sha256 must be ${SHA256_BYTES} bytes, got ${node.descriptorSetSha256.length}`,
    );
  }
  for (const route of node.routes) validateRouteSyntax(route, limits);
}

/**
 * The route keys a node's descriptor set declares, without the checks: for a description already
 * validated, or a registry test that builds one by hand. A set that does not parse declares none.
 */
export function declaredRouteKeys(node: NodeDescription): string[] {
  if (node.descriptorSet.length === 0) return [];
  try {
    return readHttpRoutes(registryOfDescriptorSet(node.descriptorSet)).routes.map((route) => route.key);
  } catch {
    return [];
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
  // The gateway dials what is listed: "unix:x" or "1.2.3.4:80" would make another target of it.
  if (host.length > limits.hostLength || !isHostNameOrAddress(host)) {
    throw invalid(`host must be a host name or an IP address of at most ${limits.hostLength} characters`);
  }
}

/**
 * Checks a host a node gives for itself: {@link validateHost}, and one that others can dial. The
 * any-address (0.0.0.0, ::) is dialled by each gateway as its own machine, an IPv6 zone id
 * (fe80::1%eth0) names an interface of the node's machine, and a link-local address without one
 * (fe80::/10) cannot be connected to (EINVAL): all are refused, as the services' own
 * --advertise-host refuses them (service-config.ts).
 */
function validateAdvertisedHost(host: string, limits: RegistrationLimits): void {
  validateHost(host, limits);
  if (isUnspecifiedHost(host) || host.includes('%') || isLinkLocalHost(host)) {
    throw invalid(
      'host must be an address others can dial: not the any-address (0.0.0.0, ::), a link-local address (fe80::/10) nor one with a zone id; ' +
        'leave it empty to be listed at the address the distributor sees',
    );
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

/** What a node's descriptor set declares it serves. */
export interface DeclaredContract {
  /** The gRPC services it defines, by full name ("shop.v1.GoodsService"): a node serves every one. */
  readonly services: readonly string[];
  /** The keys of the REST routes its `google.api.http` options declare ("METHOD shape"). */
  readonly routeKeys: readonly string[];
}

/**
 * Checks a descriptor set (see {@link validateNodeDescription}) and returns what it declares.
 * Throws INVALID_ARGUMENT. What it returns depends on the bytes and the limits alone, so the
 * distributor keeps it with each distinct set it holds instead of parsing the set again for every
 * instance that registers it.
 */
export function validateDescriptorSet(
  descriptorSet: Uint8Array,
  limits: RegistrationLimits,
): DeclaredContract {
  let registry: FileRegistry;
  try {
    registry = registryOfDescriptorSet(descriptorSet);
  } catch (error) {
    // The parser's reason names the file, import, name or type at fault; cut, as every echo is.
    const reason = error instanceof Error && error.message ? `: ${error.message.slice(0, 256)}` : '';
    throw invalid(
      `descriptor_set must be a google.protobuf.FileDescriptorSet holding its files' imports${reason}`,
    );
  }
  const services = [...registry.files].flatMap((file) => file.services.map((service) => service.typeName));
  if (services.length === 0) throw invalid('descriptor_set defines no service: send none');
  const { routes, problems } = readHttpRoutes(registry);
  // Cut what is echoed, so that a refusal never carries a caller's megabytes into messages and logs.
  if (problems.length > 0) throw invalid(`google.api.http: ${problems[0]!.slice(0, 512)}`);
  if (routes.length > limits.routes) {
    throw invalid(
      `at most ${limits.routes} REST routes (http rules and bindings) per node, got ${routes.length}`,
    );
  }
  for (const route of routes) {
    const label = `${route.httpMethod} ${route.template.text.slice(0, limits.pathLength)}`;
    if (route.template.text.length > limits.pathLength) {
      throw invalid(`route "${label}": the path template must be at most ${limits.pathLength} characters`);
    }
    if (route.envelopeFields.length > limits.responseFields) {
      throw invalid(`route "${label}": at most ${limits.responseFields} envelope fields`);
    }
  }
  return { services, routeKeys: routes.map((route) => route.key) };
}
