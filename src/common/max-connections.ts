import { ConfigError, MAX_DURATION_MS, parseWholeNumber } from './config.js';
import { waitingRoom } from './connection-room.js';
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

/**
 * Connections the admin port (`--metrics-port`) of a gRPC component holds at once, past which a new
 * one is closed (admin-server.ts): a few Prometheus servers and an operator's curl need a handful.
 * The port shares the process's open files with the gRPC port: without a bound, sockets opened there
 * and left silent took every file the process may open (found by probing). Here, not in
 * admin-server.ts, so that the gRPC ports' default room (below) can count them.
 */
export const ADMIN_MAX_CONNECTIONS = 32;

/**
 * The default connection limit of each address a gRPC server (a service, the distributor) is bound
 * on: the largest room such that the descriptors a flood of sockets can hold, over every address
 * (each room, the connections waiting past it for their first call, and the one Node accepts past
 * both to close it: see listen in grpc-server.ts) and the admin port's ADMIN_MAX_CONNECTIONS, stay
 * within three quarters of the open-file limit. Before, each address had three quarters of it to
 * itself, and the waiting room and the admin port came on top: at a limit of 1,024 a host name
 * bound on two addresses (`localhost` where it names 127.0.0.1 and ::1) let silent sockets take
 * every descriptor, and at 128 one address did, so that no client could connect, the service could
 * open no database connection (database-down), and no scrape got through, until the flood stopped.
 */
export function defaultGrpcMaxConnections(addresses: number, files = openFileLimit()): number {
  if (files === undefined) return FALLBACK_MAX_CONNECTIONS;
  const budget = Math.floor((files * 3) / 4) - ADMIN_MAX_CONNECTIONS;
  const held = (room: number): number => Math.max(1, addresses) * (room + waitingRoom(room) + 1);
  let room = Math.floor(budget / Math.max(1, addresses));
  // The waiting room is at most 64 and the stop one more: a bounded walk down.
  while (room > 1 && held(room) > budget) room--;
  return Math.max(1, room);
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

/**
 * `--max-connections` of a gRPC server (the distributor, a service), read from `env`; undefined
 * for auto, whose number depends on how many addresses the port is bound on (see
 * defaultGrpcMaxConnections).
 */
export function grpcMaxConnectionsSetting(env: string): Setting<number | undefined> {
  return setting<number | undefined>({
    flag: 'max-connections',
    env,
    default: 'auto',
    defaultText:
      'auto: what keeps every address bound, with its waiting room, and the admin port within ¾ of the open-file limit',
    help: 'most connections to the gRPC port open at once, on each address it is bound on (and a tenth more, 4 to 64, waiting up to 10 s for their first call when every one has a call open); past it one with no call open is closed to make room (one that never called first, of the address of the new one, or of the address with the most); when every connection has a call open, at the first call of the new one, the newest of the address holding the most if it holds more than the address of the new one (an IPv6 address counts by its /64), else the new one. A connection with no call for 5 minutes is closed (GOAWAY)',
    parse: (value, source) =>
      value.trim().toLowerCase() === 'auto' ? undefined : parseMaxConnections(value, source),
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
