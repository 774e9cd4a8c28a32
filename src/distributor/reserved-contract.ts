import { create, createFileRegistry, getOption, hasOption } from '@bufbuild/protobuf';
import { type FileDescriptorSet, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { loadShopDescriptorSet } from '../common/descriptors.js';
import { readHttpRoutes } from '../common/http-routes.js';
import { type PathTemplate, templatesOverlap } from '../common/path-template.js';
import { ServiceError } from '../common/service-error.js';
import { parseRouteKey } from './route-owners.js';

/** A REST route of a reserved service. */
interface ReservedRoute {
  readonly key: string;
  readonly method: string;
  readonly template: PathTemplate;
  readonly name: string;
}

/**
 * The services of a contract the distributor holds itself, each reserved to the node name its
 * `shop.v1.served_by` option names, with their REST routes (proto/component.proto). A certificate
 * proves a node's name, not what it may serve, and a route or a gRPC service otherwise belongs to
 * the first name that registers it: a host with goods' certificate could register members' routes
 * while members was down and read every password sent to them. Held here, each service of the
 * shop's own contract belongs to its component whoever registers first, and whether it runs or not.
 *
 * Only what the distributor's own copy of the contract says counts: an option in a node's descriptor
 * set reserves nothing. A service of a contract the distributor was not built with (a fourth one,
 * in its own proto) is first-come, as before, until its proto is added to proto/ with the option.
 */
export class ReservedContract {
  /** The name each reserved gRPC service is served by, by full service name. */
  readonly #services: ReadonlyMap<string, string>;
  /** The reserved routes by HTTP method: only a route of the same method can take their paths. */
  readonly #routesByMethod: ReadonlyMap<string, readonly ReservedRoute[]>;
  /** The reserved routes by key, for an exact match without comparing templates. */
  readonly #routesByKey: ReadonlyMap<string, ReservedRoute>;

  /** What `set`'s services reserve through their `served_by` options. */
  constructor(set: FileDescriptorSet) {
    const registry = createFileRegistry(set);
    const servedBy = registry.getExtension('shop.v1.served_by');
    const services = new Map<string, string>();
    if (servedBy) {
      for (const file of registry.files) {
        for (const service of file.services) {
          if (!hasOption(service, servedBy)) continue;
          const name = getOption(service, servedBy) as string;
          if (name) services.set(service.typeName, name);
        }
      }
    }
    const byMethod = new Map<string, ReservedRoute[]>();
    const byKey = new Map<string, ReservedRoute>();
    for (const route of readHttpRoutes(registry).routes) {
      const name = services.get(route.grpcMethod.slice(0, route.grpcMethod.indexOf('/')));
      if (name === undefined) continue;
      const reserved: ReservedRoute = { key: route.key, ...parseRouteKey(route.key), name };
      byKey.set(route.key, reserved);
      const sameMethod = byMethod.get(reserved.method) ?? [];
      sameMethod.push(reserved);
      byMethod.set(reserved.method, sameMethod);
    }
    this.#services = services;
    this.#routesByMethod = byMethod;
    this.#routesByKey = byKey;
  }

  /** The shop's own contract, as the distributor was built with it (src/gen/descriptors.ts). */
  static ofShop(): ReservedContract {
    shopContract ??= new ReservedContract(loadShopDescriptorSet());
    return shopContract;
  }

  /** A contract that reserves nothing: every service and route is first-come. */
  static none(): ReservedContract {
    return new ReservedContract(create(FileDescriptorSetSchema));
  }

  /** The gRPC services reserved, with the name each is reserved to. */
  get services(): ReadonlyMap<string, string> {
    return this.#services;
  }

  /**
   * Throws PERMISSION_DENIED when a node of `name` declares a service reserved to another name, or
   * a REST route of one, or a route that some of its paths would match too (`GET /{name}` over
   * `GET /members`).
   */
  check(name: string, services: readonly string[], routeKeys: readonly string[]): void {
    for (const service of services) {
      const owner = this.#services.get(service);
      if (owner !== undefined && owner !== name) {
        throw refusal(`service "${service}" is served by "${owner}"`, name);
      }
    }
    for (const key of routeKeys) {
      const exact = this.#routesByKey.get(key);
      if (exact) {
        if (exact.name !== name) throw refusal(`route "${key}" is served by "${exact.name}"`, name);
        continue;
      }
      const { method, template } = parseRouteKey(key);
      for (const reserved of this.#routesByMethod.get(method) ?? []) {
        if (reserved.name !== name && templatesOverlap(template, reserved.template)) {
          throw refusal(
            `route "${key}" takes paths of route "${reserved.key}", served by "${reserved.name}"`,
            name,
          );
        }
      }
    }
  }
}

let shopContract: ReservedContract | undefined;

function refusal(what: string, name: string): ServiceError {
  return new ServiceError(
    status.PERMISSION_DENIED,
    `${what} (the served_by option of the shop's contract): a node named "${name}" cannot serve it`,
  );
}
