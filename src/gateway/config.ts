import {
  COMMON_SETTINGS,
  DISTRIBUTOR_ADDRESS_SETTING,
  hostSetting,
  type LogLevel,
  portSetting,
  type TlsSettings,
  tlsSettings,
} from '../common/common-settings.js';
import { ConfigError, MAX_DURATION_MS, parseWholeNumber } from '../common/config.js';
import { SERVICE_MAX_REQUEST_BYTES } from '../common/grpc-server.js';
import { parseAllowedHosts } from '../common/host-allowlist.js';
import { parseMaxConnections } from '../common/max-connections.js';
import { type ObservabilityConfig, observabilityConfig } from '../common/observability-settings.js';
import { parsePemFilePath } from '../common/pem-file-path.js';
import { loadSettings, oneOf, optionalSetting, setting, settingName, usageText } from '../common/settings.js';
import { DEFAULT_UNREAD_ANSWER_TIMEOUT_MS } from '../common/unread-answer-watch.js';
import { CLIENT_TRACE_CONTEXTS, type ClientTraceContext } from './gateway-telemetry.js';
import { parseStatusClients, type StatusClientsSetting } from './status-clients.js';

/** The files of the gateway's HTTPS side, for REST clients. */
export interface HttpsSettings {
  readonly certFile: string;
  readonly keyFile: string;
  /** With it, REST clients must present a certificate this CA issued. */
  readonly clientCaFile?: string;
}

/**
 * The longest drain: well past what load balancers take to notice (Kubernetes' default readiness
 * probe, 10 s three times over; an AWS target group's, 30 s twice), within a sane stop.
 */
const MAX_DRAIN_DELAY_MS = 120_000;

/** Every setting of the gateway, declared once (see src/common/settings.ts). */
export const GATEWAY_SETTINGS = {
  port: portSetting('GATEWAY_PORT', 8000),
  host: hostSetting('GATEWAY_HOST', '0.0.0.0'),
  distributor: DISTRIBUTOR_ADDRESS_SETTING,
  deadlineMs: setting({
    flag: 'deadline-ms',
    env: 'GATEWAY_DEADLINE_MS',
    default: '5000',
    help: 'deadline of every call to a service, in ms, counted from when the whole request, body included, has come (then 504); a stop waits for requests in flight this and 1 s, 7 s at most',
    parse: (value, source) => parseWholeNumber(value, source, 1, MAX_DURATION_MS),
  }),
  bodyLimitBytes: setting({
    flag: 'body-limit',
    env: 'GATEWAY_BODY_LIMIT',
    default: '1MiB',
    help: 'largest request body: bytes, or with a KiB/MiB suffix (then 413); at most 1MiB, the largest request a service takes',
    parse: (value, source) => {
      const bytes = parseByteSize(value, source);
      // A larger body would pass here only to be refused by the service, and answered 502 "The
      // answer is too large": grpc-js says the same of a request over the service's limit.
      if (bytes > SERVICE_MAX_REQUEST_BYTES) {
        throw new ConfigError(
          `${source}: at most 1MiB (${SERVICE_MAX_REQUEST_BYTES} bytes), the largest request a service takes, got "${value}"`,
        );
      }
      return bytes;
    },
  }),
  maxConnections: setting({
    flag: 'max-connections',
    env: 'GATEWAY_MAX_CONNECTIONS',
    default: 'auto',
    defaultText: 'auto: ¾ of the open-file limit',
    help: 'most REST connections open at once, a tenth of them (1 to 64, none with a limit of 1) kept for refusals; past the rest the longest idle one is closed to make room, or, with none idle, the new one is answered 503 with Retry-After; past the whole limit a new one is closed at once',
    parse: parseMaxConnections,
  }),
  maxPipelined: setting({
    flag: 'max-pipelined',
    env: 'GATEWAY_MAX_PIPELINED',
    default: '16',
    help: 'requests in flight at once on one HTTP/1.1 connection (pipelining); past it 503 and the connection closes',
    parse: (value, source) => parseWholeNumber(value, source, 1, 1_000_000),
  }),
  bodyBudgetBytes: setting({
    flag: 'body-budget',
    env: 'GATEWAY_BODY_BUDGET',
    default: '32MiB',
    help: 'request body bytes held at once over all connections (at least --body-limit); past it 503 with Retry-After',
    parse: parseByteSize,
  }),
  maxStreamedLists: setting({
    flag: 'max-streamed-lists',
    env: 'GATEWAY_MAX_STREAMED_LISTS',
    default: '16',
    help: 'lists longer than a page streamed at once (each holds about two pages of up to 1 MiB); past it 503 with Retry-After',
    parse: (value, source) => parseWholeNumber(value, source, 1, 1_000_000),
  }),
  unreadAnswerTimeoutMs: setting({
    flag: 'unread-answer-timeout-ms',
    env: 'GATEWAY_UNREAD_ANSWER_TIMEOUT_MS',
    default: String(DEFAULT_UNREAD_ANSWER_TIMEOUT_MS),
    help: "how long a connection may hold answers its client takes nothing of (more than the socket's buffer waiting, no write completing; for a streamed list, no 64 KiB slice of it) before it is closed, in ms",
    parse: (value, source) => parseWholeNumber(value, source, 100, MAX_DURATION_MS),
  }),
  restartGraceMs: setting({
    flag: 'restart-grace-ms',
    env: 'GATEWAY_RESTART_GRACE_MS',
    // A node registers again within its backoff (up to 5 s) and a channel reconnection (up to 1 s).
    default: '7000',
    help: 'after a distributor restart, how long instances that have not registered again are still routed to, and how long /readyz stays 200 without the distributor, in ms; 0: none',
    parse: (value, source) => parseWholeNumber(value, source, 0, MAX_DURATION_MS),
  }),
  drainDelayMs: setting({
    flag: 'drain-delay-ms',
    env: 'GATEWAY_DRAIN_DELAY_MS',
    default: '0',
    help: "on a stop signal, how long the gateway goes on serving with /readyz at 503 and every routed answer closing its connection, before it stops taking connections, in ms: set it above your load balancer's time to notice (its health check interval times the failures it waits for); 0: stops at once",
    parse: (value, source) => parseWholeNumber(value, source, 0, MAX_DRAIN_DELAY_MS),
  }),
  httpsCert: optionalSetting({
    flag: 'https-cert',
    env: 'GATEWAY_HTTPS_CERT',
    defaultText: 'none: plain HTTP',
    help: 'certificate (PEM) of the REST port: with it, the gateway serves HTTPS. Re-read when the file changes',
    parse: parsePemFilePath,
  }),
  httpsKey: optionalSetting({
    flag: 'https-key',
    env: 'GATEWAY_HTTPS_KEY',
    help: 'private key (PEM) of the REST port, with --https-cert',
    parse: parsePemFilePath,
  }),
  httpsClientCa: optionalSetting({
    flag: 'https-client-ca',
    env: 'GATEWAY_HTTPS_CLIENT_CA',
    defaultText: 'none: any REST client',
    help: 'CA (PEM) whose certificates REST clients must present',
    parse: parsePemFilePath,
  }),
  corsOrigins: setting({
    flag: 'cors-origins',
    env: 'CORS_ORIGINS',
    default: '',
    help: 'origins whose browser pages may call the REST API, comma-separated (https://shop.example,http://localhost:3000), or * for any; unset or empty: no CORS (a list of only commas is refused)',
    parse: parseOrigins,
  }),
  allowedHosts: setting({
    flag: 'allowed-hosts',
    env: 'GATEWAY_ALLOWED_HOSTS',
    default: '',
    help: "host names clients may call the gateway by, besides IP addresses, localhost, this machine's name and a --host name, comma-separated (shop.example, or .shop.example for a domain and its every name), or * for any; a request whose Host names another is 421 (a web page that rebinds its own name to the gateway's address cannot call it)",
    parse: parseAllowedHosts,
  }),
  statusClients: setting({
    flag: 'status-clients',
    env: 'GATEWAY_STATUS_CLIENTS',
    default: 'local',
    help: 'who may read the status page (/status, /status.json), which lists every node with its address: local (clients on this machine: loopback or its own addresses), or besides them IP addresses and networks, comma-separated (10.0.0.5,10.1.0.0/16), or * for any; another client is 403',
    parse: parseStatusClients,
  }),
  clientTraceContext: setting({
    flag: 'client-trace-context',
    env: 'GATEWAY_CLIENT_TRACE_CONTEXT',
    default: 'child',
    help: "what a client's traceparent does: child (the request joins the client's trace, sampled when the client says so, as W3C has it) or link (a gateway facing untrusted clients: every request starts a trace of its own, sampled by OTEL_TRACES_SAMPLER alone, with a span link to the client's span; the client's context goes no further)",
    parse: oneOf(CLIENT_TRACE_CONTEXTS),
  }),
  ...COMMON_SETTINGS,
} as const;

/** The gateway's validated configuration. */
export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  /** The distributor's address, "host:port". */
  readonly distributor: string;
  readonly deadlineMs: number;
  readonly bodyLimitBytes: number;
  /** Most REST connections open at once. */
  readonly maxConnections: number;
  /** Requests in flight at once on one connection. */
  readonly maxPipelined: number;
  /** Request body bytes held at once over all connections. */
  readonly bodyBudgetBytes: number;
  /** Lists longer than a page streamed at once. */
  readonly maxStreamedLists: number;
  /** How long a connection may hold answers its client takes nothing of. */
  readonly unreadAnswerTimeoutMs: number;
  /** After a distributor restart, how long missing instances are still routed to. */
  readonly restartGraceMs: number;
  /** On a stop signal, how long it serves on with /readyz at 503 before it stops. */
  readonly drainDelayMs: number;
  readonly logLevel: LogLevel;
  /** TLS of its gRPC side: calls to services (secure naming) and the registration. */
  readonly tls: TlsSettings | undefined;
  readonly registryToken: string | undefined;
  /** HTTPS of its REST side; undefined: plain HTTP. */
  readonly https: HttpsSettings | undefined;
  /** The origins allowed by CORS ("*": any); empty: no CORS. */
  readonly corsOrigins: readonly string[];
  /** Host names answered besides IP literals, localhost and the machine's name (see HostAllowlist). */
  readonly allowedHosts: readonly string[];
  /** Clients the status page answers besides this machine's (see StatusClients). */
  readonly statusClients: StatusClientsSetting;
  /** Metrics (served on its own port, at /metrics) and request ids. */
  readonly observability: ObservabilityConfig;
  /** Whether a client's trace context parents the request's span or is only linked to it. */
  readonly clientTraceContext: ClientTraceContext;
}

export const GATEWAY_USAGE = usageText('gateway', GATEWAY_SETTINGS);

/** Reads flags, then environment variables, then defaults; throws ConfigError on a bad value. */
export function loadGatewayConfig(argv: readonly string[], env: NodeJS.ProcessEnv): GatewayConfig {
  const values = loadSettings(GATEWAY_SETTINGS, argv, env);
  const { httpsCert, httpsKey, httpsClientCa } = values;
  if (!httpsCert !== !httpsKey) {
    throw new ConfigError(
      'GATEWAY_HTTPS_CERT / --https-cert and GATEWAY_HTTPS_KEY / --https-key go together: give both',
    );
  }
  // Raised to the limit unsaid, a budget below it ran with another value than the one given.
  if (values.bodyBudgetBytes < values.bodyLimitBytes) {
    throw new ConfigError(
      `${settingName(GATEWAY_SETTINGS.bodyBudgetBytes)}: expected at least --body-limit (${values.bodyLimitBytes} bytes), got ${values.bodyBudgetBytes} bytes`,
    );
  }
  if (httpsClientCa && !httpsCert) {
    throw new ConfigError(
      'GATEWAY_HTTPS_CLIENT_CA / --https-client-ca needs HTTPS: give --https-cert and --https-key',
    );
  }
  return Object.freeze({
    host: values.host,
    port: values.port,
    distributor: values.distributor,
    deadlineMs: values.deadlineMs,
    bodyLimitBytes: values.bodyLimitBytes,
    maxConnections: values.maxConnections,
    maxPipelined: values.maxPipelined,
    bodyBudgetBytes: values.bodyBudgetBytes,
    maxStreamedLists: values.maxStreamedLists,
    unreadAnswerTimeoutMs: values.unreadAnswerTimeoutMs,
    restartGraceMs: values.restartGraceMs,
    drainDelayMs: values.drainDelayMs,
    logLevel: values.logLevel,
    tls: tlsSettings(values, 'gateway'),
    registryToken: values.registryToken,
    corsOrigins: values.corsOrigins,
    allowedHosts: values.allowedHosts,
    statusClients: values.statusClients,
    https:
      httpsCert && httpsKey
        ? Object.freeze({
            certFile: httpsCert,
            keyFile: httpsKey,
            ...(httpsClientCa ? { clientCaFile: httpsClientCa } : {}),
          })
        : undefined,
    observability: observabilityConfig(values),
    clientTraceContext: values.clientTraceContext,
  });
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
};

/** Parses a size such as "1048576", "512KiB" or "1MiB" (K and M are binary: 1024 and 1024²); at least 1 byte. */
export function parseByteSize(value: string, source: string): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(value.trim());
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  const bytes = match && unit !== undefined ? Number(match[1]) * unit : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new ConfigError(
      `${source}: expected a size in bytes such as 1048576, 512KiB or 1MiB, got "${value}"`,
    );
  }
  return bytes;
}

const ORIGIN = /^https?:\/\/[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^https?:\/\/\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$/;

/**
 * Parses a comma-separated list of origins as browsers send them in `Origin` (scheme, host and port,
 * no path and no trailing slash), or "*" alone; empty (the default, or the variable set empty) is
 * none. A list of only empty members ("," or " , ") is refused: it reads as origins meant and lost
 * (a variable built from an empty one), and taken as none it turned CORS off without a word.
 */
export function parseOrigins(value: string, source: string): readonly string[] {
  if (value === '') return Object.freeze([]);
  const origins = value
    .split(',')
    .map((origin) => origin.trim())
    .filter((origin) => origin.length > 0);
  if (origins.length === 0) {
    throw new ConfigError(
      `${source}: "${value}" names no origin; give origins such as https://shop.example, or * for any, or leave it unset for no CORS`,
    );
  }
  if (origins.includes('*')) {
    if (origins.length > 1) throw new ConfigError(`${source}: "*" allows any origin and goes alone`);
    return Object.freeze(['*']);
  }
  return Object.freeze(
    origins.map((origin) => {
      const refusal = new ConfigError(
        `${source}: expected origins such as https://shop.example or http://localhost:3000 (scheme, host, optional port; no path), got "${origin}"`,
      );
      if (!ORIGIN.test(origin)) throw refusal;
      // Compared with Origin as browsers serialize it: host in lower case, no default port, IPv6
      // compressed. Kept as written, https://Shop.example or https://shop.example:443 matched no
      // request, and CORS was silently off for that page; a port past 65535 is refused here.
      try {
        return new URL(origin).origin;
      } catch {
        throw refusal;
      }
    }),
  );
}
