import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { limiterOf } from './log-limiter.js';
import type { Logger } from './logger.js';
import { type Registry, serveMetrics } from './metrics.js';

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions {
  /** The metrics to serve at `GET /metrics`. */
  registry: Registry;
  host: string;
  /** 0: any free port. */
  port: number;
  log: Logger;
  /**
   * Whether the port was asked for explicitly: then failing to bind it rejects, and the component
   * stops as for its own port. A port derived from `--port` that is taken only costs a warning.
   */
  required: boolean;
  /** Connections open at once; past it, a new one is closed at once (default ADMIN_MAX_CONNECTIONS). */
  maxConnections?: number;
  /**
   * How long a request may take to arrive whole, counted from the connection for the first (default
   * ADMIN_IDLE_TIMEOUT_MS): a scraper sends its request at once.
   */
  idleTimeoutMs?: number;
}

/**
 * Connections the admin port holds at once: a few Prometheus servers and an operator's curl need a
 * handful. The port shares the process's open files with the gRPC port, whose connection room
 * counts only its own: without a bound, sockets opened here and left silent took every file the
 * process may open, and the gRPC port could accept no connection (found by probing).
 */
export const ADMIN_MAX_CONNECTIONS = 32;

/** How long an admin connection may stay silent, or a request take to arrive whole. */
export const ADMIN_IDLE_TIMEOUT_MS = 10_000;

const METRICS_METHODS = 'GET, HEAD, OPTIONS';

/** A running admin server. */
export interface AdminServer {
  /** The port it got. */
  readonly port: number;
  /** Closes it (scrapes in flight are cut). */
  stop(): Promise<void>;
}

/**
 * The HTTP admin server of a gRPC component (the distributor, each service): `GET /metrics` in
 * Prometheus's text format, on a port of its own beside the gRPC port (`--metrics-port`), since a
 * gRPC port speaks HTTP/2 only. Resolves with undefined when a derived port is taken (logged).
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer | undefined> {
  const { registry, host, port, log, required } = options;
  const idleTimeoutMs = options.idleTimeoutMs ?? ADMIN_IDLE_TIMEOUT_MS;
  const requestHandler = (request: IncomingMessage, response: ServerResponse): void => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      if (request.method === 'GET' || request.method === 'HEAD') {
        serveMetrics(registry, response);
      } else if (request.method === 'OPTIONS') {
        response.writeHead(204, { Allow: METRICS_METHODS });
        response.end();
      } else {
        response.writeHead(405, { Allow: METRICS_METHODS, 'Content-Type': 'text/plain; charset=utf-8' });
        response.end(`method not allowed: /metrics answers ${METRICS_METHODS}\n`);
      }
      return;
    }
    response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    response.end('not found: this admin port serves GET /metrics\n');
  };
  const server: Server = createServer(
    {
      // A request must arrive whole in this time, counted from the connection for the first: a
      // socket that sends nothing, or trickles, is cut (looked at every tenth of the time).
      headersTimeout: idleTimeoutMs,
      requestTimeout: idleTimeoutMs,
      connectionsCheckingInterval: Math.max(10, Math.round(idleTimeoutMs / 10)),
    },
    requestHandler,
  );
  const maxConnections = options.maxConnections ?? ADMIN_MAX_CONNECTIONS;
  server.maxConnections = maxConnections;
  // A scraper that cannot connect only sees its scrape fail: the log says why, once per interval.
  server.on('drop', () =>
    limiterOf(log).warn(
      'admin-port-full',
      { event: 'metrics-connection-refused', maxConnections },
      `metrics port: ${maxConnections} connections open, a new one is closed`,
    ),
  );
  // A scraper keeps its connection: nothing may hold the process open on stop.
  server.keepAliveTimeout = Math.min(5_000, idleTimeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    if (required) throw new Error(`cannot serve metrics on ${host}:${port}: ${(error as Error).message}`);
    log.warn(
      { event: 'metrics-port', err: error, port },
      `metrics port ${port} is not free: serving no metrics (set --metrics-port to choose one, or 0 for any)`,
    );
    return undefined;
  }
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  log.info({ event: 'metrics', host, port: bound }, `metrics on http://${host}:${bound}/metrics`);
  return {
    port: bound,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
