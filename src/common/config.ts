import { isIP } from 'node:net';

/** A configuration value that is missing or malformed; the message says what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /**
   * Whether the usage is printed after the message: it helps with a malformed setting, not with a
   * file or folder a well-formed setting names that cannot be used (where it would bury the reason).
   */
  readonly showUsage: boolean;

  constructor(message: string, options?: ErrorOptions & { showUsage?: boolean }) {
    super(message, options);
    this.showUsage = options?.showUsage ?? true;
  }
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
export function parseWholeNumber(
  value: string,
  source: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const trimmed = value.trim();
  const number = /^\d+$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min) {
    throw new ConfigError(`${source}: expected a whole number of at least ${min}, got "${value}"`);
  }
  if (number > max) throw new ConfigError(`${source}: expected at most ${max}, got "${value}"`);
  return number;
}

/**
 * The longest time in ms a duration setting takes: an hour, far inside what a Node.js timer holds
 * (2^31 - 1 ms; a longer one fires at once, with a warning).
 */
export const MAX_DURATION_MS = 3_600_000;

/** Parses "host:port" (IPv6 hosts in brackets); the port must not be 0. */
export function parseHostPort(value: string, source: string): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(value.trim());
  const host = match?.[1] ?? match?.[2];
  if (!match || !host || (match[1] !== undefined && isIP(match[1]) !== 6)) {
    // "fd00::1:9000" cannot be told from an address: an IPv6 host goes in brackets, as in URLs.
    const bracketsHint =
      (value.match(/:/g)?.length ?? 0) > 1 && !value.includes('[')
        ? ', an IPv6 address in brackets ([fd00::1]:9000)'
        : '';
    throw new ConfigError(
      `${source}: expected host:port (e.g. 127.0.0.1:9000${bracketsHint}), got "${value}"`,
    );
  }
  // Checked as --host is: "999.1.1.1:9000" or "127.0.0.1 :9000" started, then failed name
  // resolution and retried for ever, the component up but never registered.
  if (match[2] !== undefined && !isHostNameOrAddress(host)) {
    throw new ConfigError(`${source}: expected a host name or an IP address before the port, got "${value}"`);
  }
  const port = parsePort(match[3]!, source);
  if (port === 0) throw new ConfigError(`${source}: the port must not be 0`);
  return { host, port };
}

/** A DNS name's labels (underscores too: container and compose service names use them). */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/**
 * A host to listen on or to be reached at: an IPv4 or IPv6 address (bracketed or not), or a host
 * name. Digits and dots alone must make an IPv4 address: "999.1.1.1" is a typo, not a name.
 */
export function parseHost(value: string, source: string): string {
  const host = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (!isHostNameOrAddress(host)) {
    throw new ConfigError(`${source}: expected a host name or an IP address, got "${value}"`);
  }
  return host;
}

/** Whether `host` (not bracketed) is an IPv4 or IPv6 address or a host name, as {@link parseHost} takes it. */
export function isHostNameOrAddress(host: string): boolean {
  return isIP(host) !== 0 || (HOST_NAME.test(host) && !/^[0-9.]+$/.test(host));
}

/** Formats a host and port for grpc-js and logs, bracketing IPv6 literals. */
export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
