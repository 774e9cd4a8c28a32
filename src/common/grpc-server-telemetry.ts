import {
  type handleUnaryCall,
  type Metadata,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
  type ServerOptions,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from './logger.js';
import {
  type GrpcCallMetrics,
  type GrpcMethodLabels,
  grpcMethodLabels,
  grpcType,
  secondsSince,
} from './metrics.js';
import {
  attachCallContext,
  type CallContext,
  isValidRequestId,
  REQUEST_ID_HEADER,
  TRACEPARENT_HEADER,
  TRACESTATE_HEADER,
  traceCarrierFrom,
} from './request-context.js';
import { wrapHandlers } from './service-handlers.js';
import type { TraceCarrier, Tracer, TraceSpan } from './trace-span.js';
import { activeTracer } from './tracing.js';

/** Options of {@link ServerCallTelemetry}. */
export interface ServerTelemetryOptions {
  /** Server-side call metrics; none: no metric is recorded. */
  metrics?: GrpcCallMetrics | undefined;
  /**
   * Give each call a {@link CallContext} with its request id (from `x-request-id` metadata), which
   * the handler finds by the call's metadata (see requestLogFields) to name the request in its lines.
   */
  requestIds?: boolean;
  /** At debug level, one line per call: method, status code, duration (and the request id). */
  log?: Logger;
}

type MethodDefinition = ServerMethodDefinition<unknown, unknown>;

/**
 * The telemetry of a component's gRPC server: counts and times every call by method and status code
 * (started, handled, handling seconds); makes a server span per call when tracing is on, a child of
 * the caller's `traceparent`; and gives each call a context that names the request and holds its
 * span, which the handler hands to its store when the call is sampled (see traceParentOf).
 *
 * Two ways in, one behaviour. The unary handlers of a service are wrapped ({@link instrument}).
 * Every other method (health, reflection, streams, the distributor's) goes through the
 * {@link serverOptions} interceptor, which hands the wrapped methods' calls on as they came. grpc-js
 * passes its base call through the interceptors; only an interceptor that wraps it in a
 * ServerInterceptingCall makes each call go through a second call object and its listeners, which
 * cost more than everything the telemetry does (`npm run bench:calls`). A wrapped method counts the
 * calls that reach its handler: one that grpc-js refuses before (a message over the size limit) is
 * not counted by the server; the caller's client metrics see it. A message that does not decode
 * reaches the handler (see strict-requests.ts), which refuses it, and is counted.
 */
export class ServerCallTelemetry {
  readonly #metrics: GrpcCallMetrics | undefined;
  readonly #requestIds: boolean;
  readonly #log: Logger | undefined;
  readonly #tracer: Tracer | undefined;
  readonly #labelsByPath = new Map<string, GrpcMethodLabels>();
  /** The methods whose handlers observe their own calls: the interceptor leaves them alone. */
  readonly #instrumented = new Set<string>();

  constructor({ metrics, requestIds = false, log }: ServerTelemetryOptions) {
    this.#metrics = metrics;
    this.#requestIds = requestIds;
    this.#log = log;
    this.#tracer = activeTracer();
  }

  /** Whether there is anything to do: when not, nothing is wrapped and no interceptor is added. */
  get active(): boolean {
    return Boolean(this.#metrics || this.#requestIds || this.#tracer || this.#log?.isLevelEnabled('debug'));
  }

  /** grpc-js server options: the interceptor for the methods no handler observes, if active. */
  serverOptions(): Pick<ServerOptions, 'interceptors'> {
    return this.active ? { interceptors: [this.#intercept] } : {};
  }

  /**
   * A service's handlers with every unary one wrapped to observe its own calls (found by the
   * definition's method name, or its original name, as grpc-js finds them); the others unchanged.
   */
  instrument<Implementation extends UntypedServiceImplementation>(
    definition: ServiceDefinition,
    implementation: Implementation,
  ): Implementation {
    if (!this.active) return implementation;
    return wrapHandlers(definition, implementation, (handler, method) => {
      if (method.requestStream || method.responseStream) return undefined;
      this.#instrumented.add(method.path);
      return this.#observeUnary(method, handler as handleUnaryCall<unknown, unknown>);
    });
  }

  #observeUnary(
    method: MethodDefinition,
    handler: handleUnaryCall<unknown, unknown>,
  ): handleUnaryCall<unknown, unknown> {
    return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const observed = this.#begin(method, call.metadata);
      const reply: sendUnaryData<unknown> = (error, value, trailer, flags) => {
        observed.finish(answeredCode(call, error), error?.details);
        callback(error, value, trailer, flags);
      };
      // A call cancelled or out of time is over for its client: counted then, and its span ended,
      // even if its handler never answers. One listener shared by every call, which finds the call's
      // observation on the call: `once` with a closure kept about 250 bytes per call (the closure,
      // once's wrapper and its state) against 40, for as long as the call lives.
      (call as ObservedOnCall)[OBSERVED_CALL] = observed;
      call.on('cancelled', finishCancelled);
      try {
        handler(call, reply);
      } catch (thrown) {
        // grpc-js answers UNKNOWN to a handler that throws.
        observed.finish(status.UNKNOWN, thrown instanceof Error ? thrown.message : undefined);
        throw thrown;
      }
    };
  }

  readonly #intercept: ServerInterceptor = (method, call) => {
    // grpc-js chains interceptors through their interface only, so the call may pass as it came
    // (its type names the class).
    if (this.#instrumented.has(method.path)) return call as ServerInterceptingCall;
    return this.#interceptingCall(method, call);
  };

  #interceptingCall(method: MethodDefinition, call: ServerInterceptingCallInterface): ServerInterceptingCall {
    let observed: ObservedServerCall | undefined;
    const startedAt = performance.now();
    this.#metrics?.started(this.#labelsOf(method));
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            observed = this.#begin(method, metadata, startedAt);
            nextMetadata(metadata);
          },
          // grpc-js says so both for a client that cancelled (or left) and for the server's own
          // deadline passing (it answers DEADLINE_EXCEEDED itself, not through sendStatus below):
          // told apart by the call's deadline, as for a unary call (see answeredCode).
          onCancel: () => {
            observed ??= this.#begin(method, undefined, startedAt);
            // No details for the deadline: its span then reads DEADLINE_EXCEEDED, as a unary call's.
            if (deadlinePassed(call.getDeadline())) observed.finish(status.DEADLINE_EXCEEDED, undefined);
            else observed.finish(status.CANCELLED, 'cancelled by the client');
          },
        });
      },
      sendStatus: (sent, nextStatus) => {
        observed ??= this.#begin(method, undefined, startedAt);
        // Sent past the deadline, before grpc-js's timer ran: its client saw DEADLINE_EXCEEDED.
        observed.finish(
          answeredPastDeadline(call.getDeadline()) ? status.DEADLINE_EXCEEDED : (sent.code ?? status.UNKNOWN),
          sent.details,
        );
        nextStatus(sent);
      },
    });
  }

  /**
   * Starts observing one call: its span and its context. Counts it as started unless the interceptor
   * has (`startedAt` given); `metadata` is undefined for a call that ended before its metadata came.
   */
  #begin(method: MethodDefinition, metadata: Metadata | undefined, startedAt?: number): ObservedServerCall {
    const labels = this.#labelsOf(method);
    if (startedAt === undefined) this.#metrics?.started(labels);
    let span: TraceSpan | undefined;
    if (this.#tracer && metadata) {
      span = this.#tracer.startSpan(method.path.slice(1), 'server', carrierOf(metadata), {
        'rpc.system': 'grpc',
        'rpc.service': labels.grpc_service,
        'rpc.method': labels.grpc_method,
      });
    }
    let context: CallContext | undefined;
    if (metadata && (this.#requestIds || span)) {
      context = {
        requestId: this.#requestIds ? requestIdOf(metadata) : undefined,
        method: labels.grpc_method,
        span,
      };
      // The handler gets this very metadata object: grpc-js hands it on as it is, for the four
      // kinds of method, as long as no interceptor after this one replaces it.
      attachCallContext(metadata, context);
    }
    return new ObservedServerCall(
      method.path,
      labels,
      startedAt ?? performance.now(),
      this.#metrics,
      this.#log,
      context,
      span,
    );
  }

  #labelsOf(method: MethodDefinition): GrpcMethodLabels {
    let labels = this.#labelsByPath.get(method.path);
    if (!labels) {
      labels = grpcMethodLabels(method.path, grpcType(method.requestStream, method.responseStream));
      this.#labelsByPath.set(method.path, labels);
    }
    return labels;
  }
}

/** One call being observed, until its status: recorded once, whichever way it ends first. */
class ObservedServerCall {
  #finished = false;

  constructor(
    readonly path: string,
    readonly labels: GrpcMethodLabels,
    readonly startedAt: number,
    readonly metrics: GrpcCallMetrics | undefined,
    readonly log: Logger | undefined,
    readonly context: CallContext | undefined,
    readonly span: TraceSpan | undefined,
  ) {}

  finish(code: number, details: string | undefined): void {
    if (this.#finished) return;
    this.#finished = true;
    const seconds = secondsSince(this.startedAt);
    this.metrics?.handled(this.labels, code, seconds);
    if (this.log?.isLevelEnabled('debug')) {
      this.log.debug(
        {
          requestId: this.context?.requestId,
          grpcMethod: this.path.slice(1),
          code: status[code] ?? code,
          durationMs: Math.round(seconds * 10_000) / 10,
        },
        'call handled',
      );
    }
    const span = this.span;
    if (span) {
      span.setAttribute('rpc.grpc.status_code', code);
      if (SERVER_FAULTS.has(code)) span.fail(details ?? status[code] ?? String(code));
      span.end();
    }
  }
}

/** Where a unary call's observation waits for the call's 'cancelled' event (see finishCancelled). */
const OBSERVED_CALL = Symbol('shop.observedCall');

interface ObservedOnCall {
  [OBSERVED_CALL]?: ObservedServerCall;
}

/**
 * The 'cancelled' listener of every observed unary call (grpc-js calls it with the call as `this`).
 * grpc-js also says so after every answer, which finds the call finished already.
 */
function finishCancelled(this: ServerUnaryCall<unknown, unknown>): void {
  // No details of its own: a span's description then names its code (DEADLINE_EXCEEDED), as the
  // client saw it.
  (this as ObservedOnCall)[OBSERVED_CALL]?.finish(answeredCode(this, null), undefined);
}

/**
 * The status a unary call ends with when its handler answers: the answer's, unless the call was
 * already over, when it is what the client saw (grpc-js answered DEADLINE_EXCEEDED itself, or the
 * client cancelled). A deadline travels as the time left (grpc-timeout), so the server's passes
 * later than its client's by the time the call took to arrive; a client that gives up at its own
 * deadline resets the stream, and when that reset arrives first (a loaded machine), the server cannot
 * tell it from a cancel: the call counts as CANCELLED.
 */
function answeredCode(
  call: ServerUnaryCall<unknown, unknown>,
  error: Parameters<sendUnaryData<unknown>>[0],
): number {
  if (call.cancelled) return deadlinePassed(call.getDeadline()) ? status.DEADLINE_EXCEEDED : status.CANCELLED;
  if (answeredPastDeadline(call.getDeadline())) return status.DEADLINE_EXCEEDED;
  return error ? (error.code ?? status.UNKNOWN) : status.OK;
}

function deadlineMsOf(deadline: Date | number): number {
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

/**
 * Whether a call not cancelled is answered at or past its deadline: its handler held the event loop
 * past it (a synchronous SQLite read of a long page, a stall), so grpc-js's deadline timer had not
 * run yet and the answer goes out; but the client's deadline, earlier than the server's by the time
 * the call took to arrive, passed before: its client saw DEADLINE_EXCEEDED. Without the slack of
 * deadlinePassed: an answer just before the deadline may still reach its client.
 */
function answeredPastDeadline(deadline: Date | number): boolean {
  return deadlineMsOf(deadline) <= Date.now();
}

/**
 * How early a call's end may come before its deadline and still be its deadline's: grpc-js sets
 * the deadline from the clock when the call arrives, but starts its timer from the event loop's
 * time, read at the start of the loop's turn, so the timer may fire before the deadline by as
 * much as that turn had taken (a few ms on a busy process, more when it stalls).
 */
const DEADLINE_SLACK_MS = 50;

/** Whether a call's deadline (Infinity: none) has passed, give or take {@link DEADLINE_SLACK_MS}. */
function deadlinePassed(deadline: Date | number): boolean {
  return Date.now() + DEADLINE_SLACK_MS >= deadlineMsOf(deadline);
}

/**
 * The codes that mark a server span as failed, after OpenTelemetry's gRPC conventions: the server's
 * own faults. A caller's mistake (INVALID_ARGUMENT, NOT_FOUND, ...) is an answer, not a failure.
 */
const SERVER_FAULTS = new Set<number>([
  status.UNKNOWN,
  status.DEADLINE_EXCEEDED,
  status.UNIMPLEMENTED,
  status.INTERNAL,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);

/** The caller's request id, when it sent one, once, that is valid (as the gateway reads the header). */
function requestIdOf(metadata: Metadata): string | undefined {
  const values = metadata.get(REQUEST_ID_HEADER);
  return values.length === 1 && isValidRequestId(values[0]) ? values[0] : undefined;
}

/** The caller's W3C trace context, when well formed. */
export function carrierOf(metadata: Metadata): TraceCarrier | undefined {
  const traceparent = metadata.get(TRACEPARENT_HEADER);
  // Most calls of a process that traces carry one; one that carries none costs one lookup.
  if (traceparent.length === 0) return undefined;
  return traceCarrierFrom(traceparent, metadata.get(TRACESTATE_HEADER));
}
