import type { ServerResponse } from 'node:http';
import { status } from '@grpc/grpc-js';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { CounterFamily, type CounterSeries, HistogramFamily, type HistogramSeries } from './metric-series.js';

export { Registry };

/** Options of {@link createMetricsRegistry}. */
export interface MetricsRegistryOptions {
  /**
   * Add the process's own metrics (CPU, memory, event loop lag, GC, handles: prom-client's
   * collectDefaultMetrics). Once per process: each registry that has them watches the event loop
   * and GC, so factories that tests build by the dozen leave them off and main.ts turns them on.
   */
  processMetrics?: boolean;
}

/**
 * A Prometheus registry of one component instance. Never prom-client's global default registry: a
 * test process builds many servers, and each must count only its own calls.
 */
export function createMetricsRegistry({ processMetrics = false }: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  // prom-client's default 10 ms event-loop sampling stays: it wakes every process 100 times a
  // second (about 4 ms of CPU a second each, measured here), but Node's histogram records the whole
  // interval between samples, so a longer one would raise every nodejs_eventloop_lag_* value by the
  // difference and break the dashboards and alerts written for prom-client's.
  if (processMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * Answers a scrape: the registry in Prometheus's text format (a failing collector answers 500).
 * `render` may hand out a render shared by several scrapes (see the admin server).
 */
export function serveMetrics(
  registry: Registry,
  response: ServerResponse,
  render: () => Promise<string> = () => registry.metrics(),
): void {
  render().then(
    (text) => {
      if (response.destroyed) return;
      response.writeHead(200, { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' });
      response.end(text);
    },
    (error: unknown) => {
      if (response.destroyed) return;
      response.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end(`collecting metrics failed: ${error instanceof Error ? error.message : String(error)}\n`);
    },
  );
}

/**
 * A render of the registry that scrapes arriving while it is made share: the text is the same for
 * each, and rendering is the cost. Without it, one client's pipelined and parallel scrapes each
 * rendered anew (200 connections of 16 pipelined `GET /metrics` on the gateway's port held its
 * event loop for some 9 s).
 */
export function sharedRender(registry: Registry): () => Promise<string> {
  let rendering: Promise<string> | undefined;
  return () => {
    rendering ??= registry.metrics().finally(() => {
      rendering = undefined;
    });
    return rendering;
  };
}

/** Prometheus's default latency buckets (also go-grpc-prometheus's), in seconds. */
export const DEFAULT_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * gRPC status codes as go-grpc-prometheus writes them in `grpc_code` ("OK", "NotFound", ...), so
 * that dashboards and alerts written for Go services work unchanged.
 */
const GO_CODE_NAMES: Record<number, string> = {
  [status.OK]: 'OK',
  [status.CANCELLED]: 'Canceled',
  [status.UNKNOWN]: 'Unknown',
  [status.INVALID_ARGUMENT]: 'InvalidArgument',
  [status.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [status.NOT_FOUND]: 'NotFound',
  [status.ALREADY_EXISTS]: 'AlreadyExists',
  [status.PERMISSION_DENIED]: 'PermissionDenied',
  [status.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [status.ABORTED]: 'Aborted',
  [status.OUT_OF_RANGE]: 'OutOfRange',
  [status.UNIMPLEMENTED]: 'Unimplemented',
  [status.INTERNAL]: 'Internal',
  [status.UNAVAILABLE]: 'Unavailable',
  [status.DATA_LOSS]: 'DataLoss',
  [status.UNAUTHENTICATED]: 'Unauthenticated',
};

/** The `grpc_code` label of a status code; a code outside the 17 is "Unknown", as gRPC reads it. */
export function grpcCodeLabel(code: number): string {
  return GO_CODE_NAMES[code] ?? 'Unknown';
}

/** How a method streams, as go-grpc-prometheus's `grpc_type` says it. */
export type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

export function grpcType(requestStream: boolean, responseStream: boolean): GrpcType {
  if (requestStream) return responseStream ? 'bidi_stream' : 'client_stream';
  return responseStream ? 'server_stream' : 'unary';
}

/** "/shop.v1.GoodsService/ListGoods" → ["shop.v1.GoodsService", "ListGoods"]. */
export function splitMethodPath(path: string): [service: string, method: string] {
  const slash = path.lastIndexOf('/');
  return [path.slice(path.startsWith('/') ? 1 : 0, slash), path.slice(slash + 1)];
}

type GrpcLabel = 'grpc_type' | 'grpc_service' | 'grpc_method';

/** The series one method records into, bound once. */
interface MethodSeries {
  readonly started: CounterSeries;
  /** Bound with the first call handled, so that a method shows no latency before it has one. */
  seconds: HistogramSeries | undefined;
  readonly handled: Map<number, CounterSeries>;
}

/**
 * One side's gRPC call metrics, named as go-grpc-prometheus names them: `grpc_<side>_started_total`,
 * `grpc_<side>_handled_total` (with `grpc_code`) and the latency histogram
 * `grpc_<side>_handling_seconds`. Labels are the method's service and name, which come from the
 * registered service definitions (or the routes the gateway learned), never from a caller's text.
 * Every call records into series bound once per method and code (see metric-series.ts).
 */
export class GrpcCallMetrics {
  readonly #started: CounterFamily<GrpcLabel>;
  readonly #handled: CounterFamily<GrpcLabel | 'grpc_code'>;
  readonly #seconds: HistogramFamily<GrpcLabel>;
  readonly #series = new Map<GrpcMethodLabels, MethodSeries>();
  /** Labels of methods forgotten: a call begun before it ends unrecorded, not bringing them back. */
  readonly #forgotten = new WeakSet<GrpcMethodLabels>();

  constructor(registry: Registry, side: 'server' | 'client') {
    const what = side === 'server' ? 'RPCs started on the server' : 'RPCs started by the client';
    const labelNames: GrpcLabel[] = ['grpc_type', 'grpc_service', 'grpc_method'];
    this.#started = new CounterFamily({
      name: `grpc_${side}_started_total`,
      help: `Total number of ${what}.`,
      labelNames,
      registers: [registry],
    });
    this.#handled = new CounterFamily({
      name: `grpc_${side}_handled_total`,
      help: `Total number of RPCs completed on the ${side}, regardless of success or failure.`,
      labelNames: [...labelNames, 'grpc_code'],
      registers: [registry],
    });
    this.#seconds = new HistogramFamily({
      name: `grpc_${side}_handling_seconds`,
      help: `Histogram of response latency (seconds) of gRPC calls ${side === 'server' ? 'handled by the server' : 'until the client got the status'}.`,
      labelNames,
      buckets: DEFAULT_LATENCY_BUCKETS,
      registers: [registry],
    });
  }

  started(labels: GrpcMethodLabels): void {
    if (this.#forgotten.has(labels)) return;
    this.#seriesOf(labels).started.inc();
  }

  handled(labels: GrpcMethodLabels, code: number, seconds: number): void {
    if (this.#forgotten.has(labels)) return;
    const series = this.#seriesOf(labels);
    let handled = series.handled.get(code);
    if (!handled) {
      handled = this.#handled.series({ ...labels, grpc_code: grpcCodeLabel(code) });
      series.handled.set(code, handled);
    }
    handled.inc();
    series.seconds ??= this.#seconds.series(labels);
    series.seconds.observe(seconds);
  }

  /** Drops the series of a method no longer called (see SeriesFamily.forget). */
  forget(labels: GrpcMethodLabels): void {
    this.#forgotten.add(labels);
    this.#series.delete(labels);
    const method = { grpc_service: labels.grpc_service, grpc_method: labels.grpc_method };
    this.#started.forget(method);
    this.#handled.forget(method);
    this.#seconds.forget(method);
  }

  #seriesOf(labels: GrpcMethodLabels): MethodSeries {
    let series = this.#series.get(labels);
    if (!series) {
      series = {
        started: this.#started.series(labels),
        seconds: undefined,
        handled: new Map(),
      };
      this.#series.set(labels, series);
    }
    return series;
  }
}

/** The labels that name a method. */
export type GrpcMethodLabels = Readonly<Record<GrpcLabel, string>>;

/**
 * The labels of one method, from its path and how it streams: make them once per method and reuse
 * them for every call (the metrics find a method's series by this very object).
 */
export function grpcMethodLabels(path: string, type: GrpcType): GrpcMethodLabels {
  const [service, method] = splitMethodPath(path);
  return { grpc_type: type, grpc_service: service, grpc_method: method };
}

/** Seconds since a `performance.now()` reading. */
export function secondsSince(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}
