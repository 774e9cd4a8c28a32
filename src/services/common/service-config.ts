import {
  COMMON_SETTINGS,
  DISTRIBUTOR_ADDRESS_SETTING,
  hostSetting,
  type LogLevel,
  portSetting,
  type TlsSettings,
  tlsSettings,
} from '../../common/common-settings.js';
import { ConfigError, parseHost, parseWholeNumber } from '../../common/config.js';
import { isLinkLocalHost, isUnspecifiedHost } from '../../common/loopback.js';
import { grpcMaxConnectionsSetting, grpcUnreadAnswerTimeoutSetting } from '../../common/max-connections.js';
import {
  metricsAllowedHostsSetting,
  metricsPortSetting,
  type ObservabilityConfig,
  observabilityConfig,
} from '../../common/observability-settings.js';
import {
  loadSettings,
  nonEmpty,
  optionalSetting,
  type SettingsTable,
  setting,
  settingName,
  usageText,
} from '../../common/settings.js';
import { DEFAULT_MAX_CALLS_IN_FLIGHT } from './calls-in-flight.js';
import type { AnyShopService } from './define-service.js';
import { withSslFiles } from './mysql-tls.js';
import { MYSQL_SSL_CA_SETTING, MYSQL_SSL_CERT_SETTING, MYSQL_SSL_KEY_SETTING } from './mysql-tls-settings.js';
import { type MysqlConnectionOptions, parseMysqlUrl } from './mysql-url.js';

/** What differs between the services' command lines: a service definition's name and port. */
export type ServiceConfigSpec = Pick<AnyShopService, 'name' | 'port'>;

/** Where a service keeps its data: MySQL when a URL is configured, else one SQLite file. */
export type StorageConfig =
  | { readonly kind: 'mysql'; readonly connection: MysqlConnectionOptions }
  | { readonly kind: 'sqlite'; readonly dataDir: string };

/** A service's validated configuration. */
export interface ServiceConfig {
  /** Address to bind, e.g. "127.0.0.1". */
  readonly host: string;
  /** Port to bind; 0 picks a free one, and the port really bound is what gets registered. */
  readonly port: number;
  /** The distributor, "host:port". */
  readonly distributor: string;
  /** The host others should dial; empty: the address the distributor sees the service connect from. */
  readonly advertiseHost: string;
  readonly storage: StorageConfig;
  readonly logLevel: LogLevel;
  /** TLS files: the server's identity (mTLS with a CA) and the registration's client certificate. */
  readonly tls?: TlsSettings | undefined;
  /** The registration token, sent on the Register stream. */
  readonly registryToken?: string | undefined;
  /** Metrics, their admin port, request ids; absent: metrics and ids on, no admin port. */
  readonly observability?: ObservabilityConfig;
  /** Calls of the service's own methods run at once (see calls-in-flight.ts); absent: the default. */
  readonly maxCallsInFlight?: number;
  /** Connections to its gRPC port open at once; absent: the default. */
  readonly maxConnections?: number;
  /** How long a call may hold an answer its client takes nothing of; absent: the default. */
  readonly unreadAnswerTimeoutMs?: number;
}

/** The folder of the services' SQLite files, and of `npm start`'s token file, which reads it too. */
export const DATA_DIR_SETTING = setting({
  env: 'DATA_DIR',
  default: './data',
  help: "folder of the SQLite file <service>.sqlite, and of the run's registry-token under npm start",
  parse: nonEmpty,
});

/** Every setting of one service, declared once (see src/common/settings.ts). */
export function serviceSettings({ port }: ServiceConfigSpec) {
  return {
    port: portSetting(port.env, port.default),
    host: hostSetting('SERVICE_HOST', '127.0.0.1'),
    metricsPort: metricsPortSetting(port.env.replace(/PORT$/, 'METRICS_PORT'), port.default),
    metricsAllowedHosts: metricsAllowedHostsSetting(port.env.replace(/PORT$/, 'METRICS_ALLOWED_HOSTS')),
    distributor: DISTRIBUTOR_ADDRESS_SETTING,
    advertiseHost: setting({
      flag: 'advertise-host',
      env: 'ADVERTISE_HOST',
      default: '',
      defaultText:
        'the --host address when it is one IP address others can dial (not 0.0.0.0, ::, link-local, nor loopback with the distributor elsewhere), or the first such address a --host name resolves to that it binds, else the address the distributor sees',
      help: 'the host others dial to reach this service',
      // Checked here as the distributor will check it (node-validation.ts), so that a typo stops
      // the process at start rather than being refused at registration.
      parse: (value, source) => {
        if (value === '') return value;
        const host = parseHost(value, source);
        // An IPv6 zone (fe80::1%eth0) names an interface of this machine: no other can dial it.
        if (host.includes('%'))
          throw new ConfigError(`${source}: a zone id means nothing to other machines, got "${value}"`);
        // Without a zone id, a link-local address is one no gateway can connect to (EINVAL).
        if (isLinkLocalHost(host)) {
          throw new ConfigError(
            `${source}: a link-local address (fe80::/10) cannot be dialled without the interface of the machine dialling it; give a global or unique local address, got "${value}"`,
          );
        }
        // --host 0.0.0.0 copied here: listed at the any-address, the service was dialled by every
        // gateway at its own machine, and reached only from the machine it runs on.
        if (isUnspecifiedHost(host)) {
          throw new ConfigError(
            `${source}: "${value}" is the any-address, which others dial as themselves; give an address of this machine they reach, or leave it unset`,
          );
        }
        return host;
      },
    }),
    mysqlUrl: optionalSetting({
      env: 'MYSQL_URL',
      defaultText: 'none: SQLite',
      help: 'store data in MySQL, mysql://user:pass@host:3306/db (# ? / @ : % in user or pass percent-encoded: # as %23); each service creates its own table if missing',
      parse: parseMysqlUrl,
    }),
    mysqlSslCa: MYSQL_SSL_CA_SETTING,
    mysqlSslCert: MYSQL_SSL_CERT_SETTING,
    mysqlSslKey: MYSQL_SSL_KEY_SETTING,
    maxCallsInFlight: setting({
      flag: 'max-calls-in-flight',
      env: 'MAX_CALLS_IN_FLIGHT',
      default: String(DEFAULT_MAX_CALLS_IN_FLIGHT),
      help: "calls of the service's own methods one instance runs at once; as many again wait their turn, twice over; past that, RESOURCE_EXHAUSTED at once (REST: 429)",
      parse: (value, source) => parseWholeNumber(value, source, 1, 1_000_000),
    }),
    maxConnections: grpcMaxConnectionsSetting('SERVICE_MAX_CONNECTIONS'),
    unreadAnswerTimeoutMs: grpcUnreadAnswerTimeoutSetting('SERVICE_UNREAD_ANSWER_TIMEOUT_MS'),
    dataDir: DATA_DIR_SETTING,
    ...COMMON_SETTINGS,
  } satisfies SettingsTable;
}

/** The usage text printed with a configuration error. */
export function serviceUsage(spec: ServiceConfigSpec): string {
  return usageText(spec.name, serviceSettings(spec));
}

/** Reads flags, then environment variables, then defaults; throws ConfigError on a bad value. */
export function loadServiceConfig(
  spec: ServiceConfigSpec,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): ServiceConfig {
  const settings = serviceSettings(spec);
  const values = loadSettings(settings, argv, env);
  const mysql = withSslFiles(values.mysqlUrl, {
    caFile: values.mysqlSslCa,
    certFile: values.mysqlSslCert,
    keyFile: values.mysqlSslKey,
  });
  const storage: StorageConfig = mysql
    ? { kind: 'mysql', connection: mysql }
    : { kind: 'sqlite', dataDir: values.dataDir };
  return Object.freeze({
    host: values.host,
    port: values.port,
    distributor: values.distributor,
    advertiseHost: values.advertiseHost,
    storage,
    logLevel: values.logLevel,
    tls: tlsSettings(values, spec.name),
    registryToken: values.registryToken,
    observability: observabilityConfig(values, values.port, settingName(settings.metricsPort)),
    maxCallsInFlight: values.maxCallsInFlight,
    maxConnections: values.maxConnections,
    unreadAnswerTimeoutMs: values.unreadAnswerTimeoutMs,
  });
}
