// The shapes of tracing that every component sees, apart from the OpenTelemetry SDK that makes them
// (otel-tracing.ts, loaded only when tracing is asked for) and from whether it runs (tracing.ts).

/** The W3C trace context of a request, as it arrived or as this hop continues it. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

/** The role of a span in a call, as OpenTelemetry's SpanKind says it. */
export type SpanRole = 'server' | 'client' | 'internal';

export type SpanAttributes = Readonly<Record<string, string | number | boolean>>;

/** One span being recorded (or, when its trace is not sampled, one that records nothing). */
export interface TraceSpan {
  /** Renames the span, e.g. once the route of a request is known. */
  setName(name: string): void;
  setAttribute(key: string, value: string | number | boolean): void;
  /** Marks the span as failed (OpenTelemetry's status ERROR), with a short reason. */
  fail(message: string): void;
  end(): void;
  /** The W3C headers that make the next hop a child of this span. */
  carrier(): TraceCarrier;
  /**
   * Whether the span's trace is sampled (W3C flag), ended or not: only then are its children
   * recorded, and only then do they need it as their parent.
   */
  isSampled(): boolean;
}

/** Starts spans; a parent is a span of this process or the trace context that came with a request. */
export interface Tracer {
  /**
   * `linked` is a trace context the span is linked to rather than a child of (an OpenTelemetry span
   * link): a caller's that is not trusted to choose the trace, or its sampling.
   */
  startSpan(
    name: string,
    role: SpanRole,
    parent: TraceSpan | TraceCarrier | undefined,
    attributes?: SpanAttributes,
    linked?: TraceCarrier,
  ): TraceSpan;
}
