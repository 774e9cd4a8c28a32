import type { Logger } from './logger.js';
import { stopStepBudget } from './process-lifecycle.js';
import type { Tracer } from './trace-span.js';

/** Tracing as started by {@link startTracing}. */
export interface RunningTracing {
  readonly tracer: Tracer;
  /** Exports the spans still buffered, then stops. */
  stop(): Promise<void>;
}

let running: RunningTracing | undefined;

/** The process's tracer, or undefined when tracing is off (then no span is ever made). */
export function activeTracer(): Tracer | undefined {
  return running?.tracer;
}

/**
 * Whether the environment asks for traces: an exporter named in OTEL_TRACES_EXPORTER (other than
 * "none"), or an OTLP endpoint in OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
 * and OTEL_SDK_DISABLED is not true. Without one of them tracing stays off and costs nothing: the
 * OpenTelemetry SDK is not even loaded.
 */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((name) => name.trim().toLowerCase());
  if (exporters.includes('none')) return false;
  return (
    exporters.some((name) => name !== '') ||
    Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT) ||
    Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  );
}

/**
 * Starts OpenTelemetry tracing for this process when the environment asks for it (see
 * {@link tracingRequested}), configured by the standard OTEL_* variables (exporter, protocol,
 * endpoint, headers, sampler, resource); `serviceName` is the `service.name` unless
 * OTEL_SERVICE_NAME says otherwise. Resolves with undefined when tracing stays off. Call it once,
 * before the component's servers are built. `log` hears how the exporter reaches a collector on
 * this machine when a proxy is set (see keepLocalCollectorOffProxy).
 */
export async function startTracing(
  serviceName: string,
  env: NodeJS.ProcessEnv = process.env,
  log?: Pick<Logger, 'info' | 'warn'>,
): Promise<RunningTracing | undefined> {
  if (running || !tracingRequested(env)) return running;
  const { startOpenTelemetry } = await import('./otel-tracing.js');
  const started = await startOpenTelemetry(serviceName, env, log);
  running = {
    tracer: started.tracer,
    stop: async () => {
      running = undefined;
      await started.stop();
    },
  };
  return running;
}

/**
 * How long the spans still buffered when a component stops may take to reach the collector, at
 * most. The exporter's own deadline (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s) would hold a stop with the
 * collector unreachable past the launcher's limit for a whole stop (STOP_LIMIT_MS).
 */
export const TRACE_FLUSH_AT_STOP_MS = 2_000;

/**
 * Exports the spans still buffered and stops tracing, if it runs (safe to call when it does not),
 * for a stop begun at `stopBegunAt`: 2 s, or what is left of the launcher's limit (stopStepBudget),
 * as the last step of the stop. A collector that refuses the
 * spans, or takes none in that time, costs those spans and a warning, not the stop: the
 * component's own work stopped in order, and it still exits as stopped.
 */
export async function stopTracing(log: Logger, stopBegunAt: number): Promise<void> {
  const stopping = running?.stop();
  if (!stopping) return;
  const budgetMs = stopStepBudget(stopBegunAt, TRACE_FLUSH_AT_STOP_MS);
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    stopping.then(
      () => ({ flushed: true as const }),
      (error: unknown) => ({
        flushed: false as const,
        reason: error instanceof Error ? error.message : String(error),
      }),
    ),
    new Promise<{ flushed: false; reason: undefined }>((resolve) => {
      timer = setTimeout(() => resolve({ flushed: false, reason: undefined }), budgetMs);
    }),
  ]);
  clearTimeout(timer);
  if (outcome.flushed) return;
  log.warn(
    { event: 'trace-flush', budgetMs, ...(outcome.reason === undefined ? {} : { reason: outcome.reason }) },
    outcome.reason === undefined
      ? `traces: the collector took no spans within ${budgetMs} ms of the stop; the spans still buffered are dropped`
      : 'traces: the collector refused the spans still buffered at the stop; they are dropped',
  );
}
