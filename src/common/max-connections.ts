import { ConfigError, MAX_DURATION_MS, parseWholeNumber } from './config.js';
import { openFileLimit } from './open-file-limit.js';
import { type Setting, setting } from './settings.js';
import { DEFAULT_UNREAD_ANSWER_TIMEOUT_MS } from './unread-answer-watch.js';

/** The connection limit when the open-file limit is unknown. */
const FALLBACK_MAX_CONNECTIONS = 10_000;

/**
 * The default connection limit of a server: three quarters of the process's open-file limit, so
 * that a flood of idle sockets cannot take the descriptors the process needs for its channels, its
 * database, its logs and the connections it serves; 10,000 where the open-file limit cannot be read.
 */
export function defaultMaxConnections(): number {
  const files = openFileLimit();
  return files === undefined ? FALLBACK_MAX_CONNECTIONS : Math.max(1, Math.floor((files * 3) / 4));
}

/** Parses a connection limit: a whole number of at least 1, or "auto" (see defaultMaxConnections). */
export function parseMaxConnections(value: string, source: string): number {
  if (value.trim().toLowerCase() === 'auto') return defaultMaxConnections();
  if (!/^\s*\d+\s*$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new ConfigError(
      `${source}: expected a number of connections of at least 1, or auto, got "${value}"`,
    );
  }
  return Number(value);
}

/** `--max-connections` of a gRPC server (the distributor, a service), read from `env`. */
export function grpcMaxConnectionsSetting(env: string): Setting<number> {
  return setting({
    flag: 'max-connections',
    env,
    default: 'auto',
    defaultText: 'auto: ¾ of the open-file limit',
    help: 'most connections to the gRPC port open at once (and a tenth more, 4 to 64, waiting up to 10 s for their first call when every one has a call open); past it one with no call open is closed to make room (one that never called first, of the address of the new one, or of the address with the most); when every connection has a call open, at the first call of the new one, the newest of the address holding the most if it holds more than the address of the new one (an IPv6 address counts by its /64), else the new one. A connection with no call for 5 minutes is closed (GOAWAY)',
    parse: parseMaxConnections,
  });
}

/** `--unread-answer-timeout-ms` of a gRPC server (the distributor, a service), read from `env`. */
export function grpcUnreadAnswerTimeoutSetting(env: string): Setting<number> {
  return setting({
    flag: 'unread-answer-timeout-ms',
    env,
    default: String(DEFAULT_UNREAD_ANSWER_TIMEOUT_MS),
    help: 'how long a call may hold an answer its client takes nothing of (no write of the call going, less than 16 KiB passed on its connection) before the call is reset (RST_STREAM), in ms; four times as long however busy its connection',
    parse: (value, source) => parseWholeNumber(value, source, 100, MAX_DURATION_MS),
  });
}
