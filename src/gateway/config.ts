import {
  ConfigError,
  formatHostPort,
  parseFlags,
  parseHostPort,
  parsePort,
  parseWholeNumber,
  pick,
} from '../common/config.js';

/** The gateway's validated configuration. */
export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  /** The distributor's address, "host:port". */
  readonly distributor: string;
  readonly deadlineMs: number;
  readonly bodyLimitBytes: number;
  readonly logLevel: string;
}

export const GATEWAY_USAGE = `usage: gateway [--port N] [--host ADDRESS] [--distributor HOST:PORT] [--deadline-ms N] [--body-limit SIZE]
  --port         GATEWAY_PORT         HTTP port to listen on; 0 picks a free one (default 8000)
  --host         GATEWAY_HOST         address to listen on (default 0.0.0.0)
  --distributor  DISTRIBUTOR_ADDRESS  the distributor to register with (default 127.0.0.1:9000)
  --deadline-ms  GATEWAY_DEADLINE_MS  deadline of every call to a service, in ms (default 5000)
  --body-limit   GATEWAY_BODY_LIMIT   largest request body: bytes, or with a KiB/MiB suffix (default 1MiB)
                 LOG_LEVEL            fatal, error, warn, info, debug or silent (default info)`;

/** Reads flags, then environment variables, then defaults; throws ConfigError on a bad value. */
export function loadGatewayConfig(argv: string[], env: NodeJS.ProcessEnv): GatewayConfig {
  const values = parseFlags(argv, ['port', 'host', 'distributor', 'deadline-ms', 'body-limit']);
  const port = parsePort(...pick(values.port, 'port', env, 'GATEWAY_PORT', '8000'));
  const [host] = pick(values.host, 'host', env, 'GATEWAY_HOST', '0.0.0.0');
  const distributor = formatHostPort(
    parseHostPort(...pick(values.distributor, 'distributor', env, 'DISTRIBUTOR_ADDRESS', '127.0.0.1:9000')),
  );
  const deadlineMs = parseWholeNumber(
    ...pick(values['deadline-ms'], 'deadline-ms', env, 'GATEWAY_DEADLINE_MS', '5000'),
    1,
  );
  const bodyLimitBytes = parseByteSize(
    ...pick(values['body-limit'], 'body-limit', env, 'GATEWAY_BODY_LIMIT', '1MiB'),
  );
  return Object.freeze({
    host,
    port,
    distributor,
    deadlineMs,
    bodyLimitBytes,
    logLevel: env.LOG_LEVEL || 'info',
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
