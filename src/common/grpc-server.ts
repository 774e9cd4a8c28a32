import { type ChannelOptions, type Server, ServerCredentials } from '@grpc/grpc-js';
import { formatHostPort } from './config.js';

/** How often and how patiently both sides ping an idle HTTP/2 connection. */
export interface KeepaliveOptions {
  /** Interval between pings. */
  timeMs: number;
  /** How long a ping may stay unanswered before the connection is dropped. */
  timeoutMs: number;
}

/**
 * Keepalive by default: a peer that vanished without closing its connection is noticed within about
 * 15 s (one ping interval plus its timeout), well inside the design's 30 s.
 */
export const DEFAULT_KEEPALIVE: KeepaliveOptions = { timeMs: 10_000, timeoutMs: 5_000 };

/** grpc-js channel or server options for a keepalive setting. */
export function keepaliveChannelOptions({ timeMs, timeoutMs }: KeepaliveOptions): ChannelOptions {
  return {
    'grpc.keepalive_time_ms': timeMs,
    'grpc.keepalive_timeout_ms': timeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
  };
}

/**
 * Binds a built server to host:port (0: any free port) with its credentials (plaintext by default)
 * and resolves with the port it got.
 */
export function listen(
  server: Server,
  host: string,
  port: number,
  credentials: ServerCredentials = ServerCredentials.createInsecure(),
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(formatHostPort({ host, port }), credentials, (error, boundPort) => {
      if (error) reject(error);
      else resolve(boundPort);
    });
  });
}

/**
 * Stops a server: new calls are refused at once, calls in flight get `graceMs` to finish, and
 * whatever is left after that is cancelled.
 */
export function shutdown(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.forceShutdown(), graceMs);
    force.unref();
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}
