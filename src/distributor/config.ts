import {
  COMMON_SETTINGS,
  hostSetting,
  type LogLevel,
  portSetting,
  REGISTRY_TOKEN_ENV,
  type TlsSettings,
  tlsSettings,
} from '../common/common-settings.js';
import { ConfigError } from '../common/config.js';
import { grpcMaxConnectionsSetting, grpcUnreadAnswerTimeoutSetting } from '../common/max-connections.js';
import {
  metricsAllowedHostsSetting,
  metricsPortSetting,
  type ObservabilityConfig,
  observabilityConfig,
} from '../common/observability-settings.js';
import { loadSettings, settingName, switchSetting, usageText } from '../common/settings.js';

/** Every setting of the distributor, declared once (see src/common/settings.ts). */
export const DISTRIBUTOR_SETTINGS = {
  port: portSetting('DISTRIBUTOR_PORT', 9000),
  host: hostSetting('DISTRIBUTOR_HOST', '127.0.0.1'),
  metricsPort: metricsPortSetting('DISTRIBUTOR_METRICS_PORT', 9000),
  metricsAllowedHosts: metricsAllowedHostsSetting('DISTRIBUTOR_METRICS_ALLOWED_HOSTS'),
  maxConnections: grpcMaxConnectionsSetting('DISTRIBUTOR_MAX_CONNECTIONS'),
  unreadAnswerTimeoutMs: grpcUnreadAnswerTimeoutSetting('DISTRIBUTOR_UNREAD_ANSWER_TIMEOUT_MS'),
  ...COMMON_SETTINGS,
  openRegistry: switchSetting({
    flag: 'insecure-open-registry',
    env: 'SHOP_REGISTRY_OPEN',
    help: 'let anyone who reaches it register, watch, list and fetch descriptors, with neither token nor mTLS (a trusted network only); does nothing while a token or a TLS CA is set: the token, or a client certificate from that CA, is still required, and a warning says so',
  }),
} as const;

/** The distributor's validated configuration. */
export interface DistributorConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  readonly tls: TlsSettings | undefined;
  readonly registryToken: string | undefined;
  readonly openRegistry: boolean;
  /** Connections to its gRPC port open at once. */
  /** Undefined: auto (see defaultGrpcMaxConnections). */
  readonly maxConnections: number | undefined;
  /** How long a call may hold an answer its client takes nothing of (a Watch stream's snapshot, say). */
  readonly unreadAnswerTimeoutMs: number;
  /** Metrics, their admin port, request ids. */
  readonly observability: ObservabilityConfig;
}

export const DISTRIBUTOR_USAGE = usageText('distributor', DISTRIBUTOR_SETTINGS);

/**
 * What to warn of when the open-registry switch is on but credentials are set too: they win (the
 * safe side), so the switch does nothing, which an operator who set it to let a node in without
 * them must hear. `npm start` always sets a token, so there the switch never opens the registry.
 */
export function ignoredOpenSwitch(config: DistributorConfig): string | undefined {
  if (!config.openRegistry) return undefined;
  const required = [
    config.registryToken ? `the token (${REGISTRY_TOKEN_ENV})` : undefined,
    config.tls?.caFile ? 'a client certificate (mTLS)' : undefined,
  ].filter(Boolean);
  if (required.length === 0) return undefined;
  return `--insecure-open-registry (SHOP_REGISTRY_OPEN) has no effect: registration still requires ${required.join(' and ')}; unset those to run the registry open`;
}

/**
 * Reads flags, then environment variables, then defaults; throws ConfigError on a bad value. The
 * registry is never open by accident: it needs a token, mTLS (a CA), or the explicit switch.
 */
export function loadDistributorConfig(argv: readonly string[], env: NodeJS.ProcessEnv): DistributorConfig {
  const values = loadSettings(DISTRIBUTOR_SETTINGS, argv, env);
  const tls = tlsSettings(values, 'distributor');
  if (!values.registryToken && !tls?.caFile && !values.openRegistry) {
    throw new ConfigError(
      `the registry needs credentials: set ${REGISTRY_TOKEN_ENV} (a shared token), or TLS with a CA (mTLS: TLS_DIR, or TLS_CA, TLS_CERT and TLS_KEY); --insecure-open-registry runs it open, for a trusted network only`,
    );
  }
  return Object.freeze({
    host: values.host,
    port: values.port,
    logLevel: values.logLevel,
    tls,
    registryToken: values.registryToken,
    openRegistry: values.openRegistry,
    maxConnections: values.maxConnections,
    unreadAnswerTimeoutMs: values.unreadAnswerTimeoutMs,
    observability: observabilityConfig(values, values.port, settingName(DISTRIBUTOR_SETTINGS.metricsPort)),
  });
}
