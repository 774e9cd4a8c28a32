import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type Sampler,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import {
  ProjectTracer,
  samplerFromEnv,
  type UnrecordedShortcuts,
  unrecordedShortcuts,
} from '../../src/common/otel-tracing.js';

/** The project's tracer and where the spans it records land. */
export interface MemoryTracer {
  readonly tracer: ProjectTracer;
  /** Each span as it ends (a SimpleSpanProcessor exports it then), in the order they ended. */
  readonly exporter: InMemorySpanExporter;
}

/**
 * The project's tracer (ProjectTracer) over the OpenTelemetry SDK's own provider, which keeps every
 * span it exports in memory. By default sampled as a component started with no OTEL_TRACES_SAMPLER
 * (parentbased_always_on, and the shortcuts that sampler allows): a caller's unsampled trace stays
 * unrecorded, as it does in production.
 */
export function memoryTracer(
  sampler: Sampler = samplerFromEnv({}),
  shortcuts: UnrecordedShortcuts = unrecordedShortcuts({}),
): MemoryTracer {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    sampler,
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  return { tracer: new ProjectTracer(provider.getTracer('test'), shortcuts), exporter };
}
