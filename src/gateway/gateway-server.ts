import type { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { BackoffOptions } from '../common/backoff.js';
import { DEFAULT_KEEPALIVE, type KeepaliveOptions, keepaliveChannelOptions } from '../common/grpc-server.js';
import { HostAllowlist } from '../common/host-allowlist.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { defaultMaxConnections } from '../common/max-connections.js';
import {
  channelCredentials,
  channelCredentialsByName,
  secureNamingChannelOptions,
  type TlsFiles,
} from '../common/tls.js';
import { tlsProblemLog } from '../common/tls-problem-log.js';
import { DEFAULT_UNREAD_ANSWER_TIMEOUT_MS } from '../common/unread-answer-watch.js';
import { NodeState } from '../gen/distributor.js';
import { RegistrationClient } from '../registry-client/registration-client.js';
import { RestartGrace } from '../registry-client/restart-grace.js';
import { AnswerWriter } from './answer-writer.js';
import { ApiDocs } from './api-docs.js';
import { BodyBudget } from './body-reader.js';
import { Cors } from './cors.js';
import { Dispatcher } from './dispatcher.js';
import { ExchangeIntake } from './exchange-intake.js';
import { GatewayTelemetry, type GatewayTelemetryOptions } from './gateway-telemetry.js';
import { HttpFront } from './http-front.js';
import { InstancePool } from './instance-pool.js';
import { MethodAnswers } from './method-answers.js';
import { OwnPages } from './own-pages.js';
import { RequestPipeline } from './request-pipeline.js';
import { type RouteInfo, RouteTable } from './route-table.js';
import { operationsOfRoutes } from './route-table-operations.js';
import { StatusClients, type StatusClientsSetting } from './status-clients.js';
import { upstreamKeyOfNode } from './upstream.js';
import { upstreamEventLog } from './upstream-event-log.js';

/**
 * How long a route no instance serves keeps the gateway not ready by default: a restart of its
 * service takes seconds, and the status page shows a node gone for as long.
 */
export const UNSERVED_ROUTE_READY_AFTER_MS = 60_000;

/** Options of {@link createGateway}; every one but `distributor` has a default fit for production. */
export interface GatewayOptions {
  /** The distributor's address, "host:port". */
  distributor: string;
  log?: Logger;
  /** The deadline of every upstream call, retry included. Default 5000. */
  deadlineMs?: number;
  /** The largest request body read. Default 1 MiB. */
  bodyLimitBytes?: number;
  /**
   * The bytes of request bodies held at once, across every request (at least the body limit): a
   * body that does not fit is answered 503 with Retry-After. Default 32 MiB.
   */
  bodyBudgetBytes?: number;
  /**
   * Most REST connections open at once; past it the longest idle connection is closed to make room,
   * or, when none is idle, the new one is answered 503 (see ConnectionTracker). Default: ¾ of the
   * process's open-file limit.
   */
  maxConnections?: number;
  /**
   * After a distributor restart, how long instances of the last snapshot that have not registered
   * again are still routed to (see RestartGrace), and how long the gateway stays ready without the
   * distributor, routing from its last list meanwhile. Default 7000; 0 turns both off.
   */
  restartGraceMs?: number;
  /**
   * How long a route no instance serves keeps /readyz at 503 (see GatewayHealth.readiness).
   * Default {@link UNSERVED_ROUTE_READY_AFTER_MS}.
   */
  unservedRouteReadyAfterMs?: number;
  /**
   * How long a connection to an instance may take before a new one is tried; an instance out of
   * reach this long more (or at all, once a connection to it went silent) is passed over, and a
   * route whose every instance is so answered 503 at once (see InstancePoolOptions.connectTimeoutMs
   * and outOfReach). Default 10,000
   * (UPSTREAM_CONNECT_TIMEOUT_MS).
   */
  upstreamConnectTimeoutMs?: number;
  /**
   * Backoff between tries of a move of an instance's calls to a connection made with the renewed
   * certificate, after one failed (see InstancePool.renewConnections); MOVE_RETRY by default.
   */
  upstreamMoveRetry?: BackoffOptions;
  /** The host registered with the distributor; empty (default): the address it sees. */
  advertiseHost?: string;
  /** The `Retry-After` of temporary failures, in seconds. Default 1. */
  retryAfterSeconds?: number;
  /**
   * Requests one connection may have in flight at once (HTTP/1.1 pipelining): past it, a request is
   * answered 503 and the connection closed. Default 16.
   */
  maxPipelinedRequests?: number;
  /**
   * Lists longer than one page streamed at once (each holds about two pages of up to 1 MiB): past
   * it, such a list is answered 503 with Retry-After. Default 16.
   */
  maxStreamedLists?: number;
  /** How long an idle keep-alive connection stays open. Default 5000. */
  keepAliveTimeoutMs?: number;
  /** How long a client may take to send a request's headers. Default 10000. */
  headersTimeoutMs?: number;
  /** How long a client may take to send a whole request. Default 30000. */
  requestTimeoutMs?: number;
  /**
   * How long a connection may hold answers its client does not take (no write completing while
   * more than its socket's buffer is waiting, or no 64 KiB slice of a streamed list) before it is
   * closed. Default 30000.
   */
  unreadAnswerTimeoutMs?: number;
  /** How long stop() waits for requests in flight before closing their connections. Default deadline + 1 s, 7 s at most. */
  stopGraceMs?: number;
  /**
   * How long drain() serves on with /readyz at 503 and every routed answer closing its connection, so that a
   * load balancer that polls /readyz sends no more before the gateway stops taking connections.
   * Default 0: drain() ends at once.
   */
  drainDelayMs?: number;
  /** gRPC keepalive of the channels to services and to the distributor. */
  keepalive?: KeepaliveOptions;
  /** Reconnection backoff of the registration with the distributor. */
  registrationBackoff?: BackoffOptions;
  /**
   * TLS of the gRPC side: the gateway's certificate (presented to mTLS servers) and the CA it checks
   * servers against. Every service must then present a certificate naming the component it
   * registered as (secure naming), and the distributor one naming "distributor". Plaintext without.
   */
  tls?: TlsFiles;
  /** How often the files of `tls` are read again; default DEFAULT_TLS_REFRESH_MS (tests shorten it). */
  tlsRefreshIntervalMs?: number;
  /** The registration token, sent on the Register stream. */
  registryToken?: string;
  /** HTTPS for REST clients: certificate and key, and a CA file to require client certificates. */
  https?: TlsFiles;
  /** How often the files of `https` are read again; default DEFAULT_TLS_REFRESH_MS. */
  httpsRefreshIntervalMs?: number;
  /**
   * The origins whose browser pages may call the REST API ("scheme://host[:port]", or "*" for any):
   * CORS headers and preflights for them (see Cors). Empty (default): no CORS.
   */
  corsOrigins?: readonly string[];
  /**
   * Host names the gateway answers besides IP literals, localhost, this machine's name and the name
   * it listens on (as parseAllowedHosts gives them: names, `.domain`, or `*` for any): a request
   * whose Host names another is 421 (see host-allowlist.ts: DNS rebinding). Default: none.
   */
  allowedHosts?: readonly string[];
  /**
   * Clients the status page (/status, /status.json) answers besides those on this machine (as
   * parseStatusClients gives them: addresses and networks, or "any"); any other is 403 (see
   * status-clients.ts). Default: this machine's alone.
   */
  statusClients?: StatusClientsSetting;
  /** Request ids, metrics and the process's own metrics (see gateway-telemetry.ts); ids and metrics on by default. */
  observability?: GatewayTelemetryOptions;
}

/** The part of the gateway's status (GET /status.json) the launcher reads to tell when the shop is ready. */
export interface SupervisorStatus {
  readonly registered: boolean;
  readonly nodes: ReadonlyArray<{
    id: string;
    name: string;
    state: string;
    address: string;
    registeredAt: string | null;
    kept?: boolean;
    connected?: boolean;
    unreachableSeconds?: number;
    outOfReach?: boolean;
  }>;
  readonly routes: ReadonlyArray<{ listed: boolean; serving: readonly string[] }>;
}

/** A gateway built but not yet listening. */
export interface Gateway {
  /**
   * Binds host:port (0: any free port), then registers with the distributor under the port it got
   * and routes from the snapshots it receives. Resolves with the port, without waiting for the
   * distributor: until the first snapshot every request is answered 503.
   */
  listen(host: string, port: number): Promise<number>;
  /**
   * For `drainDelayMs`, goes on serving every request as before while /readyz answers 503 (the
   * gateway is stopping) and every answer to a routed request says `Connection: close`, so that clients and a load
   * balancer move to other gateways; then resolves. A stop() meanwhile ends it. Safe to call more
   * than once.
   */
  drain(): Promise<void>;
  /** Ends a drain in progress at once, so that the stop goes on; false when there is none. */
  endDrain(): boolean;
  /**
   * Stops in order: no new connections, requests in flight finish (up to `stopGraceMs`, then their
   * connections are closed and their upstream calls cancelled), channels to services close, and the
   * registration ends. Safe to call more than once.
   */
  stop(): Promise<void>;
  /** The routes known now and their instances. */
  routes(): RouteInfo[];
  /**
   * What the launcher reads of the status page's data (GatewayStatusView in the launcher), without
   * the rates: its answer to the supervisor's status question (answerStatusQuestions).
   */
  supervisorStatus(): SupervisorStatus;
  /** The revision of the last snapshot applied, undefined before the first. */
  readonly revision: number | undefined;
  /**
   * The registration with the distributor, from the moment listen() resolves: its 'refused' event
   * says the distributor refused the gateway for good, so that it will never learn a route.
   */
  readonly registration: RegistrationClient | undefined;
}

const MIB = 1024 * 1024;
/** The HTTP/2 flow-control window of the channels to the services (connection and stream). */
const UPSTREAM_FLOW_CONTROL_WINDOW = MIB;
/**
 * The longest wait between two attempts to connect to an instance that fails to connect: grpc-js's
 * default grows to 2 minutes, for that long an instance back at a listed address would be passed
 * over (route-table.ts) while another serves. An attempt every 10 s to an address down costs nothing.
 */
const UPSTREAM_MAX_RECONNECT_BACKOFF_MS = 10_000;
/**
 * How the gateway tries its distributor again: at least once a second, not a service's up to 5 s.
 * Its readiness holds for --restart-grace-ms from the loss, so a gateway that had backed off to 5 s
 * while a distributor took 5 s to restart came back after the grace, and its load balancer took it
 * out for the seconds between (probe 154). A few gateways trying each second cost the distributor
 * nothing.
 */
const DISTRIBUTOR_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 1_000 };
/**
 * Builds the HTTP gateway: the book's REST surface on HTTP/1.1 with keep-alive, routed to gRPC
 * services from what they register with the distributor. It knows no service: a service that
 * registers a new route is reachable at once, without restarting the gateway.
 *
 * Per request: match the method and path (query excluded) against the routes' templates → give the
 * request its key (a counter from 0, per process, for requests that match a route) → read the body
 * (a JSON or form body for POST/PUT/PATCH, or for a route whose HttpRule takes one) → pick a serving
 * instance round robin → build the request message from path, query and body as the route's
 * HttpRule says → call with a deadline → render the book's envelope. See status-mapping.ts and
 * gateway-error.ts for every answer that is not a success.
 *
 * HTTP as clients expect it: HEAD is GET without the body (same status and headers); a path that
 * routes for other methods is 405 with `Allow`; OPTIONS answers 204 with `Allow` (for `OPTIONS *`,
 * every method the gateway answers somewhere), and is the CORS preflight for the allowed origins (see Cors).
 */
export function createGateway(options: GatewayOptions): Gateway {
  return new GatewayServer(options);
}

class GatewayServer implements Gateway {
  readonly #options: GatewayOptions;
  readonly #log: Logger;
  readonly #restartGraceMs: number;
  /** How long stop() waits for requests in flight (see GatewayOptions.stopGraceMs). */
  readonly #stopGraceMs: number;
  /** The listening side: the server, its connections and what answers on their sockets (http-front.ts). */
  readonly #front: HttpFront;
  readonly #pool: InstancePool;
  /** To the distributor: made at construction, so that unreadable certificate files stop the start. */
  readonly #distributorCredentials: ChannelCredentials;
  readonly #table: RouteTable;
  /** The gateway's JSON answers, and whether each keeps its connection (answer-writer.ts). */
  readonly #answers: AnswerWriter;
  /** A routed request's way to its call: its body, its turn, the dispatcher (exchange-intake.ts). */
  readonly #intake: ExchangeIntake;
  /** Each request from the HTTP front to an answer or a routed call (request-pipeline.ts). */
  readonly #pipeline: RequestPipeline;
  #allowedHosts: HostAllowlist;
  /** Request ids, metrics, traces, /healthz, /readyz, /metrics and /status (gateway-telemetry.ts, gateway-health.ts). */
  readonly #telemetry: GatewayTelemetry;
  #registration: RegistrationClient | undefined;
  #restartGrace: RestartGrace | undefined;
  /**
   * Serving; draining: serving, but /readyz is 503 and answers close their connections (see drain());
   * stopping: refusing new requests, the listener closed.
   */
  #phase: 'serving' | 'draining' | 'stopping' = 'serving';
  #drained: { done: Promise<void>; end: () => void } | undefined;
  /** The channels are closed: snapshots are no longer applied. */
  #poolClosed = false;
  #stopped: Promise<void> | undefined;

  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLogger();
    const deadlineMs = options.deadlineMs ?? 5_000;
    const unreadAnswerTimeoutMs = options.unreadAnswerTimeoutMs ?? DEFAULT_UNREAD_ANSWER_TIMEOUT_MS;
    const maxPipelinedRequests = options.maxPipelinedRequests ?? 16;
    const bodyLimitBytes = options.bodyLimitBytes ?? MIB;
    const bodyBudget = new BodyBudget(Math.max(options.bodyBudgetBytes ?? 32 * MIB, bodyLimitBytes));
    this.#restartGraceMs = options.restartGraceMs ?? 7_000;
    this.#stopGraceMs = options.stopGraceMs ?? Math.min(deadlineMs + 1_000, MAX_STOP_GRACE_MS);
    // Logs what goes wrong with the TLS files, once for all of the gateway's credentials.
    const tlsProblems = tlsProblemLog(this.#log);
    // Unreadable or mismatched certificate files stop the start here (a ConfigError, exit 2), before
    // anything listens: read once the port was bound, they threw past the start (exit 1, restarted).
    const refresh =
      options.tlsRefreshIntervalMs === undefined ? {} : { refreshIntervalMs: options.tlsRefreshIntervalMs };
    this.#distributorCredentials = channelCredentials(options.tls, {
      expectedName: 'distributor',
      ...tlsProblems,
      ...refresh,
      // A renewed certificate: the registration moves to a connection made with it, before a CA
      // rotation's last step cuts the one made with the certificate before.
      onCertificateTaken: () => this.#registration?.renewConnection(),
      // A CA removed (it leaked): a registration whose distributor chains to it no longer stays.
      onCaTaken: (authorities) => this.#registration?.stopUsingUntrusted(authorities),
    });
    const maxConnections = options.maxConnections ?? defaultMaxConnections();
    this.#telemetry = new GatewayTelemetry(
      {
        routeOf: (method, path) =>
          this.#table.match(method === 'HEAD' ? 'GET' : method, path)?.route.template.text ??
          this.#table.templateOf(path),
        routes: () => this.#table.describe(),
        revision: () => this.#table.revision,
        stopping: () => this.#phase !== 'serving',
        unservedRouteReadyAfterMs: () => options.unservedRouteReadyAfterMs ?? UNSERVED_ROUTE_READY_AFTER_MS,
        restartGraceMs: () => this.#restartGraceMs,
        holdsTemplate: (template) => this.#table.holdsTemplate(template),
        unreachableSince: (nodeId) => this.#pool.unreachableSince(upstreamKeyOfNode(nodeId)),
        outOfReach: (nodeId) => this.#pool.outOfReach(upstreamKeyOfNode(nodeId)),
        unreachableReason: (nodeId) => this.#pool.unreachableReason(upstreamKeyOfNode(nodeId)),
        connection: (nodeId) => this.#pool.connection(upstreamKeyOfNode(nodeId)),
        connectionLoad: () => ({ ...this.#front.connections.load(), maxConnections }),
      },
      options.observability,
      this.#log,
    );
    this.#pool = new InstancePool({
      channelOptions: {
        ...keepaliveChannelOptions(options.keepalive ?? DEFAULT_KEEPALIVE),
        // HTTP/2's default 64 KiB window holds about six 10 KB answers: at 64 connections the
        // service waited for WINDOW_UPDATEs with a third of both cores idle (issue 9: +48 % GET /goods).
        'grpc-node.flow_control_window': UPSTREAM_FLOW_CONTROL_WINDOW,
        'grpc.max_reconnect_backoff_ms': UPSTREAM_MAX_RECONNECT_BACKOFF_MS,
      },
      credentialsFor: channelCredentialsByName(options.tls, {
        ...tlsProblems,
        // A renewed certificate: calls move to connections made with it, before a CA rotation's
        // last step has services close those made with the certificate before.
        onCertificateTaken: () => this.#pool.renewConnections(),
        ...refresh,
        // A CA removed (it leaked): connections made before to servers of it are no longer used.
        onCaTaken: (authorities) => this.#stopUsingUntrusted(authorities),
      }),
      namingOptionsFor: (name) => secureNamingChannelOptions(options.tls, name),
      calls: this.#telemetry.calls,
      ...(options.upstreamConnectTimeoutMs === undefined
        ? {}
        : { connectTimeoutMs: options.upstreamConnectTimeoutMs }),
      ...(options.upstreamMoveRetry === undefined ? {} : { moveRetry: options.upstreamMoveRetry }),
      ...upstreamEventLog(this.#log),
    });
    this.#table = new RouteTable({
      pool: this.#pool,
      log: this.#log,
      onForgotten: (forgotten) => this.#telemetry.forget(forgotten),
    });
    const cors = options.corsOrigins?.length ? new Cors(options.corsOrigins) : undefined;
    this.#allowedHosts = new HostAllowlist(options.allowedHosts ?? [], [hostname()]);
    const isServing = (): boolean => this.#phase === 'serving';
    const isStopping = (): boolean => this.#phase === 'stopping';
    // Pick an instance, call, retry, answer: everything after the HTTP front has read a request.
    const dispatcher = new Dispatcher({
      pool: this.#pool,
      table: this.#table,
      log: this.#log,
      ownTls: options.tls !== undefined,
      deadlineMs,
      unreadAnswerTimeoutMs,
      maxStreamedLists: options.maxStreamedLists ?? 16,
      isStopping,
      closesAfter: (exchange) => this.#answers.closesAfter(exchange),
      answer: (exchange, httpStatus, body, retryAfter) =>
        this.#answers.answer(exchange, httpStatus, body, retryAfter),
      answerError: (exchange, error) => this.#answers.answerError(exchange, error),
      internalError: (exchange, error) => this.#answers.internalError(exchange, error),
    });
    // /openapi.json and /docs: the REST surface documented from the route table.
    const apiDocs = new ApiDocs({
      surface: () =>
        this.#table.revision === undefined
          ? undefined
          : {
              revision: this.#table.revision,
              generation: this.#table.generation,
              operations: () => operationsOfRoutes(this.#table.live()),
            },
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
      log: this.#log,
    });
    this.#front = new HttpFront({
      https: options.https,
      httpsRefreshIntervalMs: options.httpsRefreshIntervalMs,
      keepAliveTimeoutMs: options.keepAliveTimeoutMs,
      headersTimeoutMs: options.headersTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs,
      maxConnections,
      unreadAnswerTimeoutMs,
      stopGraceMs: this.#stopGraceMs,
      log: this.#log,
      telemetry: this.#telemetry,
      tlsProblems,
      onRequest: (request, response, expectsContinue) =>
        this.#pipeline.handleSafely(request, response, expectsContinue),
      refuse: (request, response, error) => this.#pipeline.refuseBeforeRouting(request, response, error),
    });
    this.#answers = new AnswerWriter({
      log: this.#log,
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
      connections: this.#front.connections,
      isServing,
    });
    // OPTIONS, 405 with Allow, and the CORS preflights, from the methods each path answers.
    const methods = new MethodAnswers({
      table: this.#table,
      telemetry: this.#telemetry,
      apiDocs,
      cors,
      answers: this.#answers,
      isServing,
    });
    // The gateway's own pages: the operators' and the documentation.
    const pages = new OwnPages({
      telemetry: this.#telemetry,
      apiDocs,
      cors,
      connections: this.#front.connections,
      maxPipelinedRequests,
      answers: this.#answers,
      statusClients: new StatusClients(options.statusClients),
      isServing,
    });
    this.#intake = new ExchangeIntake({
      connections: this.#front.connections,
      dispatcher,
      answers: this.#answers,
      deadlineMs,
      bodyLimitBytes,
      bodyBudget,
      isServing,
    });
    this.#pipeline = new RequestPipeline({
      log: this.#log,
      telemetry: this.#telemetry,
      connections: this.#front.connections,
      table: this.#table,
      cors,
      allowedHosts: () => this.#allowedHosts,
      maxPipelinedRequests,
      deadlineMs,
      answers: this.#answers,
      methods,
      pages,
      intake: this.#intake,
      isStopping,
    });
  }

  get revision(): number | undefined {
    return this.#table.revision;
  }

  get registration(): RegistrationClient | undefined {
    return this.#registration;
  }

  supervisorStatus(): SupervisorStatus {
    const { registered, nodes, routes } = this.#telemetry.status();
    return {
      registered,
      nodes: nodes.map(
        ({ id, name, state, address, registeredAt, kept, connected, unreachableSeconds, outOfReach }) => ({
          id,
          name,
          state,
          address,
          registeredAt,
          ...(kept === undefined ? {} : { kept }),
          ...(connected === undefined ? {} : { connected }),
          ...(unreachableSeconds === undefined ? {} : { unreachableSeconds }),
          ...(outOfReach === undefined ? {} : { outOfReach }),
        }),
      ),
      routes: routes.map(({ listed, serving }) => ({ listed, serving })),
    };
  }

  routes(): RouteInfo[] {
    return this.#table.describe();
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      const server = this.#front.server;
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        // The name it listens on (--host) is the one it announces and the launcher asks by.
        if (isIP(host) === 0) {
          this.#allowedHosts = new HostAllowlist(this.#options.allowedHosts ?? [], [hostname(), host]);
        }
        const address = server.address();
        const boundPort = typeof address === 'object' && address ? address.port : port;
        this.#register(boundPort);
        resolve(boundPort);
      });
    });
  }

  drain(): Promise<void> {
    if (this.#drained) return this.#drained.done;
    const delayMs = this.#options.drainDelayMs ?? 0;
    if (this.#phase !== 'serving' || delayMs <= 0) return Promise.resolve();
    this.#phase = 'draining';
    // Listed as draining, as a service that drains is: other gateways' status pages and the
    // distributor's List say it is on its way out, not serving.
    this.#registration?.setState(NodeState.NODE_STATE_DRAINING);
    this.#log.info(
      { event: 'draining', delayMs },
      `draining: /readyz answers 503 and every routed answer closes its connection for ${delayMs} ms, then the gateway stops`,
    );
    let end: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      end = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#drained = { done, end };
    return done;
  }

  endDrain(): boolean {
    if (this.#phase !== 'draining' || this.#drained === undefined) return false;
    this.#drained.end();
    return true;
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#phase = 'stopping';
    this.#drained?.end();
    const graceMs = this.#stopGraceMs;
    this.#intake.endCallsBy(Date.now() + graceMs - Math.min(1_000, graceMs));
    await this.#front.close();
    this.#poolClosed = true;
    this.#restartGrace?.stop();
    this.#pool.close();
    await this.#registration?.stop();
  }

  /**
   * Has the pool stop using its connections to servers whose certificate's CA the CA file just taken
   * no longer holds (see InstancePool.stopUsingUntrusted). A failure is logged, not thrown: it would
   * reach the file watcher, which would report the CA file as unusable while it is in use.
   */
  #stopUsingUntrusted(authorities: readonly X509Certificate[]): void {
    try {
      this.#pool.stopUsingUntrusted(authorities);
    } catch (error) {
      this.#log.error(
        { event: 'untrusted-check-failed', err: error },
        "could not check the open connections to services against the new CA file: restart the gateway to stop using any whose server's CA was removed",
      );
    }
  }

  #register(port: number): void {
    const registration = new RegistrationClient({
      distributor: this.#options.distributor,
      node: {
        name: 'gateway',
        host: this.#options.advertiseHost ?? '',
        port,
        routes: [],
        descriptorSet: Buffer.alloc(0),
        state: NodeState.NODE_STATE_SERVING,
      },
      // The gateway routes from the node list: snapshots with every descriptor set filled in.
      watchNodes: true,
      log: this.#log,
      credentials: this.#distributorCredentials,
      channelOptions: secureNamingChannelOptions(this.#options.tls, 'distributor'),
      ...(this.#options.registryToken ? { token: this.#options.registryToken } : {}),
      ...(this.#options.keepalive ? { keepalive: this.#options.keepalive } : {}),
      backoff: this.#options.registrationBackoff ?? DISTRIBUTOR_BACKOFF,
    });
    const grace = new RestartGrace({
      graceMs: this.#restartGraceMs,
      apply: (snapshot, kept) => {
        if (this.#poolClosed) return;
        this.#table.apply(snapshot);
        this.#telemetry.nodesApplied(snapshot.nodes, kept);
      },
      log: this.#log,
    });
    registration.on('snapshot', (snapshot) => grace.snapshot(snapshot));
    registration.on('registered', () => grace.connected());
    registration.on('disconnected', () => grace.disconnected());
    this.#restartGrace = grace;
    this.#telemetry.watch(registration);
    this.#registration = registration;
    registration.start();
  }
}

/**
 * The longest the gateway's stop waits for requests in flight, whatever the deadline: with leaving
 * the distributor (2 s), inside the launcher's 10 s before it kills; the flush of its traces after
 * them gets what is left (stopStepBudget).
 */
const MAX_STOP_GRACE_MS = 7_000;
