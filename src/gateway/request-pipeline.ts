import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HostAllowlist } from '../common/host-allowlist.js';
import { limiterOf } from '../common/log-limiter.js';
import type { Logger } from '../common/logger.js';
import type { AnswerWriter } from './answer-writer.js';
import { ApiDocs } from './api-docs.js';
import { declaredBodySize, unsupportedTransferCoding } from './body-reader.js';
import type { Connection, ConnectionTracker } from './connection-tracker.js';
import { Cors, ROUTABLE_METHODS } from './cors.js';
import { isCrossOriginWrite } from './cross-origin-writes.js';
import { errorBody } from './envelope.js';
import type { Exchange } from './exchange.js';
import type { ExchangeIntake } from './exchange-intake.js';
import { GatewayError, gatewayErrors } from './gateway-error.js';
import type { GatewayTelemetry } from './gateway-telemetry.js';
import { idempotencyKeyOf } from './idempotency-header.js';
import type { MethodAnswers } from './method-answers.js';
import type { OwnPages } from './own-pages.js';
import { BODY_METHODS, NO_INPUT } from './request-input.js';
import { asksForUpgrade, framingRefusal, originForm, routingPath, splitQuery } from './request-target.js';
import type { RequestTelemetry } from './request-telemetry.js';
import type { Route, RouteTable } from './route-table.js';

/** What the request pipeline needs of the gateway around it. */
export interface RequestPipelineOptions {
  log: Logger;
  telemetry: Pick<GatewayTelemetry, 'servesPage' | 'onRequest' | 'closesAllConnections'>;
  connections: Pick<ConnectionTracker, 'requestStarted' | 'isRefused' | 'of'>;
  table: Pick<RouteTable, 'ready' | 'knowsAnyRoute' | 'match'>;
  cors: Cors | undefined;
  /** The host names the gateway answers to (see GatewayOptions.allowedHosts), as they are now. */
  allowedHosts(): HostAllowlist;
  /** Requests one connection may have in flight at once (see GatewayOptions.maxPipelinedRequests). */
  maxPipelinedRequests: number;
  /** The deadline of every upstream call, retry included (see GatewayOptions.deadlineMs). */
  deadlineMs: number;
  answers: Pick<AnswerWriter, 'answerError' | 'internalError' | 'fail' | 'write'>;
  methods: Pick<
    MethodAnswers,
    'answerOptions' | 'answerOptionsOfPath' | 'letsPreflightThrough' | 'notRouted' | 'serverMethods'
  >;
  pages: Pick<OwnPages, 'answerOperatorPage' | 'answerDocs'>;
  intake: Pick<ExchangeIntake, 'readThenDispatch' | 'dispatchInTurn'>;
  /** Whether the gateway is stopping: a routed request is then refused. */
  isStopping(): boolean;
}

/**
 * GET and DELETE are idempotent in this API, so a call refused with UNAVAILABLE may go elsewhere; so
 * may a write with an Idempotency-Key to a method that makes it once per key (see mayRetry).
 */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'DELETE']);

/**
 * Each request the HTTP front hands over, from its IncomingMessage to an answer or a routed call:
 * its framing and Host checked, its connection's limits, the gateway's own pages, OPTIONS and the
 * CORS preflights, 404/405 and readiness, then its route matched, its key given (a counter from 0,
 * per process, for requests that match a route) and its exchange handed to the intake.
 */
export class RequestPipeline {
  readonly #options: RequestPipelineOptions;
  #nextKey = 0;

  constructor(options: RequestPipelineOptions) {
    this.#options = options;
  }

  /** A bug while handling one request answers that request 500; it must not stop the gateway. */
  handleSafely(request: IncomingMessage, response: ServerResponse, expectsContinue: boolean): void {
    let telemetry: RequestTelemetry | undefined;
    try {
      const framing = framingRefusal(request, this.#options.allowedHosts());
      if (framing) {
        // A client that names the gateway by a DNS name it was not given (a health check, a
        // Prometheus target) fails every request: the operator learns which name to add.
        if (framing.httpStatus === 421) {
          limiterOf(this.#options.log).warn(
            'host-not-allowed',
            { event: 'host-not-allowed', host: String(request.headers.host).slice(0, 100) },
            'a request named this gateway by a host name it does not answer to, refused 421: if clients call it so, add that name to --allowed-hosts (GATEWAY_ALLOWED_HOSTS)',
          );
        }
        this.refuseBeforeRouting(request, response, framing);
        return;
      }
      // Node's parser reads nothing after a request that asks for an Upgrade (the gateway takes none):
      // a request pipelined behind it would never be answered, and the connection would sit until its
      // keep-alive time. Closed after the answer, the client knows at once. It asks only with both
      // `Upgrade` and an `upgrade` token in `Connection` (RFC 9110, section 7.8), as Node's parser
      // reads it: an `Upgrade` alone stops nothing, and the requests behind it are answered.
      if (asksForUpgrade(request)) response.setHeader('Connection', 'close');
      const url = originForm(request.url ?? '/');
      const split = splitQuery(url);
      const path = routingPath(split.path);
      if (path === undefined) {
        this.refuseBeforeRouting(
          request,
          response,
          gatewayErrors.malformedPath(),
          declaredBodySize(request) !== 0,
        );
        return;
      }
      const { queryStart } = split;
      const method = request.method ?? 'GET';
      if ((method === 'GET' || method === 'HEAD') && this.#options.telemetry.servesPage(path)) {
        this.#options.pages.answerOperatorPage(request, response, method, path);
        return;
      }
      telemetry = this.#options.telemetry.onRequest(request, method, path);
      this.#handle(request, response, expectsContinue, telemetry, method, url, path, queryStart);
    } catch (error) {
      const requestId = telemetry?.requestId;
      this.#options.log.error(
        { err: error, method: request.method, url: request.url, requestId },
        'bug while handling a request',
      );
      this.#options.answers.write(
        response,
        500,
        errorBody(null, 'Internal error in the gateway'),
        false,
        true,
        requestId,
      );
    }
  }

  #handle(
    request: IncomingMessage,
    response: ServerResponse,
    expectsContinue: boolean,
    telemetry: RequestTelemetry,
    method: string,
    url: string,
    path: string,
    queryStart: number,
  ): void {
    const connection = this.#options.connections.requestStarted(request, response);
    const turn = connection?.started ?? 0;
    let routed: Exchange | undefined;
    // A request costs one 'close' listener (see ConnectionTracker.requestStarted): its answer is
    // recorded, its connection's count ends, and a client that left stops the upstream work.
    const closed = (): void => {
      // Its status sent, its answer not finished: counted with the status sent, and why it stopped.
      if (routed !== undefined && response.headersSent && !response.writableFinished) {
        this.#countIncomplete(routed, connection, telemetry);
      }
      telemetry.closed(response);
      connection?.requestEnded();
      if (routed === undefined || response.writableFinished) return;
      // The client left before its answer: nobody to answer, so stop the upstream work too.
      routed.gone = true;
      routed.call?.cancel();
    };
    response.once('close', closed);
    const hasBody = declaredBodySize(request) !== 0;
    // The operators' pages take no CORS, whatever the method (their GET and HEAD never come here).
    const operatorPage = this.#options.telemetry.servesPage(path);
    if (!operatorPage) this.#options.cors?.decorate(request, response);
    if (this.#options.connections.isRefused(request)) {
      this.#options.answers.fail(
        request,
        response,
        null,
        gatewayErrors.tooManyConnections(),
        true,
        telemetry.requestId,
      );
      return;
    }
    // Node parses every request a client pipelines and hands each over at once, answers queued in
    // order: one socket could start a thousand upstream calls with one write.
    if (connection && connection.inFlight > this.#options.maxPipelinedRequests) {
      const error = gatewayErrors.tooManyPipelined(this.#options.maxPipelinedRequests);
      this.#options.answers.fail(request, response, null, error, true, telemetry.requestId);
      return;
    }
    const coding = unsupportedTransferCoding(request);
    if (coding !== undefined) {
      this.#options.answers.fail(
        request,
        response,
        null,
        gatewayErrors.unsupportedTransferCoding(coding),
        true,
        telemetry.requestId,
      );
      return;
    }
    // `OPTIONS *` asks about the server as a whole, not a resource (RFC 9110, section 9.3.7): the
    // methods it serves anywhere, whether or not it has its routes yet (its own pages are there).
    if (method === 'OPTIONS' && url === '*') {
      this.#options.methods.answerOptions(
        request,
        response,
        path,
        this.#options.methods.serverMethods(),
        hasBody,
        telemetry.requestId,
      );
      return;
    }
    if (this.#options.methods.letsPreflightThrough(request, path)) {
      this.#options.methods.answerOptions(
        request,
        response,
        path,
        ROUTABLE_METHODS,
        hasBody,
        telemetry.requestId,
        0,
      );
      return;
    }
    if (ApiDocs.owns(path)) {
      this.#options.pages.answerDocs(request, response, method, path, telemetry, hasBody);
      return;
    }
    if (operatorPage) {
      // A page's GET and HEAD were answered before (see GatewayTelemetry.onRequest): this is another method.
      if (method === 'OPTIONS') {
        this.#options.methods.answerOptionsOfPath(request, response, path, hasBody, telemetry.requestId);
      } else {
        const error = this.#options.methods.notRouted(response, method, path);
        this.#options.answers.fail(request, response, null, error, hasBody, telemetry.requestId);
      }
      return;
    }
    if (!this.#options.table.ready) {
      this.#options.answers.fail(
        request,
        response,
        null,
        gatewayErrors.notReady(),
        hasBody,
        telemetry.requestId,
      );
      return;
    }
    // Until a service has registered a route, a path the gateway does not know may be one on its way
    // (a gateway started before the services): "try again", not 404, which says it will never exist.
    if (!this.#options.table.knowsAnyRoute) {
      this.#options.answers.fail(
        request,
        response,
        null,
        gatewayErrors.noRouteYet(),
        hasBody,
        telemetry.requestId,
      );
      return;
    }
    if (method === 'OPTIONS') {
      this.#options.methods.answerOptionsOfPath(request, response, path, hasBody, telemetry.requestId);
      return;
    }
    if (
      isCrossOriginWrite(request, method, (asked) => this.#options.cors?.allowedOrigin(asked) !== undefined)
    ) {
      this.#options.answers.fail(
        request,
        response,
        null,
        gatewayErrors.crossOriginWrite(),
        hasBody,
        telemetry.requestId,
      );
      return;
    }
    // HEAD is GET: Node writes no body for it, and keeps the status and every header, Content-Length
    // too, so a refusal's unsent message names GET as well (RFC 9110, section 9.3.2).
    const routedMethod = method === 'HEAD' ? 'GET' : method;
    const match = this.#options.table.match(routedMethod, path);
    if (!match || match.retired) {
      // A retired route is one the gateway knows: its request gets a key, like any routed request.
      const error = match
        ? gatewayErrors.noInstance(routedMethod, path)
        : this.#options.methods.notRouted(response, routedMethod, path);
      const key = error.httpStatus === 503 ? this.#nextKey++ : null;
      this.#options.answers.fail(request, response, key, error, hasBody, telemetry.requestId);
      return;
    }
    const route = match.route;
    telemetry.route = route.template.text;
    const idempotencyKey = idempotencyKeyOf(request);
    const keyed = typeof idempotencyKey === 'string';
    const exchange: Exchange = {
      request,
      response,
      route,
      pathValues: match.pathValues,
      query: queryStart < 0 ? '' : url.slice(queryStart + 1),
      key: this.#nextKey++,
      turn,
      deadline: Date.now() + this.#options.deadlineMs,
      idempotent: IDEMPOTENT_METHODS.has(method),
      outcomeUnknown: false,
      idempotencyKey: keyed ? idempotencyKey : undefined,
      requestId: telemetry.requestId,
      metadata: telemetry.metadata(keyed ? idempotencyKey : undefined),
      call: undefined,
      gone: false,
      bodyRead: !hasBody,
      cutShort: undefined,
    };
    routed = exchange;
    if (this.#options.isStopping()) {
      this.#options.answers.answerError(exchange, gatewayErrors.stopping());
    } else if (idempotencyKey instanceof GatewayError) {
      this.#options.answers.answerError(exchange, idempotencyKey);
    } else if (BODY_METHODS.has(method) || takesBody(route)) {
      this.#options.intake
        .readThenDispatch(exchange, expectsContinue, turn)
        .catch((error: unknown) => this.#options.answers.internalError(exchange, error));
    } else {
      this.#options.intake.dispatchInTurn(exchange, NO_INPUT, connection, turn);
    }
  }

  /**
   * Marks a routed answer whose status was sent and whose end never was: the gateway cut it short
   * (a page failed, or its stop closed the connection), or its client closed the connection, or
   * took nothing of it for too long. Counted as a whole 200 before, a list its client abandoned
   * after the first page looked served in full.
   */
  #countIncomplete(
    exchange: Exchange,
    connection: Connection | undefined,
    telemetry: RequestTelemetry,
  ): void {
    if (exchange.cutShort !== undefined) telemetry.cutShort(exchange.cutShort);
    else if (this.#options.telemetry.closesAllConnections) {
      telemetry.cutShort('the gateway stopped before the answer ended: its grace was over');
    } else if (exchange.clientStoppedReading || connection?.closedUnread) {
      telemetry.cutShort('the client took nothing of the answer for too long', 'client_stopped_reading');
    } else telemetry.cutShort('the client closed the connection before the answer ended', 'client_closed');
  }

  /**
   * Refuses a request Node handed over but the gateway will not route (no Host, an Expect it cannot
   * meet, a malformed path), as a request still: with its id, counted and in the rates when its
   * answer closes. The connection closes after it unless `closeConnection` is false (a request with
   * no body, whose framing is sound).
   */
  refuseBeforeRouting(
    request: IncomingMessage,
    response: ServerResponse,
    error: GatewayError,
    closeConnection = true,
  ): void {
    const { path } = splitQuery(originForm(request.url ?? '/'));
    const telemetry = this.#options.telemetry.onRequest(request, request.method ?? 'GET', path);
    // Queued behind other answers (pipelining), it gets its 'close' even if the socket closes first
    // (see Connection.track): else it was never counted, and its span never ended.
    this.#options.connections.of(request.socket)?.track(response);
    response.once('close', () => telemetry.closed(response));
    // A page can send such a request (fetch('/goods/%FF')): without the CORS headers its browser
    // hides the 400 and its message from it, and a cache could mix origins up.
    this.#options.cors?.decorate(request, response);
    // Its preflight too, as a request the gateway refuses after routing (see
    // MethodAnswers.letsPreflightThrough): answered 400, it failed the page's fetch ("Failed to
    // fetch") before the request was sent.
    if (this.#options.cors?.allowedOrigin(request) !== undefined && Cors.isPreflight(request)) {
      this.#options.methods.answerOptions(
        request,
        response,
        path,
        ROUTABLE_METHODS,
        closeConnection,
        telemetry.requestId,
        0,
      );
      return;
    }
    this.#options.answers.fail(request, response, null, error, closeConnection, telemetry.requestId);
  }
}

/** Whether a route's HttpRule takes a body, whatever its method (a DELETE may). */
function takesBody(route: Route): boolean {
  return route.serving.some((instance) => instance.plan.route.body.kind !== 'none');
}
