import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { formatHostPort } from './config.js';
import { type ListenSettings, listenFailure } from './listen-failure.js';
import { limiterOf } from './log-limiter.js';
import type { Logger } from './logger.js';
import { ADMIN_MAX_CONNECTIONS } from './max-connections.js';
import { type Registry, serveMetrics, sharedRender } from './metrics.js';

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
  /** Its port's setting (--metrics-port) and its host's, named when a port asked for cannot be bound. */
  settings: ListenSettings;
  /** Connections open at once; past it, a new one is closed at once (default ADMIN_MAX_CONNECTIONS). */
  maxConnections?: number;
  /**
   * How long a request may take to arrive whole, counted from the connection for the first, and
   * how long an answer may wait for its client to read (default ADMIN_IDLE_TIMEOUT_MS): a scraper
   * sends its request at once and reads what it asked for.
   */
  idleTimeoutMs?: number;
  /** How often a derived port that was taken is tried again (default ADMIN_PORT_RETRY_MS). */
  portRetryMs?: number;
}

/** How long an admin connection may stay silent, or a request take to arrive whole. */
export const ADMIN_IDLE_TIMEOUT_MS = 10_000;

/**
 * Requests of one connection in flight at once (received, their answers not yet finished). A scraper
 * asks once and waits; Node parses every request a client pipelines and hands each over at once, so
 * without a bound one write of 40,000 `GET /metrics` rendered the metrics thousands of times back to
 * back: the event loop stalled (the distributor dropped every registration stream) and the process
 * grew by hundreds of MB. The gateway bounds its own pipelining the same way (`--max-pipelined`).
 */
export const ADMIN_MAX_PIPELINED = 4;

const METRICS_METHODS = 'GET, HEAD, OPTIONS';

/**
 * How often a derived metrics port that was taken at start is tried again. A component restarted in
 * place starts while the process it replaces still stops: that one closes its gRPC port first and
 * its metrics port last, so the new one bound its gRPC port and found the metrics port taken, and
 * served no metrics for the rest of its life.
 */
export const ADMIN_PORT_RETRY_MS = 5_000;

/** A running admin server. */
export interface AdminServer {
  /** The port it got (a derived port that was taken: the port it waits for, never 0). */
  readonly port: number;
  /** Closes it (scrapes in flight are cut). */
  stop(): Promise<void>;
}

/**
 * The HTTP admin server of a gRPC component (the distributor, each service): `GET /metrics` in
 * Prometheus's text format, on a port of its own beside the gRPC port (`--metrics-port`), since a
 * gRPC port speaks HTTP/2 only. A derived port that is taken is tried again every
 * ADMIN_PORT_RETRY_MS until it is free (logged); resolves with undefined when one cannot be bound
 * for another reason (logged).
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer | undefined> {
  const { registry, host, port, log, required } = options;
  const idleTimeoutMs = options.idleTimeoutMs ?? ADMIN_IDLE_TIMEOUT_MS;
  // Scrapes at once share one render: the text is the same for each, and rendering is the cost.
  const render = sharedRender(registry);
  // Per connection: its requests whose answers have not finished, and whether it was refused.
  const inFlight = new WeakMap<Socket, number>();
  const refused = new WeakSet<Socket>();
  const requestHandler = (request: IncomingMessage, response: ServerResponse): void => {
    const socket = request.socket;
    if (refused.has(socket)) return; // parsed from the same read as the refused one: dropped with the socket
    const count = (inFlight.get(socket) ?? 0) + 1;
    inFlight.set(socket, count);
    response.once('close', () => inFlight.set(socket, (inFlight.get(socket) ?? 1) - 1));
    if (count > ADMIN_MAX_PIPELINED) {
      // Answered 503 rather than cut, as the gateway does, so that whoever pipelines sees why (the
      // answers before it still go, in order); then the connection closes. The socket is no longer
      // read, so what else it wrote is never parsed; requests already parsed from the same read are
      // left unanswered (above) and go with the socket, which closes once the 503 is written.
      refused.add(socket);
      socket.pause();
      limiterOf(log).warn(
        'admin-pipelined',
        { event: 'metrics-pipelining-refused', maxPipelined: ADMIN_MAX_PIPELINED },
        `metrics port: a connection pipelined more than ${ADMIN_MAX_PIPELINED} requests, it is closed`,
      );
      response.writeHead(503, { Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8' });
      response.end(
        `too many pipelined requests: this admin port answers ${ADMIN_MAX_PIPELINED} at once per connection\n`,
      );
      return;
    }
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      if (request.method === 'GET' || request.method === 'HEAD') {
        serveMetrics(registry, response, render);
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
  // A client that stops reading an answer larger than the sockets' buffers (a page of megabytes)
  // would otherwise hold its connection, one of the few, for as long as it likes: after the idle
  // time with nothing read or written, the socket is destroyed.
  server.timeout = idleTimeoutMs;
  const listen = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  let bound: number | undefined;
  const announce = (): void => {
    const address = server.address();
    bound = typeof address === 'object' && address ? address.port : port;
    // Bracketed when IPv6, so that the URL opens as written (http://::1:9100 is no URL).
    log.info(
      { event: 'metrics', host, port: bound },
      `metrics on http://${formatHostPort({ host, port: bound })}/metrics`,
    );
  };
  const retryMs = options.portRetryMs ?? ADMIN_PORT_RETRY_MS;
  let retry: NodeJS.Timeout | undefined;
  // A try under way when the stop comes: the stop waits for it, else a port bound just after the
  // stop would stay held (and the process with it).
  let retrying: Promise<void> | undefined;
  let stopped = false;
  try {
    await listen();
  } catch (error) {
    // As for --port: a port below 1024 without the privilege is bad configuration (exit 2), which the
    // launcher does not start again for ever, and the message names the setting to change.
    if (required) throw listenFailure(error, host, port, options.settings);
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
      log.warn(
        { event: 'metrics-port', err: error, port },
        `metrics port ${port} cannot be bound: serving no metrics (set --metrics-port to choose one, or 0 for any)`,
      );
      return undefined;
    }
    log.warn(
      { event: 'metrics-port', err: error, port, retryInMs: retryMs },
      `metrics port ${port} is not free: serving no metrics until it is, trying again every ${retryMs} ms (a process this one replaces may still hold it; set --metrics-port to choose another, or 0 for any)`,
    );
    // Node lets a server that failed to listen listen again; the timer holds no process open.
    retry = setInterval(() => {
      if (retrying) return;
      retrying = listen().then(
        () => {
          clearInterval(retry);
          retry = undefined;
          if (!stopped) announce();
        },
        () => {},
      );
      void retrying.finally(() => {
        retrying = undefined;
      });
    }, retryMs);
    retry.unref();
  }
  if (retry === undefined) announce();
  return {
    get port() {
      return bound ?? port;
    },
    stop: async () => {
      stopped = true;
      clearInterval(retry);
      retry = undefined;
      await retrying;
      if (!server.listening) return;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
