import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, isIP, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { formatHostPort } from './config.js';
import { HostAllowlist, namesSeveralHosts } from './host-allowlist.js';
import { type HostLookup, lookupAll, lookupWithin } from './host-lookup.js';
import { httpEndpointUrl } from './http-endpoint.js';
import { type ListenSettings, listenFailure } from './listen-failure.js';
import { limiterOf } from './log-limiter.js';
import type { Logger } from './logger.js';
import { ADMIN_MAX_CONNECTIONS } from './max-connections.js';
import { type Registry, serveMetrics, sharedRender } from './metrics.js';
import { type ObservabilityConfig, unusedMetricsAllowedHosts } from './observability-settings.js';
import { type Setting, settingName } from './settings.js';

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
  /**
   * Host names it answers besides IP addresses, localhost and the machine's name, as
   * parseAllowedHosts gives them (default none), and their setting (--metrics-allowed-hosts), named
   * when a request is refused for its Host.
   */
  allowedHosts?: readonly string[];
  allowedHostsSetting?: Setting<unknown>;
  /**
   * Connections open at once, shared out evenly between the addresses it listens on (or waits
   * for); past its share, a new one on an address is closed at once (default ADMIN_MAX_CONNECTIONS).
   */
  maxConnections?: number;
  /**
   * How long a request may take to arrive whole, counted from the connection for the first, and
   * how long an answer may wait for its client to read (default ADMIN_IDLE_TIMEOUT_MS): a scraper
   * sends its request at once and reads what it asked for.
   */
  idleTimeoutMs?: number;
  /** How often a derived port that was taken is tried again (default ADMIN_PORT_RETRY_MS). */
  portRetryMs?: number;
  /**
   * The addresses to listen on when `host` is a name: those the component's gRPC port is bound on,
   * so that both listen on the same ones and the name is not looked up a second time at start (a
   * lookup that failed there left the component without metrics). Absent or empty: looked up.
   */
  addresses?: readonly string[];
  /** How a host name is resolved to the addresses to listen on (default the system's: lookupAll). */
  lookup?: HostLookup;
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

/** How messages name `--metrics-allowed-hosts` (the component's own variable, when known). */
function settingNameOf(setting: Setting<unknown> | undefined): string {
  return setting === undefined ? '--metrics-allowed-hosts' : settingName(setting);
}

/**
 * The answer to a Host the port is not known by (see host-allowlist.ts: DNS rebinding). A web page
 * on attacker.example whose name then resolves to this machine reads /metrics as a same-origin page:
 * over plain HTTP its browser sends neither `Sec-Fetch-Site` nor `Origin` on such a GET (Chromium
 * sends them only to HTTPS and localhost), so only `Host` tells it from a scraper. As on the
 * gateway's port, every request is judged by it: scrapers by IP address (most of Prometheus's
 * service discovery gives addresses), localhost or this machine's name need nothing.
 */
function hostRefusalText(setting: Setting<unknown> | undefined): string {
  return (
    `misdirected request: this metrics port does not answer to the host name in Host (a web page on another name that resolves here would be DNS rebinding): ` +
    `call it by IP address, localhost, this machine's name or its --host name, or add the name to ${settingNameOf(setting)}\n`
  );
}

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
  /** Closes it on each of its addresses, in order (scrapes in flight are cut). */
  stop(): Promise<void>;
}

/** The settings of a component that its admin server names in messages. */
export interface AdminServerSettings {
  readonly host: Setting<string>;
  readonly metricsPort: Setting<unknown>;
  readonly metricsAllowedHosts: Setting<unknown>;
}

/**
 * Starts the admin server a component's observability settings ask for, where its gRPC port
 * listens (see startAdminServer); undefined when they ask for none (no metrics port) or the
 * component counts nothing (no registry). Names listed for an admin port that none serves are
 * warned of (see unusedMetricsAllowedHosts).
 */
export async function startConfiguredAdminServer(
  observability: ObservabilityConfig | undefined,
  registry: Registry | undefined,
  {
    host,
    addresses,
    log,
    settings,
  }: {
    host: string;
    /** Where the gRPC port is bound (see AdminServerOptions.addresses). */
    addresses: readonly string[];
    log: Logger;
    settings: AdminServerSettings;
  },
): Promise<AdminServer | undefined> {
  const unusedHosts =
    observability && unusedMetricsAllowedHosts(observability, settingName(settings.metricsAllowedHosts));
  if (unusedHosts) log.warn({ event: 'metrics-allowed-hosts-unused' }, unusedHosts);
  if (observability?.metricsPort === undefined || !registry) return undefined;
  return startAdminServer({
    registry,
    host,
    addresses,
    port: observability.metricsPort,
    log,
    required: observability.metricsPortGiven,
    allowedHosts: observability.metricsAllowedHosts,
    allowedHostsSetting: settings.metricsAllowedHosts,
    settings: { port: settings.metricsPort, host: settings.host },
  });
}

/**
 * The HTTP admin server of a gRPC component (the distributor, each service): `GET /metrics` in
 * Prometheus's text format, on a port of its own beside the gRPC port (`--metrics-port`), since a
 * gRPC port speaks HTTP/2 only. It listens where the gRPC port does: on `host` when an IP address,
 * else on the addresses the gRPC port is bound on (`addresses`; looked up when not given), each
 * that it can bind (the others named in a warning, `metrics-unbound-address`), on one port. A
 * derived port that is taken is tried again every ADMIN_PORT_RETRY_MS until it is free (logged),
 * on each address where it was; resolves with undefined when it can be bound nowhere for another
 * reason (logged).
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer | undefined> {
  const { registry, host, port, log, required } = options;
  const idleTimeoutMs = options.idleTimeoutMs ?? ADMIN_IDLE_TIMEOUT_MS;
  // Scrapes at once share one render: the text is the same for each, and rendering is the cost.
  const render = sharedRender(registry);
  // The name it was told to listen on (--host) is one scrapers are meant to use.
  const knownNames = new HostAllowlist(options.allowedHosts ?? [], [
    hostname(),
    ...(isIP(host) === 0 ? [host] : []),
  ]);
  const hostRefusal = hostRefusalText(options.allowedHostsSetting);
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
    // Which of two hosts the list allowed is unknowable: a proxy in front may have judged the other.
    if (namesSeveralHosts(request)) {
      response.writeHead(400, { Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('bad request: more than one Host\n');
      return;
    }
    if (!knownNames.allows(request.headers.host)) {
      limiterOf(log).warn(
        'admin-host-not-allowed',
        { event: 'metrics-host-refused', host: String(request.headers.host).slice(0, 100) },
        `metrics port: a request named it by a host name it does not answer to, refused 421: if scrapers call it so, add that name to ${settingNameOf(options.allowedHostsSetting)}`,
      );
      response.writeHead(421, { Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8' });
      response.end(hostRefusal);
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
  const maxConnections = options.maxConnections ?? ADMIN_MAX_CONNECTIONS;
  /** A server for one address; the connections it holds are its share of maxConnections. */
  const serverFor = (share: number): Server => {
    const server = createServer(
      {
        // A request must arrive whole in this time, counted from the connection for the first: a
        // socket that sends nothing, or trickles, is cut (looked at every tenth of the time).
        headersTimeout: idleTimeoutMs,
        requestTimeout: idleTimeoutMs,
        connectionsCheckingInterval: Math.max(10, Math.round(idleTimeoutMs / 10)),
      },
      requestHandler,
    );
    server.maxConnections = share;
    // A scraper that cannot connect only sees its scrape fail: the log says why, once per interval.
    server.on('drop', () =>
      limiterOf(log).warn(
        'admin-port-full',
        { event: 'metrics-connection-refused', maxConnections: server.maxConnections },
        `metrics port: ${server.maxConnections} connections open, a new one is closed`,
      ),
    );
    // A scraper keeps its connection: nothing may hold the process open on stop.
    server.keepAliveTimeout = Math.min(5_000, idleTimeoutMs);
    // A client that stops reading an answer larger than the sockets' buffers (a page of megabytes)
    // would otherwise hold its connection, one of the few, for as long as it likes: after the idle
    // time with nothing read or written, the socket is destroyed.
    server.timeout = idleTimeoutMs;
    return server;
  };

  // The gRPC port's addresses are this machine's: one of them unbound here has its port taken.
  const grpcAddresses =
    isIP(host) === 0 && options.addresses?.length ? [...new Set(options.addresses)] : undefined;
  let addresses: readonly string[];
  try {
    addresses = grpcAddresses ?? (await addressesOf(host, options.lookup ?? lookupAll));
  } catch (error) {
    if (required) throw listenFailure(error, host, port, options.settings);
    // The host name is what failed, not the port: another port would fail as well.
    log.warn(
      { event: 'metrics-port', err: error, host, port },
      `metrics port ${port}: ${host} did not resolve (${error instanceof Error ? error.message : String(error)}): serving no metrics`,
    );
    return undefined;
  }
  // The open files the admin port may take are shared out between its addresses, so that the
  // budget the gRPC port's default room counts on (defaultGrpcMaxConnections) holds.
  const share = Math.max(1, Math.floor(maxConnections / addresses.length));
  const listeners: Listener[] = addresses.map((address) => ({ address, server: serverFor(share) }));
  const errors = await bindAll(listeners, port);
  const boundListeners = (): Listener[] => listeners.filter((listener) => listener.server.listening);
  let bound: number | undefined;
  const announce = (): void => {
    const address = boundListeners()[0]?.server.address();
    bound = typeof address === 'object' && address ? address.port : port;
    // Bracketed when IPv6, so that the URL opens as written (http://::1:9100 is no URL), and a
    // zone id as RFC 6874 writes it (httpEndpointUrl).
    log.info(
      {
        event: 'metrics',
        host,
        port: bound,
        ...(isIP(host) === 0 ? { addresses: boundListeners().map((listener) => listener.address) } : {}),
      },
      `metrics on ${httpEndpointUrl({ protocol: 'http', host, port: bound }, '/metrics')}`,
    );
  };
  const retryMs = options.portRetryMs ?? ADMIN_PORT_RETRY_MS;
  // A derived port taken on an address is tried again there (a process this one replaces may still
  // hold it); a port asked for, or another failure, is not.
  const waiting = required ? [] : listeners.filter((_, index) => codeOf(errors[index]) === 'EADDRINUSE');
  // An address that will never be bound (another machine's) keeps no share: the others have it.
  const serving = listeners.filter((listener) => listener.server.listening || waiting.includes(listener));
  for (const { server } of serving) {
    server.maxConnections = Math.max(1, Math.floor(maxConnections / serving.length));
  }
  const failed = listeners.filter(
    (listener, index) => errors[index] !== undefined && !listener.server.listening,
  );
  if (boundListeners().length === 0) {
    // Failing on each address, the failure that says most: an address of another machine is the
    // least telling when the name also names one of this machine where the port is taken.
    const error = errors.find((one) => one !== undefined && codeOf(one) !== 'EADDRNOTAVAIL') ?? errors[0];
    // As for --port: a port below 1024 without the privilege is bad configuration (exit 2), which the
    // launcher does not start again for ever, and the message names the setting to change.
    if (required) throw listenFailure(error, host, port, options.settings);
    if (waiting.length === 0) {
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
  } else {
    announce();
    if (failed.length > 0) {
      // As for the gRPC port (unbound-address): a name may also name another machine's address, or
      // one of this machine's where another process holds the port.
      const boundNow = boundListeners().map((listener) => listener.address);
      const unbound = failed.map((listener) => listener.address);
      log.warn(
        {
          event: 'metrics-unbound-address',
          host,
          port: bound,
          bound: boundNow,
          unbound,
          ...(waiting.length > 0 ? { retryInMs: retryMs } : {}),
        },
        `metrics port: ${grpcAddresses ? `the gRPC port of ${host} is bound on` : `${host} resolves to`} ${addresses.join(', ')}: listening on ${boundNow.map((one) => formatHostPort({ host: one, port: bound! })).join(', ')} only, ` +
          `not on ${unbound.join(', ')} (${grpcAddresses ? '' : 'not an address of this machine, or '}port ${bound} taken there)` +
          (waiting.length > 0
            ? `; trying ${waiting.map((one) => one.address).join(', ')} again every ${retryMs} ms`
            : ''),
      );
    }
  }
  let retry: NodeJS.Timeout | undefined;
  // A try under way when the stop comes: the stop waits for it, else a port bound just after the
  // stop would stay held (and the process with it).
  let retrying: Promise<void> | undefined;
  let stopped = false;
  if (waiting.length > 0) {
    // Node lets a server that failed to listen listen again; the timer holds no process open.
    retry = setInterval(() => {
      if (retrying) return;
      retrying = (async () => {
        for (const listener of [...waiting]) {
          if ((await listenOn(listener.server, listener.address, bound ?? port)) !== undefined) continue;
          waiting.splice(waiting.indexOf(listener), 1);
          if (stopped) continue;
          if (bound === undefined) announce();
          else {
            log.info(
              { event: 'metrics', host, port: bound, address: listener.address },
              `metrics on ${httpEndpointUrl({ protocol: 'http', host: listener.address, port: bound }, '/metrics')} too`,
            );
          }
        }
        if (waiting.length === 0) {
          clearInterval(retry);
          retry = undefined;
        }
      })();
      void retrying.finally(() => {
        retrying = undefined;
      });
    }, retryMs);
    retry.unref();
  }
  return {
    get port() {
      return bound ?? port;
    },
    stop: async () => {
      stopped = true;
      clearInterval(retry);
      retry = undefined;
      await retrying;
      // Each address in the order it was bound, as the gRPC port's.
      for (const { server } of listeners) await closeServer(server);
    },
  };
}

/** One address of the admin port, and the server listening there. */
interface Listener {
  readonly address: string;
  readonly server: Server;
}

/**
 * How often `--metrics-port 0` on a host name of several addresses picks a port again when the one
 * the first address got is taken on another: then it is free on all, unless the ports run short.
 */
const FREE_PORT_TRIES = 8;

/**
 * The addresses the admin port listens on: an IP address itself, a host name every address it
 * resolves to here, as grpc-js binds the gRPC port (Node's listen would take the first alone, and a
 * scraper given the name, or another of its addresses, found nothing there).
 */
async function addressesOf(host: string, lookup: HostLookup): Promise<readonly string[]> {
  if (isIP(host) !== 0) return [host];
  const addresses = [...new Set(await lookupWithin(lookup, host))];
  if (addresses.length === 0) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
  return addresses;
}

/**
 * Binds each listener on `port`, as grpc-js binds a port on several addresses: for 0, the first
 * that can be bound picks it and the others take the same; when it is taken on one of them, all
 * try again with another (up to FREE_PORT_TRIES), so that one port serves every address. Resolves
 * with each listener's error, undefined where it listens.
 */
async function bindAll(listeners: readonly Listener[], port: number): Promise<(Error | undefined)[]> {
  if (port !== 0 || listeners.length === 1) {
    return Promise.all(listeners.map(({ server, address }) => listenOn(server, address, port)));
  }
  for (let attempt = 1; ; attempt++) {
    const errors: (Error | undefined)[] = listeners.map(() => undefined);
    const first = await (async () => {
      for (const [index, { server, address }] of listeners.entries()) {
        errors[index] = await listenOn(server, address, 0);
        if (errors[index] === undefined) return index;
      }
      return undefined;
    })();
    if (first === undefined) return errors;
    const picked = (listeners[first]!.server.address() as AddressInfo).port;
    const rest = listeners.slice(first + 1);
    const restErrors = await Promise.all(
      rest.map(({ server, address }) => listenOn(server, address, picked)),
    );
    restErrors.forEach((error, offset) => {
      errors[first + 1 + offset] = error;
    });
    if (attempt === FREE_PORT_TRIES || !restErrors.some((error) => codeOf(error) === 'EADDRINUSE')) {
      return errors;
    }
    for (const { server } of listeners) await closeServer(server);
  }
}

/** Listens on address:port; resolves with the error when it cannot (the server may try again). */
function listenOn(server: Server, address: string, port: number): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const failed = (error: Error): void => resolve(error);
    server.once('error', failed);
    server.listen({ host: address, port }, () => {
      server.off('error', failed);
      resolve(undefined);
    });
  });
}

/** Closes a server if it listens, cutting its connections (scrapes in flight with them). */
async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function codeOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}
