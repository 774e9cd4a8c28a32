import { ConfigError, parsePort } from './config.js';
import { parseAllowedHosts } from './host-allowlist.js';
import { oneOf, optionalSetting, type Setting, setting } from './settings.js';

const onOff = oneOf(['on', 'off'] as const);

/**
 * Settings of every component for issue 11 (spread into COMMON_SETTINGS): metrics and request ids,
 * both on by default; `npm run bench` measures what they cost by turning them off.
 */
export const OBSERVABILITY_SETTINGS = {
  metrics: setting({
    env: 'METRICS',
    default: 'on',
    help: 'Prometheus metrics (on the gateway: /metrics and the rates of /status; elsewhere: --metrics-port): on or off',
    parse: onOff,
  }),
  requestIds: setting({
    env: 'REQUEST_IDS',
    default: 'on',
    help: 'X-Request-Id on every REST request, passed to the service as x-request-id metadata and written in every log line about the request (field requestId): on or off',
    parse: onOff,
  }),
} as const;

/** `--metrics-port`: a port, 0 for any free one, or "off". */
export type MetricsPort = number | 'off';

function parseMetricsPort(value: string, source: string): MetricsPort {
  if (value.trim().toLowerCase() === 'off') return 'off';
  try {
    return parsePort(value, source);
  } catch {
    throw new ConfigError(`${source}: expected a port from 0 to 65535 or "off", got "${value}"`);
  }
}

/** How far above a component's gRPC port its metrics port is by default. */
export const METRICS_PORT_OFFSET = 100;

/**
 * The port of a component's HTTP admin server, which serves `GET /metrics`. Unset, it is the
 * component's `--port` + 100 (so `npm start` gives 9100, 9110, 9120, 9130), and any free port when
 * `--port` is 0, so that several instances started with `--port 0` never collide.
 */
export function metricsPortSetting(env: string, defaultPort: number): Setting<MetricsPort | undefined> {
  return optionalSetting({
    flag: 'metrics-port',
    env,
    defaultText: `--port + ${METRICS_PORT_OFFSET} (${defaultPort + METRICS_PORT_OFFSET}); any free port when --port is 0`,
    help: 'port of the HTTP admin server that serves GET /metrics, plain HTTP on the --host address (with a host name, on each of its addresses the gRPC port is bound on); 0 picks a free one (on a name of several addresses, one free on each), off serves none; a port given with METRICS=off is refused',
    parse: parseMetricsPort,
  });
}

/**
 * The host names a component's admin port answers besides IP addresses, localhost and the machine's
 * name (see admin-server.ts: DNS rebinding), as the gateway's `--allowed-hosts` for its own port.
 */
export function metricsAllowedHostsSetting(env: string): Setting<readonly string[]> {
  return setting({
    flag: 'metrics-allowed-hosts',
    env,
    default: '',
    help: "host names scrapers may call the admin port (--metrics-port) by, besides IP addresses, localhost, this machine's name and a --host name, comma-separated (goods.internal, or .internal for a domain and its every name), or * for any; a request whose Host names another is 421 (a web page that rebinds its own name to this machine cannot read the metrics); with no admin port (METRICS=off, --metrics-port off) a warning at start says it has no effect",
    parse: parseAllowedHosts,
  });
}

/** What a component does about issue 11, resolved from its settings. */
export interface ObservabilityConfig {
  readonly metrics: boolean;
  readonly requestIds: boolean;
  /** The admin server's port (0: any free one); undefined: no admin server (off, or metrics off). */
  readonly metricsPort: number | undefined;
  /**
   * The port was given (flag or variable): failing to bind it stops the component, like `--port`.
   * Derived from `--port`, it only costs a warning: the component serves on without metrics.
   */
  readonly metricsPortGiven: boolean;
  /** `--metrics-allowed-hosts`, as parseAllowedHosts gives them; absent for the gateway, which has no admin port. */
  readonly metricsAllowedHosts?: readonly string[];
}

/**
 * Resolves a component's observability settings; `port` is its gRPC port, for the default metrics
 * port, and `metricsPortName` how messages name its metrics port setting ("--metrics-port
 * (GOODS_METRICS_PORT)"). A metrics port given (a number) with METRICS=off is a ConfigError: the user
 * asked for two things that cannot both hold, and taking either silently (no metrics on the port
 * asked for, as before, or metrics the user turned off) leaves one unsaid. Nothing passes a metrics
 * port unasked: `npm start`'s launcher sets one (to 0) only for a component whose metrics are on.
 */
export function observabilityConfig(
  values: {
    metrics: 'on' | 'off';
    requestIds: 'on' | 'off';
    metricsPort?: MetricsPort | undefined;
    metricsAllowedHosts?: readonly string[];
  },
  port?: number,
  metricsPortName = '--metrics-port',
): ObservabilityConfig {
  const metrics = values.metrics === 'on';
  const given = values.metricsPort !== undefined;
  if (!metrics && typeof values.metricsPort === 'number') {
    throw new ConfigError(
      `${metricsPortName}: asks for metrics on port ${values.metricsPort}, but METRICS=off turns metrics off; unset one of the two (or give the metrics port as off)`,
    );
  }
  let metricsPort: number | undefined;
  if (values.metricsPort === 'off' || !metrics) metricsPort = undefined;
  else if (given) {
    metricsPort = values.metricsPort as number;
    // Both on one port can only fail when the second binds: said at start instead (exit 2).
    if (metricsPort !== 0 && metricsPort === port) {
      throw new ConfigError(
        `--metrics-port: ${metricsPort} is the component's own port (--port); give the metrics another, or off`,
      );
    }
  } else if (port !== undefined) {
    metricsPort = port === 0 || port + METRICS_PORT_OFFSET > 65535 ? 0 : port + METRICS_PORT_OFFSET;
  }
  return Object.freeze({
    metrics,
    requestIds: values.requestIds === 'on',
    metricsPort,
    metricsPortGiven: given,
    ...(values.metricsAllowedHosts === undefined ? {} : { metricsAllowedHosts: values.metricsAllowedHosts }),
  });
}

/**
 * What to warn of when `--metrics-allowed-hosts` lists names but no admin port serves (METRICS=off,
 * or `--metrics-port off`): accepted, since it contradicts nothing (unlike a metrics port given with
 * METRICS=off), but said at start, so that names listed for a scraper that then gets nothing are not
 * left unused silently. `setting` names it as messages do ("--metrics-allowed-hosts (GOODS_…)").
 */
export function unusedMetricsAllowedHosts(config: ObservabilityConfig, setting: string): string | undefined {
  const hosts = config.metricsAllowedHosts ?? [];
  if (hosts.length === 0 || config.metricsPort !== undefined) return undefined;
  const why = config.metrics ? '--metrics-port is off' : 'METRICS=off turns metrics off';
  return `${setting} lists ${hosts.join(',')} but this component serves no metrics (${why}): the list has no effect`;
}
