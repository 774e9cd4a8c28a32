import { type ServiceError, status } from '@grpc/grpc-js';
import { detailsCause, limiterOf } from '../common/log-limiter.js';
import type { Logger } from '../common/logger.js';
import { tlsMismatchHint } from '../common/tls-mismatch-hint.js';
import type { CallPlan } from './call-plan.js';
import { errorBody, successBody } from './envelope.js';
import type { Exchange } from './exchange.js';
import { GatewayError, gatewayErrors } from './gateway-error.js';
import type { InstancePool } from './instance-pool.js';
import { PageStreamer } from './page-streamer.js';
import { InvalidParameterError } from './request-decoder.js';
import type { RequestInput } from './request-input.js';
import type { Instance, RouteTable } from './route-table.js';
import {
  cutAfterSent,
  OUTCOME_UNKNOWN,
  outcomeForStatus,
  retryPushbackOf,
  upstreamStatus,
  WRITE_DEADLINE_EXCEEDED,
  WRITE_OUTCOME_UNCONFIRMED,
} from './status-mapping.js';

/** What the dispatcher needs of the gateway around it: its channels, its routes, and how to answer. */
export interface DispatcherOptions {
  pool: InstancePool;
  table: RouteTable;
  log: Logger;
  /** Whether the gateway dials the services with TLS, for the hint at a TLS mismatch (see tlsMismatchHint). */
  ownTls: boolean;
  /** The deadline of one page's call of a streamed list. */
  deadlineMs: number;
  /** How long a client may take nothing of a streamed list (see PageStreamer's unreadAnswerTimeoutMs). */
  unreadAnswerTimeoutMs: number;
  /** Lists of more than one page streamed at once (see PageStreamer). */
  maxStreamedLists: number;
  /** Whether the gateway is stopping: nothing is retried then. */
  isStopping(): boolean;
  /** Whether the answer to this exchange closes its connection (see AnswerWriter.closesAfter). */
  closesAfter(exchange: Exchange): boolean;
  answer(exchange: Exchange, httpStatus: number, body: Buffer, retryAfter: boolean | number): void;
  answerError(exchange: Exchange, error: GatewayError): void;
  internalError(exchange: Exchange, error: unknown): void;
}

/**
 * The gateway's dispatch, apart from its HTTP front: for a request whose route and input the front
 * has read, pick a serving instance → decode the request message → call with the deadline → retry
 * once elsewhere when that is safe → answer the book's envelope (or stream a paged list). The
 * front owns sockets (http-front.ts), the way of each request to its exchange (request-pipeline.ts),
 * bodies and turns (exchange-intake.ts) and the HTTP-level answers (answer-writer.ts, method-answers.ts).
 */
export class Dispatcher {
  readonly #options: DispatcherOptions;
  /** Answers the routes whose methods page (AIP-158): whole lists streamed, or one page. */
  readonly #pages: PageStreamer<Exchange>;

  constructor(options: DispatcherOptions) {
    this.#options = options;
    this.#pages = new PageStreamer<Exchange>({
      pool: options.pool,
      log: options.log,
      deadlineMs: options.deadlineMs,
      unreadAnswerTimeoutMs: options.unreadAnswerTimeoutMs,
      answer: (exchange, httpStatus, body) => options.answer(exchange, httpStatus, body, false),
      answerStatus: (exchange, instance, error) =>
        this.answerStatus(
          exchange,
          instance,
          upstreamStatus(error.code, error.details, exchange.deadline),
          error,
        ),
      otherInstance: (exchange, failed) =>
        mayRetry(exchange, failed) && !options.isStopping()
          ? retryTarget(
              exchange,
              options.table.get(`${exchange.route.method} ${exchange.route.path}`)?.pickOther(failed),
            )
          : undefined,
      closeAfter: (exchange) => options.closesAfter(exchange),
      maxStreamedLists: options.maxStreamedLists,
      answerError: (exchange, error) => options.answerError(exchange, error),
    });
  }

  /** Picks an instance (503 if none serves or none can be reached), decodes the request (Invalid Parameters if it cannot), calls. */
  dispatch(exchange: Exchange, input: RequestInput): void {
    const { route } = exchange;
    const instance = route.pick();
    if (!instance) {
      // Instances listed but none picked: every one out of this gateway's reach for long (see pick).
      this.#options.answerError(
        exchange,
        route.serving.length > 0
          ? gatewayErrors.instancesOutOfReach(route.method, route.path)
          : gatewayErrors.noInstance(route.method, route.path),
      );
      return;
    }
    let bytes: Buffer;
    try {
      bytes = encode(instance.plan, exchange, input);
    } catch (error) {
      if (error instanceof GatewayError) {
        this.#options.answerError(exchange, error);
        return;
      }
      if (!(error instanceof InvalidParameterError)) throw error;
      this.#options.log.debug(
        { key: exchange.key, requestId: exchange.requestId, detail: error.message },
        'invalid parameters',
      );
      this.#options.answer(exchange, 200, errorBody(exchange.key, 'Invalid Parameters'), false);
      return;
    }
    if (instance.plan.paging) {
      this.#pages.start(exchange, instance, bytes, (plan) => this.#encodeOrUndefined(plan, exchange, input));
      return;
    }
    this.#call(exchange, instance, bytes, input, true);
  }

  #call(exchange: Exchange, instance: Instance, bytes: Buffer, input: RequestInput, first: boolean): void {
    const { upstream, plan } = instance;
    exchange.call = this.#options.pool.call(
      upstream,
      plan.path,
      plan.render,
      bytes,
      exchange.metadata,
      exchange.deadline,
      (error: ServiceError | null, fields?: Buffer) => {
        exchange.call = undefined;
        if (exchange.gone) return;
        try {
          this.#completeCall(exchange, instance, bytes, input, first, error, fields);
        } catch (bug) {
          this.#options.internalError(exchange, bug);
        }
      },
    );
  }

  /** Answers a finished call, or retries it elsewhere once (refused with UNAVAILABLE, if retryable). */
  #completeCall(
    exchange: Exchange,
    instance: Instance,
    bytes: Buffer,
    input: RequestInput,
    first: boolean,
    error: ServiceError | null,
    fields: Buffer | undefined,
  ): void {
    if (!error) {
      this.#options.answer(exchange, 200, successBody(exchange.key, fields!), false);
      return;
    }
    if (!exchange.idempotent && cutAfterSent(error.code, error.details)) exchange.outcomeUnknown = true;
    const code = upstreamStatus(error.code, error.details, exchange.deadline);
    if (code === status.UNAVAILABLE && first && mayRetry(exchange, instance) && !this.#options.isStopping()) {
      // The route is looked up afresh: the snapshot may have changed while the call failed.
      const other = retryTarget(
        exchange,
        this.#options.table.get(`${exchange.route.method} ${exchange.route.path}`)?.pickOther(instance),
      );
      if (other) {
        this.#options.log.debug(
          { key: exchange.key, requestId: exchange.requestId, from: instance.nodeId, to: other.nodeId },
          'retrying elsewhere',
        );
        const retryBytes =
          other.plan === instance.plan ? bytes : this.#encodeOrUndefined(other.plan, exchange, input);
        if (retryBytes) {
          this.#call(exchange, other, retryBytes, input, false);
          return;
        }
      }
    }
    this.answerStatus(exchange, instance, code, error);
  }

  #encodeOrUndefined(plan: CallPlan, exchange: Exchange, input: RequestInput): Buffer | undefined {
    try {
      return encode(plan, exchange, input);
    } catch {
      return undefined;
    }
  }

  answerStatus(exchange: Exchange, instance: Instance, code: status, error: ServiceError): void {
    let outcome = outcomeForStatus(code, error.details, retryPushbackOf(error.metadata));
    // A write cut off once, then refused (or cut) on its retry, may still have been written by the first.
    if (exchange.outcomeUnknown && outcome.retryAfter && outcome.httpStatus === 503)
      outcome = OUTCOME_UNKNOWN;
    else if (code === status.DEADLINE_EXCEEDED && !exchange.idempotent) outcome = WRITE_DEADLINE_EXCEEDED;
    else if (code === status.UNKNOWN && !exchange.idempotent) outcome = WRITE_OUTCOME_UNCONFIRMED;
    if (outcome.httpStatus >= 500) {
      // One line per instance, method and failure per interval: a failing upstream fails every call.
      limiterOf(this.#options.log).warn(
        `upstream ${instance.nodeId} ${instance.plan.grpcMethod} ${error.code} ${detailsCause(error.details)}`,
        {
          key: exchange.key,
          requestId: exchange.requestId,
          node: instance.nodeId,
          grpcMethod: instance.plan.grpcMethod,
          code: status[error.code] ?? error.code,
          details: error.details,
        },
        `upstream call failed: ${outcome.message}${upstreamTlsHint(error, instance, this.#options.ownTls)}`,
      );
    }
    this.#options.answer(
      exchange,
      outcome.httpStatus,
      errorBody(exchange.key, outcome.message),
      outcome.retryAfter,
    );
  }
}

/**
 * Whether a call of `exchange` that `failed` did not take may go to another instance: a GET or a
 * DELETE, or a write with an Idempotency-Key to a method that makes its write once per key (its
 * `shop.v1.idempotency_key` option, as the failed instance's descriptors declare it). A method
 * that ignores the key would write twice, so its keyed POST is treated as an unkeyed one.
 */
function mayRetry(exchange: Exchange, failed: Instance): boolean {
  return exchange.idempotent || (exchange.idempotencyKey !== undefined && failed.plan.route.writesOncePerKey);
}

/**
 * The instance a retry of `exchange` goes to, if it may take it: for a keyed write, only one whose
 * method writes once per key too (in a rolling deploy that adds the option, an instance of the old
 * build would write again).
 */
function retryTarget(exchange: Exchange, other: Instance | undefined): Instance | undefined {
  return other && (exchange.idempotent || other.plan.route.writesOncePerKey) ? other : undefined;
}

/**
 * The hint at a TLS mismatch with the instance, for a call that never reached it: an instance listed
 * at an address where the server speaks otherwise (a proxy in front of it, a port that another
 * process holds) fails every call as if it were down.
 */
function upstreamTlsHint(error: ServiceError, instance: Instance, ownTls: boolean): string {
  if (error.code !== status.UNAVAILABLE) return '';
  return tlsMismatchHint(error.details, ownTls, instance.nodeId);
}

function encode(plan: CallPlan, exchange: Exchange, body: RequestInput): Buffer {
  return plan.decode({ pathValues: exchange.pathValues, query: exchange.query, body });
}
