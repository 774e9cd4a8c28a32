import type { FileDescriptorSet } from '@bufbuild/protobuf/wkt';
import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.js';
import type { MysqlStoreOptions } from './mysql-database-options.js';
import type { ServiceStore } from './service-store.js';
import type { SqliteStoreOptions } from './sqlite-database.js';

/** How a service opens its store on each back end. */
export interface StoreFactories<Store extends ServiceStore> {
  /** Opens the store in one SQLite file (created with its folder if missing); throws if it cannot. */
  sqlite(file: string, options?: SqliteStoreOptions): Store;
  /** Opens the store on MySQL; never throws for an unreachable server (calls answer UNAVAILABLE). */
  mysql(options: MysqlStoreOptions): Store;
}

/**
 * One service of the shop, declared once in its folder: everything that differs from one service
 * to the next. The generic code (src/services/common) gives every service the rest: its process
 * entry (run-service.ts), its settings and usage text (service-config.ts), health, reflection and
 * the database probe (service-server.ts), registration and the ordered stop (start-service.ts).
 *
 * `Options` are the handlers' own options (members' hashing limits, purchases' clock): tests set
 * them, a process runs with their defaults. A service without any leaves it `never`.
 */
export interface ShopService<Store extends ServiceStore, Options = never, Name extends string = string> {
  /**
   * The node name: what it registers under, the launcher's component, its log lines' `component`,
   * its SQLite file `<name>.sqlite` and the name on its TLS files.
   */
  readonly name: Name;
  readonly grpc: {
    /** The fully qualified gRPC service, e.g. "shop.v1.GoodsService" (health and reflection use it). */
    readonly name: string;
    /** Its grpc-js definition (ts-proto's `XxxServiceService`). */
    readonly definition: ServiceDefinition;
    /**
     * The descriptors of its .proto file and every file it imports, for reflection and
     * registration; default: the shop's, as `buf build` made them from proto/.
     */
    readonly descriptors?: FileDescriptorSet;
  };
  readonly port: {
    /** The environment variable of its port, e.g. "GOODS_PORT" (the flag is --port for all). */
    readonly env: string;
    /** Its default port, e.g. 9010; 0 in tests. */
    readonly default: number;
  };
  readonly stores: StoreFactories<Store>;
  /** Its gRPC methods over an open store. */
  handlers(store: Store, log: Logger, options?: Options): UntypedServiceImplementation;
}

/**
 * Any service, whatever its store and options: what lists of services and the generic code that
 * only names, configures, runs and stops them take.
 */
// biome-ignore lint/suspicious/noExplicitAny: a service's options are contravariant; any erases them.
export type AnyShopService = ShopService<ServiceStore, any>;

const NODE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
const ENV_NAME = /^[A-Z][A-Z0-9_]*$/;
const QUALIFIED_NAME = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/;

/**
 * Declares a service, checking what a typo would otherwise turn into a confusing failure at run
 * time: the name (it becomes a file name and a node name), the port, and that the gRPC definition
 * really is the named service's. Throws at import, before anything starts.
 */
export function defineService<const Name extends string, Store extends ServiceStore, Options = never>(
  service: ShopService<Store, Options, Name>,
): ShopService<Store, Options, Name> {
  const where = `service "${service.name}"`;
  if (!NODE_NAME.test(service.name)) {
    throw new Error(`${where}: the name must be lowercase letters, digits and "-", starting with a letter`);
  }
  if (!ENV_NAME.test(service.port.env)) {
    throw new Error(`${where}: the port variable must be UPPER_CASE, got "${service.port.env}"`);
  }
  if (!Number.isInteger(service.port.default) || service.port.default < 0 || service.port.default > 65535) {
    throw new Error(`${where}: the default port must be from 0 to 65535, got ${service.port.default}`);
  }
  if (!QUALIFIED_NAME.test(service.grpc.name)) {
    throw new Error(`${where}: expected a fully qualified gRPC service name, got "${service.grpc.name}"`);
  }
  const methods = Object.values(service.grpc.definition);
  if (methods.length === 0) throw new Error(`${where}: the gRPC definition has no methods`);
  for (const { path } of methods) {
    if (!path.startsWith(`/${service.grpc.name}/`)) {
      throw new Error(`${where}: the gRPC definition's method ${path} is not one of ${service.grpc.name}`);
    }
  }
  return Object.freeze({ ...service });
}

/**
 * Checks that no two services of a list share a name, a gRPC service, a port variable or a default
 * port other than 0 (two services on one default port would fight over it under `npm start`).
 */
export function checkServiceList<const List extends readonly AnyShopService[]>(services: List): List {
  const keys: Array<[string, (service: AnyShopService) => string | number]> = [
    ['name', (service) => service.name],
    ['gRPC service', (service) => service.grpc.name],
    ['port variable', (service) => service.port.env],
    ['default port', (service) => service.port.default],
  ];
  for (const [label, key] of keys) {
    const seen = new Map<string | number, string>();
    for (const service of services) {
      const value = key(service);
      if (value === 0) continue; // port 0: any free port, shared by nobody
      const other = seen.get(value);
      if (other !== undefined) {
        throw new Error(`services "${other}" and "${service.name}" have the same ${label}: ${value}`);
      }
      seen.set(value, service.name);
    }
  }
  return services;
}
