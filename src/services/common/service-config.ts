import {
  ConfigError,
  formatHostPort,
  parseFlags,
  parseHostPort,
  parsePort,
  pick,
} from '../../common/config.js';
import { type MysqlConnectionOptions, parseMysqlUrl } from './mysql-url.js';

/** What differs between the three services' command lines. */
export interface ServiceConfigSpec {
  /** The service's name: "goods", "members" or "purchases". */
  readonly name: string;
  /** The environment variable of its port, e.g. "GOODS_PORT". */
  readonly portEnv: string;
  /** Its default port, e.g. 9010. */
  readonly defaultPort: number;
}

/** Where a service keeps its data: MySQL when a URL is configured, else one SQLite file. */
export type StorageConfig =
  | { readonly kind: 'mysql'; readonly connection: MysqlConnectionOptions }
  | { readonly kind: 'sqlite'; readonly dataDir: string };

/** A service's validated configuration. */
export interface ServiceConfig {
  /** Address to bind, e.g. "0.0.0.0". */
  readonly host: string;
  /** Port to bind; 0 picks a free one, and the port really bound is what gets registered. */
  readonly port: number;
  /** The distributor, "host:port". */
  readonly distributor: string;
  /** The host others should dial; empty: the address the distributor sees the service connect from. */
  readonly advertiseHost: string;
  readonly storage: StorageConfig;
  readonly logLevel: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
// What the distributor accepts as a host (see src/distributor/node-validation.ts): checked here so a
// typo stops the process at start instead of being refused by the distributor on every retry.
const ADVERTISED_HOST = /^[A-Za-z0-9.:_-]{1,253}$/;

/** The usage text printed with a configuration error. */
export function serviceUsage({ name, portEnv, defaultPort }: ServiceConfigSpec): string {
  return `usage: ${name} [--port N] [--host ADDRESS] [--distributor HOST:PORT] [--advertise-host HOST]
  --port            ${portEnv.padEnd(19)} port to listen on; 0 picks a free one (default ${defaultPort})
  --host            SERVICE_HOST        address to listen on (default 0.0.0.0)
  --distributor     DISTRIBUTOR_ADDRESS the distributor to register with (default 127.0.0.1:9000)
  --advertise-host  ADVERTISE_HOST      host others reach this service at (default: the address
                                        the distributor sees it connect from)
                    MYSQL_URL           store data in MySQL, e.g. mysql://user:pass@127.0.0.1:3306/shop
                                        (default: SQLite in DATA_DIR)
                    DATA_DIR            folder of the SQLite file ${name}.sqlite (default ./data)
                    LOG_LEVEL           fatal, error, warn, info, debug, trace or silent (default info)`;
}

/** Reads flags, then environment variables, then defaults; throws ConfigError on a bad value. */
export function loadServiceConfig(
  spec: ServiceConfigSpec,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): ServiceConfig {
  const values = parseFlags(argv, ['port', 'host', 'distributor', 'advertise-host']);
  const port = parsePort(...pick(values.port, 'port', env, spec.portEnv, String(spec.defaultPort)));
  const [host, hostSource] = pick(values.host, 'host', env, 'SERVICE_HOST', '0.0.0.0');
  if (!host.trim()) throw new ConfigError(`${hostSource}: expected an address to listen on`);
  const distributor = formatHostPort(
    parseHostPort(...pick(values.distributor, 'distributor', env, 'DISTRIBUTOR_ADDRESS', '127.0.0.1:9000')),
  );
  const [advertiseHost, advertiseSource] = pick(
    values['advertise-host'],
    'advertise-host',
    env,
    'ADVERTISE_HOST',
    '',
  );
  if (advertiseHost !== '' && !ADVERTISED_HOST.test(advertiseHost)) {
    throw new ConfigError(
      `${advertiseSource}: expected a host name or an IP address, got "${advertiseHost}"`,
    );
  }
  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL: expected one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const storage: StorageConfig = env.MYSQL_URL
    ? { kind: 'mysql', connection: parseMysqlUrl(env.MYSQL_URL, 'MYSQL_URL') }
    : { kind: 'sqlite', dataDir: env.DATA_DIR || './data' };
  return Object.freeze({ host, port, distributor, advertiseHost, storage, logLevel });
}
