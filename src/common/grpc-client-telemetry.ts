import type { Metadata } from '@grpc/grpc-js';
import { carrierOf } from './grpc-server-telemetry.js';
import { type GrpcCallMetrics, type GrpcMethodLabels, grpcMethodLabels, secondsSince } from './metrics.js';
import { TRACEPARENT_HEADER, TRACESTATE_HEADER } from './request-context.js';
import type { Tracer, TraceSpan } from './trace-span.js';
import { activeTracer } from './tracing.js';

/** Options of {@link ClientCallTelemetry}. */
export interface ClientTelemetryOptions {
  /** Client-side call metrics; none: no metric is recorded. */
  metrics?: GrpcCallMetrics | undefined;
}

/**
 * The telemetry of the unary calls a component makes, observed where it makes them: counts and times
 * every call attempt by method and status code (`grpc_client_*`), and, when tracing is on, makes a
 * client span per attempt. The span's parent is the `traceparent` the caller put in the call's
 * metadata (the gateway's HTTP span); the metadata sent on names the client span instead, so the
 * service's server span becomes its child.
 *
 * Not a grpc-js client interceptor: with one, grpc-js puts every call through an intercepting call
 * and its listeners, which cost more than the counting (about 3 % of a small call's CPU).
 */
export class ClientCallTelemetry {
  readonly #metrics: GrpcCallMetrics | undefined;
  readonly #tracer: Tracer | undefined;
  readonly #labelsByPath = new Map<string, GrpcMethodLabels>();

  constructor({ metrics }: ClientTelemetryOptions) {
    this.#metrics = metrics;
    this.#tracer = activeTracer();
  }

  /** Whether there is anything to observe. */
  get active(): boolean {
    return Boolean(this.#metrics || this.#tracer);
  }

  /** Drops the metric series of calls to `path`, a method no longer called (the gateway's routes). */
  forget(path: string): void {
    const labels = this.#labelsByPath.get(path);
    if (!labels) return;
    this.#labelsByPath.delete(path);
    this.#metrics?.forget(labels);
  }

  /**
   * Starts observing one attempt of a unary call to `path` that is about to be made with
   * `metadata`: send the returned observation's `metadata` (it carries the client span), and tell it
   * the status the call ended with. Undefined when there is nothing to observe.
   */
  begin(path: string, metadata: Metadata): ObservedClientCall | undefined {
    if (!this.active) return undefined;
    let labels = this.#labelsByPath.get(path);
    if (!labels) {
      labels = grpcMethodLabels(path, 'unary');
      this.#labelsByPath.set(path, labels);
    }
    this.#metrics?.started(labels);
    let sent = metadata;
    let span: TraceSpan | undefined;
    if (this.#tracer) {
      const parent = carrierOf(metadata);
      span = this.#tracer.startSpan(path.slice(1), 'client', parent, {
        'rpc.system': 'grpc',
        'rpc.service': labels.grpc_service,
        'rpc.method': labels.grpc_method,
      });
      const { traceparent, tracestate } = span.carrier();
      // An unsampled call passes its parent's context on as it came: nothing to change.
      if (traceparent !== parent?.traceparent || tracestate !== parent?.tracestate) {
        // The caller reuses its metadata (a retry, the next page): its traceparent stays the parent's.
        sent = metadata.clone();
        if (traceparent) sent.set(TRACEPARENT_HEADER, traceparent);
        if (tracestate) sent.set(TRACESTATE_HEADER, tracestate);
        else sent.remove(TRACESTATE_HEADER);
      }
    }
    return new ObservedClientCall(sent, labels, performance.now(), this.#metrics, span);
  }
}

/** One call attempt being observed, until its status. */
export class ObservedClientCall {
  constructor(
    /** The metadata to send the call with. */
    readonly metadata: Metadata,
    readonly labels: GrpcMethodLabels,
    readonly startedAt: number,
    readonly metrics: GrpcCallMetrics | undefined,
    readonly span: TraceSpan | undefined,
  ) {}

  /** Records the status the call ended with (0 for OK). */
  end(code: number, details: string | undefined): void {
    this.metrics?.handled(this.labels, code, secondsSince(this.startedAt));
    const span = this.span;
    if (span) {
      span.setAttribute('rpc.grpc.status_code', code);
      if (code !== 0) span.fail(details ?? `gRPC status ${code}`);
      span.end();
    }
  }
}
