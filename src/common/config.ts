import { isIP } from 'node:net';

/** A configuration value that is missing or malformed; the message says what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** A host and a port, as in "127.0.0.1:9000" or "[::1]:9000". */
export interface HostPort {
  host: string;
  port: number;
}

/** Parses a TCP port; 0 means "any free port". */
export function parsePort(value: string, source: string): number {
  const port = parseWholeNumber(value, source);
  if (port > 65535) throw new ConfigError(`${source}: expected a port from 0 to 65535, got "${value}"`);
  return port;
}

/** Parses a whole number of at least `min`. */
export function parseWholeNumber(value: string, source: string, min = 0): number {
  const trimmed = value.trim();
  const number = /^\d+$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min) {
    throw new ConfigError(`${source}: expected a whole number of at least ${min}, got "${value}"`);
  }
  return number;
}

/** Parses "host:port" (IPv6 hosts in brackets); the port must not be 0. */
export function parseHostPort(value: string, source: string): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(value.trim());
  const host = match?.[1] ?? match?.[2];
  if (!match || !host || (match[1] !== undefined && isIP(match[1]) !== 6)) {
    throw new ConfigError(`${source}: expected host:port (e.g. 127.0.0.1:9000), got "${value}"`);
  }
  const port = parsePort(match[3]!, source);
  if (port === 0) throw new ConfigError(`${source}: the port must not be 0`);
  return { host, port };
}

/** Formats a host and port for grpc-js and logs, bracketing IPv6 literals. */
export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
