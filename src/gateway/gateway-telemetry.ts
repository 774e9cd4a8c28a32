import type { IncomingMessage, ServerResponse } from 'node:http';
import { Gauge } from 'prom-client';
import { ClientCallTelemetry } from '../common/grpc-client-telemetry.js';
import { GATEWAY_DOCS, GATEWAY_PAGES } from '../common/http-routes.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { HistogramFamily, type HistogramSeries } from '../common/metric-series.js';
import { createMetricsRegistry, GrpcCallMetrics, type Registry, sharedRender } from '../common/metrics.js';
import {
  REQUEST_ID_HEADER,
  requestIdFrom,
  TRACEPARENT_HEADER,
  TRACESTATE_HEADER,
  traceCarrierFrom,
} from '../common/request-context.js';
import { RequestIdGenerator } from '../common/request-id-generator.js';
import type { TraceCarrier, TraceSpan } from '../common/trace-span.js';
import { activeTracer } from '../common/tracing.js';
import type { Node } from '../gen/distributor.js';
import type { RegistrationClient } from '../registry-client/registration-client.js';
import { GatewayHealth, type GatewayStatus } from './gateway-health.js';
import type { GatewayView } from './gateway-view.js';
import { OperatorPageAnswers } from './operator-page-answers.js';
import {
  ANSWER_CUT_SHORT,
  type AnswerRecorder,
  INCOMPLETE_ANSWERS,
  type IncompleteAnswer,
  NO_REQUEST_TELEMETRY,
  ObservedRequest,
  type RequestTelemetry,
} from './request-telemetry.js';
import { RouteRates } from './route-rates.js';
import type { ForgottenRoutes } from './route-table.js';

/**
 * What a client's W3C trace context does at the gateway: `child`, the request's span is its child
 * and follows its sampled flag (W3C's default, for clients of the same operator); `link`, the
 * gateway's span starts a trace of its own, sampled by the gateway's sampler alone, and links to
 * the client's span, as OpenTelemetry's instrumentations do for a public endpoint: a client
 * cannot then choose which requests are traced, nor make every one of them traced.
 */
export const CLIENT_TRACE_CONTEXTS = ['child', 'link'] as const;
export type ClientTraceContext = (typeof CLIENT_TRACE_CONTEXTS)[number];

/** Options of {@link GatewayTelemetry}. */
export interface GatewayTelemetryOptions {
  /** Prometheus metrics and the status page's rates (default true). */
  metrics?: boolean;
  /** X-Request-Id on every request, answered and passed to the service (default true). */
  requestIds?: boolean;
  /** The process's own metrics in /metrics (default false: only the gateway's main.ts turns them on). */
  processMetrics?: boolean;
  /** What a client's `traceparent` does (default `child`; see CLIENT_TRACE_CONTEXTS). */
  clientTraceContext?: ClientTraceContext;
}

/**
 * What a request counts as when the gateway's stop closed its connection before any answer: the
 * status the stop answers the requests that arrive during its grace (see gatewayErrors.stopping).
 * Counted 499, it blamed a client who had waited for its answer.
 */
const CLOSED_BY_STOP_STATUS = 503;

/**
 * A span's `url.path` is cut to this many characters: a client chooses the path, up to Node's 16 KiB
 * of request head, and a batch of 512 spans with such paths (8 MB) would pass the 4 MiB a collector
 * takes over OTLP/gRPC by default, losing every request's spans in it.
 */
const MAX_TRACED_PATH = 1_024;

/** The one label value of every request that matched no route. */
export const UNMATCHED_ROUTE = 'unmatched';

/** The methods that are their own label value; any other is `_OTHER`, as OpenTelemetry names it. */
const KNOWN_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'];

/** What one kind of answer (method, route, status code) is recorded into. */
interface AnswerSeries {
  readonly duration: HistogramSeries;
  /** Its key in the status page's rates: "METHOD route". */
  readonly rateKey: string;
}

/** OpenTelemetry's recommended buckets for http.server.request.duration, in seconds. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

type HttpLabel = 'http_request_method' | 'http_route' | 'http_response_status_code';

/**
 * OpenTelemetry's `error.type`, on the series of a request that failed with a status that does not
 * say so: an answer whose 200 had gone when it was cut short (see IncompleteAnswer).
 */
type HttpErrorLabel = 'error_type';

/**
 * The route labels of the API documentation's requests (see api-docs.ts): `/openapi.json`, and
 * `/docs` for the page and all its files. Like the gateway's own pages, they are not shop traffic.
 */
export const DOCUMENTATION_ROUTES = {
  document: GATEWAY_DOCS.document,
  page: `/${GATEWAY_DOCS.folder}`,
} as const;
const DOCUMENTATION_ROUTE_SET: ReadonlySet<string> = new Set(Object.values(DOCUMENTATION_ROUTES));

/**
 * The gateway's side of issue 11, kept apart from its routing: request ids, the HTTP server span,
 * HTTP and gRPC client metrics, `/metrics`, and through the objects it holds `/healthz`, `/readyz`
 * and the `/status` page (GatewayHealth says what they show, OperatorPageAnswers writes them).
 *
 * `/metrics` is served on the gateway's own HTTP port, beside the book's routes, as the design's
 * "Operating it" lists it: the gateway is an HTTP server already, one port is one less to open and
 * to point a scraper at, and each REST request is counted by the process that answers it. The
 * metrics name no client, user or path: an operator who keeps them private filters `/metrics` (and
 * `/status`) at the edge, as with any health endpoint.
 */
export class GatewayTelemetry {
  readonly #view: GatewayView;
  readonly #log: Logger;
  readonly #requestIds: boolean;
  /** A client's trace context is only linked to (`--client-trace-context link`). */
  readonly #linksClientTrace: boolean;
  readonly #ids = new RequestIdGenerator();
  readonly #registry: Registry | undefined;
  readonly #duration: HistogramFamily<HttpLabel, HttpErrorLabel> | undefined;
  readonly #rates: RouteRates | undefined;
  /** The series of each route's answers, by method and status code (see #answeredOf). */
  readonly #answered = new Map<string, Map<number, AnswerSeries>>();
  readonly #calls: ClientCallTelemetry;
  /** The gateway's stop is closing every connection (see closingAllConnections). */
  #closingAllConnections = false;
  /** Readiness, the node history and the status page's data (see GatewayHealth). */
  readonly #health: GatewayHealth;
  readonly #pages: OperatorPageAnswers;

  constructor(view: GatewayView, options: GatewayTelemetryOptions = {}, log: Logger = silentLogger()) {
    this.#view = view;
    this.#log = log;
    this.#requestIds = options.requestIds ?? true;
    this.#linksClientTrace = options.clientTraceContext === 'link';
    const metrics = options.metrics ?? true;
    if (metrics) {
      const registry = createMetricsRegistry({ processMetrics: options.processMetrics ?? false });
      this.#registry = registry;
      this.#duration = new HistogramFamily({
        name: 'http_server_request_duration_seconds',
        help: 'Duration of HTTP server requests, from the request to the last byte of the answer.',
        labelNames: ['http_request_method', 'http_route', 'http_response_status_code'],
        optionalLabelNames: ['error_type'],
        buckets: HTTP_BUCKETS,
        registers: [registry],
      });
      this.#rates = new RouteRates();
      this.#watchConnections(registry);
    }
    this.#calls = new ClientCallTelemetry({
      metrics: this.#registry && new GrpcCallMetrics(this.#registry, 'client'),
    });
    this.#health = new GatewayHealth(view, this.#rates);
    this.#pages = new OperatorPageAnswers(
      this.#registry,
      this.#registry && sharedRender(this.#registry),
      this.#health,
    );
  }

  /**
   * `http_server_active_requests` (OpenTelemetry's name), `shop_gateway_connections` and
   * `shop_gateway_connections_max`: how near the gateway is to `--max-connections`, past which it
   * closes idle connections and then refuses new ones. Read at each scrape, nothing per request.
   */
  #watchConnections(registry: Registry): void {
    const view = this.#view;
    const gauges = [
      [
        'http_server_active_requests',
        'REST requests received and not yet answered, pipelined ones waiting their turn included.',
        'requestsInFlight',
      ],
      [
        'shop_gateway_connections',
        'REST connections open now (over HTTPS, once their handshake is done).',
        'connections',
      ],
      [
        'shop_gateway_connections_max',
        'REST connections the gateway holds at most (--max-connections).',
        'maxConnections',
      ],
    ] as const;
    for (const [name, help, field] of gauges) {
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(view.connectionLoad()[field]);
        },
      });
    }
  }

  /** The gateway's metrics registry; undefined when metrics are off. */
  get registry(): Registry | undefined {
    return this.#registry;
  }

  /** What counts, times and traces the gateway's calls to services (see InstancePool.call). */
  get calls(): ClientCallTelemetry {
    return this.#calls;
  }

  /**
   * Tells that the gateway's stop is closing every connection, its grace over: a request that ends
   * without an answer from now on was ended by the gateway, not left by its client, and counts as
   * the stop's 503, not 499.
   */
  closingAllConnections(): void {
    this.#closingAllConnections = true;
  }

  /** Whether the gateway's stop is closing every connection (see closingAllConnections). */
  get closesAllConnections(): boolean {
    return this.#closingAllConnections;
  }

  /** Follows the gateway's registration: whether, and since when, it is connected (see GatewayHealth.watch). */
  watch(registration: RegistrationClient): void {
    this.#health.watch(registration);
  }

  /** The node list the gateway now routes to; `kept` are nodes kept through a distributor restart. */
  nodesApplied(nodes: readonly Node[], kept: readonly Node[]): void {
    this.#health.nodesApplied(nodes, kept);
  }

  /**
   * Starts the telemetry of a GET or HEAD of one of the gateway's own pages ({@link servesPage}),
   * whether {@link answerPage} answers it or the gateway refuses it (too many pipelined, a refused
   * connection): its route label is its path; it gets an id like any request (answered in
   * X-Request-Id, so that a probe's failure can be found in the log too), but no span. The caller
   * calls `closed` on what it returns when the response closes.
   */
  onPageRequest(request: IncomingMessage, method: string, path: string): RequestTelemetry {
    const page = new ObservedRequest(
      this.requestIdOf(request),
      method,
      path,
      undefined,
      undefined,
      this.#recordAnswer,
    );
    page.route = path;
    return page;
  }

  /**
   * Starts the telemetry of a request that is not for one of the gateway's own pages. Gives the
   * request its id (to answer in `X-Request-Id`) and starts its HTTP server span; the caller calls
   * `closed` on what it returns when the response closes, which records the request's route,
   * method, status and duration.
   */
  onRequest(request: IncomingMessage, method: string, path: string): RequestTelemetry {
    const tracer = activeTracer();
    if (!this.#requestIds && !this.#duration && !tracer && !this.#log.isLevelEnabled('debug')) {
      // Nothing observes the request, but a caller's trace context still goes on, as W3C asks of a
      // hop, unless the gateway takes no client's trace context further.
      const carrier = this.#linksClientTrace ? undefined : incomingCarrier(request);
      if (carrier === undefined) return NO_REQUEST_TELEMETRY;
      return new ObservedRequest(undefined, method, path, carrier, undefined, this.#recordAnswer);
    }
    // Answered in X-Request-Id by whoever writes the answer's headers: a header set beforehand with
    // setHeader makes Node put every header of the answer's flat list through setHeader too.
    const requestId = this.requestIdOf(request);
    const incoming = incomingCarrier(request);
    const parent = this.#linksClientTrace ? undefined : incoming;
    const linked = this.#linksClientTrace ? incoming : undefined;
    let carrier = parent;
    let span: TraceSpan | undefined;
    if (tracer) {
      // Named for its route once it is known (see #recordAnswer): HTTP server spans are "METHOD route".
      // A method OpenTelemetry's conventions do not know is "_OTHER" (the span "HTTP"), as in the
      // metrics' label, with the method as sent beside it.
      const known = KNOWN_METHODS.includes(method);
      const attributes = {
        'http.request.method': known ? method : '_OTHER',
        ...(known ? {} : { 'http.request.method_original': method }),
        'url.path': path.length > MAX_TRACED_PATH ? path.slice(0, MAX_TRACED_PATH) : path,
        ...(requestId ? { 'shop.request_id': requestId } : {}),
      };
      span = tracer.startSpan(known ? method : 'HTTP', 'server', parent, attributes, linked);
      carrier = span.carrier();
    }
    return new ObservedRequest(requestId, method, path, carrier, span, this.#recordAnswer);
  }

  /**
   * Drops the series of route templates and gRPC methods the route table no longer holds: without
   * this, every route ever registered and called kept its series, and a registry whose routes keep
   * changing (new builds, canaries, a token holder registering routes to call them) grew /metrics
   * and the gateway's memory without end. The status page's rates forget a quiet route by themselves.
   */
  forget({ templates, grpcPaths }: ForgottenRoutes): void {
    for (const template of templates) {
      this.#answered.delete(template);
      this.#duration?.forget({ http_route: template });
    }
    for (const path of grpcPaths) this.#calls.forget(path);
  }

  /** The request's id: the client's X-Request-Id when valid, else a new one; none when ids are off. */
  requestIdOf(request: IncomingMessage): string | undefined {
    return this.#requestIds ? requestIdFrom(request.headers[REQUEST_ID_HEADER], this.#ids) : undefined;
  }

  /**
   * Whether `path` is one of the gateway's own pages (served to GET and HEAD by {@link answerPage}).
   * `/metrics` is one with metrics off too, answered 404: routed as any path, a scraper was told 503
   * "try again" while no service had registered, and a service's `GET /{name}` could have taken it.
   */
  servesPage(path: string): boolean {
    return GATEWAY_PAGES.has(path);
  }

  /** What the status page shows, as JSON (see GatewayHealth.status). */
  status(nowMs = Date.now()): GatewayStatus {
    return this.#health.status(nowMs);
  }

  /** Made once: each request holds it rather than a closure of its own (see ObservedRequest). */
  readonly #recordAnswer: AnswerRecorder = (observed, response) => {
    const duration = this.#duration;
    const span = observed.span;
    const debug = this.#log.isLevelEnabled('debug');
    if (!duration && !span && !debug) return;
    // An answer never begun: the client left first (nginx's 499), or the gateway's stop closed the
    // connection, which it answers 503 to the requests that arrive during its grace.
    const code = response.headersSent
      ? response.statusCode
      : this.#closingAllConnections
        ? CLOSED_BY_STOP_STATUS
        : 499;
    const seconds = (performance.now() - observed.startedAt) / 1000;
    const { method, path } = observed;
    // The gateway's own pages are their path for every method (a POST to /status is refused there).
    const route =
      observed.route ??
      this.#view.routeOf(method, path) ??
      (GATEWAY_PAGES.has(path) ? path : UNMATCHED_ROUTE);
    if (span) {
      if (route !== UNMATCHED_ROUTE) {
        span.setName(`${KNOWN_METHODS.includes(method) ? method : 'HTTP'} ${route}`);
        span.setAttribute('http.route', route);
      }
      span.setAttribute('http.response.status_code', code);
      if (code >= 500) span.fail(`HTTP ${code}`);
      else if (observed.cut !== undefined) {
        // Its error.type says why it is incomplete; the span fails only for the gateway's own cut,
        // not for its client's leaving, as a 499 does not (a caller's doing is no server fault).
        span.setAttribute('error.type', observed.cutType);
        if (observed.cutType === ANSWER_CUT_SHORT) span.fail(observed.cut);
      }
      span.end();
    }
    if (debug) {
      this.#log.debug(
        {
          requestId: observed.requestId,
          method,
          route,
          status: code,
          ...(observed.cut !== undefined ? { cutShort: observed.cut, errorType: observed.cutType } : {}),
          durationMs: Math.round(seconds * 10_000) / 10,
        },
        'request answered',
      );
    }
    if (!duration) return;
    // A 5xx says it failed; a 200 cut short does not, so its series says it (see the span above).
    const cut = code < 500 && observed.cut !== undefined ? observed.cutType : undefined;
    const answered = this.#answeredOf(duration, method, route, code, cut);
    if (!answered) return;
    answered.duration.observe(seconds);
    // The status page shows the shop's traffic, not its own polling (nor scrapes and probes); an
    // answer its client left unfinished is no error of the shop's, as a 499 is not.
    if (!GATEWAY_PAGES.has(path) && !DOCUMENTATION_ROUTE_SET.has(route)) {
      this.#rates!.record(answered.rateKey, code >= 500 || cut === ANSWER_CUT_SHORT);
    }
  };

  /**
   * Counts a request the gateway answered without seeing it as one, on route `unmatched` and with no
   * time: one Node's HTTP parser refused (400, 408, 431), method `_OTHER` since none was read, or a
   * CONNECT (501), by its method, which OpenTelemetry's conventions know.
   */
  onUnseenRequest(httpStatus: number, method = ''): void {
    const duration = this.#duration;
    if (!duration) return;
    const answered = this.#answeredOf(duration, method, UNMATCHED_ROUTE, httpStatus, undefined)!;
    answered.duration.observe(0);
    this.#rates!.record(answered.rateKey, httpStatus >= 500);
  }

  /**
   * Where an answer of `method` on `route` with `code` (and why it did not reach its end, if it did
   * not) is recorded, found without building a string per request: by route, then by a number made
   * of the four. Undefined for a template the route table no longer holds.
   */
  #answeredOf(
    duration: HistogramFamily<HttpLabel, HttpErrorLabel>,
    method: string,
    route: string,
    code: number,
    cut: IncompleteAnswer | undefined,
  ): AnswerSeries | undefined {
    let byRoute = this.#answered.get(route);
    if (!byRoute) {
      // A route forgotten while one of its requests ran (see forget): its series are not brought back.
      const ownPage =
        route === UNMATCHED_ROUTE || GATEWAY_PAGES.has(route) || DOCUMENTATION_ROUTE_SET.has(route);
      if (!ownPage && !this.#view.holdsTemplate(route)) return undefined;
      byRoute = new Map();
      this.#answered.set(route, byRoute);
    }
    const methodIndex = KNOWN_METHODS.indexOf(method);
    // Node refuses a status code outside 100 to 999, and there are ten method indexes (-1 to 8), so
    // the parts cannot clash.
    const key =
      (cut === undefined ? 0 : INCOMPLETE_ANSWERS.indexOf(cut) + 1) * 100_000 +
      (methodIndex + 1) * 1000 +
      code;
    let answered = byRoute.get(key);
    if (!answered) {
      const methodLabel = methodIndex < 0 ? '_OTHER' : method;
      answered = {
        duration: duration.series({
          http_request_method: methodLabel,
          http_route: route,
          http_response_status_code: String(code),
          ...(cut === undefined ? {} : { error_type: cut }),
        }),
        rateKey: `${methodLabel} ${route}`,
      };
      byRoute.set(key, answered);
    }
    return answered;
  }

  /** Answers a GET or HEAD of one of the gateway's own pages ({@link servesPage}; see OperatorPageAnswers). */
  answerPage(response: ServerResponse, path: string, requestId: string | undefined): void {
    this.#pages.answerPage(response, path, requestId);
  }
}

/** The trace context that came with a request, when well formed (else it is dropped, as W3C says). */
function incomingCarrier(request: IncomingMessage): TraceCarrier | undefined {
  const { headers } = request;
  return traceCarrierFrom(headers[TRACEPARENT_HEADER], headers[TRACESTATE_HEADER]);
}
