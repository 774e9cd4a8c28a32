import {
  type Context,
  type ContextManager,
  type Tracer as OtelTracer,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { TraceCarrier } from './request-context.js';
import type { SpanAttributes, SpanRole, Tracer, TraceSpan } from './tracing.js';

// Loaded only when tracing is asked for (see tracing.ts): nothing of OpenTelemetry is imported otherwise.

const KINDS: Record<SpanRole, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  internal: SpanKind.INTERNAL,
};

/** A span behind the project's small interface. */
class OtelSpan implements TraceSpan {
  constructor(readonly span: Span) {}

  setName(name: string): void {
    this.span.updateName(name);
  }

  setAttribute(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }

  fail(message: string): void {
    this.span.setStatus({ code: SpanStatusCode.ERROR, message });
  }

  end(): void {
    this.span.end();
  }

  carrier(): TraceCarrier {
    const carrier: TraceCarrier = {};
    propagation.inject(trace.setSpan(ROOT_CONTEXT, this.span), carrier);
    return carrier;
  }
}

class ProjectTracer implements Tracer {
  constructor(readonly tracer: OtelTracer) {}

  startSpan(
    name: string,
    role: SpanRole,
    parent: TraceSpan | TraceCarrier | undefined,
    attributes?: SpanAttributes,
  ): TraceSpan {
    const span = this.tracer.startSpan(
      name,
      { kind: KINDS[role], ...(attributes ? { attributes } : {}) },
      parentContext(parent),
    );
    return new OtelSpan(span);
  }
}

/**
 * The SDK's default context manager keeps the active span in an AsyncLocalStorage, and the batch
 * exporter's first export switches it on; on Node 20 that puts a hook on every promise the process
 * makes, measured at 2 to 3 times the cost of a bare `await`. The project never asks for "the active
 * span": every span is given its parent (see ProjectTracer), so no context is kept at all.
 */
const NO_CONTEXT: ContextManager = {
  active: () => ROOT_CONTEXT,
  with: (_context, fn, thisArg, ...args) => fn.call(thisArg, ...args),
  bind: (_context, target) => target,
  enable() {
    return this;
  },
  disable() {
    return this;
  },
};

function parentContext(parent: TraceSpan | TraceCarrier | undefined): Context {
  if (parent === undefined) return ROOT_CONTEXT;
  if (parent instanceof OtelSpan) return trace.setSpan(ROOT_CONTEXT, parent.span);
  return propagation.extract(ROOT_CONTEXT, parent);
}

/**
 * Starts the OpenTelemetry SDK for Node.js, which reads the standard variables itself:
 * OTEL_TRACES_EXPORTER (otlp, console, zipkin), OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf by
 * default, http/json, grpc), OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and _HEADERS,
 * OTEL_TRACES_SAMPLER(_ARG), OTEL_PROPAGATORS, OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES. Traces only:
 * metrics are Prometheus's (see metrics.ts), so the SDK's own metric and log exporters stay off,
 * and no auto-instrumentation is loaded: the spans are made by the project's own code at each hop.
 */
export function startOpenTelemetry(
  serviceName: string,
  env: NodeJS.ProcessEnv,
): { tracer: Tracer; stop: () => Promise<void> } {
  const named =
    Boolean(env.OTEL_SERVICE_NAME) || /(^|,)\s*service\.name=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  const sdk = new NodeSDK({
    ...(named ? {} : { serviceName }),
    contextManager: NO_CONTEXT,
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  return {
    tracer: new ProjectTracer(trace.getTracer('grpc-shop')),
    stop: () => sdk.shutdown(),
  };
}
