import { diag, TraceFlags } from '@opentelemetry/api';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import {
  convertLegacyHttpOptions,
  createOtlpHttpExportDelegate,
} from '@opentelemetry/otlp-exporter-base/node-http';
import {
  convertLegacyOtlpGrpcOptions,
  createOtlpGrpcExportDelegate,
} from '@opentelemetry/otlp-grpc-exporter-base';
import {
  type IExporterMetricsHelper,
  type IExportTraceServiceResponse,
  type ISerializer,
  ProtobufTraceSerializer,
} from '@opentelemetry/otlp-transformer';
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';

// Why spans are encoded when they end: the SDK's batch processor keeps each ended span (a SpanImpl
// and its twenty-odd objects) until its batch is full, 512 spans or 5 s. At a 10 % sample that is
// about a second in a busy gateway, long enough for every span to be copied into the old
// generation, whose growth sets how often V8 runs a full collection. Measured at full speed, a
// shop whose spans went nowhere once ended cost no more than one that sampled nothing, and one
// whose spans waited for their batch (then went nowhere) lost 10 % of its rate. Here each sampled
// span is written at once with the OTLP library's own protobuf serializer, and only its bytes
// wait, in a shared buffer outside V8's heap; the SDK's batch processor still does the batching,
// the timer, the queue limit and the OTEL_BSP_* settings.

/** Protobuf wire type of length-delimited fields: every field this file reads or writes. */
const LENGTH_DELIMITED = 2;
/** ExportTraceServiceRequest.resource_spans, ResourceSpans.scope_spans, ScopeSpans.spans. */
const RESOURCE_SPANS = 1;
const SCOPE_SPANS = 2;
const SPANS = 2;

/** The bytes of a span's resource and scope, as they frame it in a request (see SpanEncoder). */
class SpanFrame {
  constructor(
    /** The ResourceSpans fields other than its scope_spans: the resource, its schema URL. */
    readonly resourceFields: Uint8Array,
    /** The ScopeSpans fields other than its spans: the instrumentation scope, its schema URL. */
    readonly scopeFields: Uint8Array,
  ) {}
}

/**
 * A sampled span once ended, as its encoded OTLP Span message: what the batch processor keeps
 * instead of the span. It reads a span's `spanContext()` (to drop unsampled ones) and `resource`
 * (to wait for attributes still being detected) and nothing else, and hands its batches to
 * {@link EncodedSpanExporter}.
 */
export class EncodedSpan {
  constructor(
    readonly chunk: Buffer,
    readonly start: number,
    readonly end: number,
    readonly frame: SpanFrame,
    readonly resource: ReadableSpan['resource'],
  ) {}

  spanContext(): { traceFlags: number } {
    return SAMPLED_CONTEXT;
  }
}

const SAMPLED_CONTEXT = { traceFlags: TraceFlags.SAMPLED };

/** Where encoded spans are written one after the other: a fresh block when one is full. */
const CHUNK_BYTES = 64 * 1024;

/**
 * Writes each span with the OTLP library's serializer, as a request of its own, and keeps the Span
 * message of it, and, once per resource and scope, the fields that frame it.
 */
export class SpanEncoder {
  #chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  #used = 0;
  readonly #frames = new Map<object, Map<object, SpanFrame>>();

  encode(span: ReadableSpan): EncodedSpan {
    const request = ProtobufTraceSerializer.serializeRequest([span]);
    if (request === undefined) throw new Error('the OTLP serializer wrote nothing for a span');
    const resourceSpans = onlyField(request, 0, request.length, RESOURCE_SPANS);
    const scopeSpans = onlyField(request, resourceSpans.start, resourceSpans.end, SCOPE_SPANS);
    const message = onlyField(request, scopeSpans.start, scopeSpans.end, SPANS);
    const frame = this.#frameOf(span, request, resourceSpans, scopeSpans);
    const length = message.end - message.start;
    if (this.#used + length > this.#chunk.length) {
      this.#chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, length));
      this.#used = 0;
    }
    this.#chunk.set(request.subarray(message.start, message.end), this.#used);
    const encoded = new EncodedSpan(this.#chunk, this.#used, this.#used + length, frame, span.resource);
    this.#used += length;
    return encoded;
  }

  #frameOf(span: ReadableSpan, request: Uint8Array, resourceSpans: Field, scopeSpans: Field): SpanFrame {
    // The SDK's serializer groups spans by these two objects too: one resource and one scope per tracer.
    let byScope = this.#frames.get(span.resource);
    if (!byScope) {
      byScope = new Map();
      this.#frames.set(span.resource, byScope);
    }
    let frame = byScope.get(span.instrumentationScope);
    if (!frame) {
      frame = new SpanFrame(
        fieldsOtherThan(request, resourceSpans.start, resourceSpans.end, SCOPE_SPANS),
        fieldsOtherThan(request, scopeSpans.start, scopeSpans.end, SPANS),
      );
      // A resource still detecting attributes is written as it is now, and not kept for the next span.
      if (!span.resource.asyncAttributesPending) byScope.set(span.instrumentationScope, frame);
    }
    return frame;
  }
}

/** A length-delimited field's content: `start` to `end` in the bytes it was read from. */
interface Field {
  readonly number: number;
  readonly start: number;
  readonly end: number;
  /** Where the field begins, its tag included. */
  readonly tagStart: number;
}

/** The fields of a message found in `bytes` from `start` to `end`. */
function* fieldsOf(bytes: Uint8Array, start: number, end: number): Generator<Field> {
  let at = start;
  while (at < end) {
    const tagStart = at;
    const [tag, afterTag] = readVarint(bytes, at);
    const wireType = tag & 7;
    let contentStart = afterTag;
    let contentEnd: number;
    if (wireType === LENGTH_DELIMITED) {
      const [length, afterLength] = readVarint(bytes, afterTag);
      contentStart = afterLength;
      contentEnd = afterLength + length;
    } else if (wireType === 0) {
      contentEnd = readVarint(bytes, afterTag)[1];
    } else if (wireType === 1) {
      contentEnd = afterTag + 8;
    } else if (wireType === 5) {
      contentEnd = afterTag + 4;
    } else {
      throw new Error(`unexpected protobuf wire type ${wireType}`);
    }
    if (contentEnd > end) throw new Error('a protobuf field runs past its message');
    yield { number: tag >>> 3, start: contentStart, end: contentEnd, tagStart };
    at = contentEnd;
  }
}

/** The one field numbered `number` (a request of one span has one of each). */
function onlyField(bytes: Uint8Array, start: number, end: number, number: number): Field {
  let found: Field | undefined;
  for (const field of fieldsOf(bytes, start, end)) {
    if (field.number !== number) continue;
    if (found) throw new Error(`field ${number} appears twice in a request of one span`);
    found = field;
  }
  if (!found) throw new Error(`field ${number} is missing from a request of one span`);
  return found;
}

/** The fields other than `number`, as written (tags included), copied out. */
function fieldsOtherThan(bytes: Uint8Array, start: number, end: number, number: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const field of fieldsOf(bytes, start, end)) {
    if (field.number !== number) parts.push(bytes.subarray(field.tagStart, field.end));
  }
  return Buffer.concat(parts);
}

function readVarint(bytes: Uint8Array, start: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  let at = start;
  for (;;) {
    const byte = bytes[at++];
    if (byte === undefined) throw new Error('a protobuf varint runs past its bytes');
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, at];
    shift += 7;
  }
}

function varintLength(value: number): number {
  let length = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 128)) length++;
  return length;
}

/** Writes a tag of a length-delimited field and its length; returns where the content goes. */
function writeHeader(into: Uint8Array, at: number, number: number, length: number): number {
  let next = writeVarint(into, at, (number << 3) | LENGTH_DELIMITED);
  next = writeVarint(into, next, length);
  return next;
}

function writeVarint(into: Uint8Array, at: number, value: number): number {
  let rest = value;
  let next = at;
  while (rest >= 0x80) {
    into[next++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  into[next++] = rest;
  return next;
}

/** The ExportTraceServiceRequest of a batch of encoded spans: one ResourceSpans per frame. */
export function exportRequest(spans: readonly EncodedSpan[]): Uint8Array {
  const byFrame = new Map<SpanFrame, EncodedSpan[]>();
  for (const span of spans) {
    const group = byFrame.get(span.frame);
    if (group) group.push(span);
    else byFrame.set(span.frame, [span]);
  }
  const sizes = [...byFrame].map(([frame, group]) => {
    let scopeSpans = frame.scopeFields.length;
    for (const span of group) {
      const length = span.end - span.start;
      scopeSpans += 1 + varintLength(length) + length;
    }
    const resourceSpans = frame.resourceFields.length + 1 + varintLength(scopeSpans) + scopeSpans;
    return { frame, group, scopeSpans, resourceSpans };
  });
  const total = sizes.reduce(
    (sum, size) => sum + 1 + varintLength(size.resourceSpans) + size.resourceSpans,
    0,
  );
  const request = new Uint8Array(total);
  let at = 0;
  for (const { frame, group, scopeSpans, resourceSpans } of sizes) {
    at = writeHeader(request, at, RESOURCE_SPANS, resourceSpans);
    request.set(frame.resourceFields, at);
    at += frame.resourceFields.length;
    at = writeHeader(request, at, SCOPE_SPANS, scopeSpans);
    request.set(frame.scopeFields, at);
    at += frame.scopeFields.length;
    for (const span of group) {
      at = writeHeader(request, at, SPANS, span.end - span.start);
      request.set(span.chunk.subarray(span.start, span.end), at);
      at += span.end - span.start;
    }
  }
  return request;
}

/** A batch as the OTLP exporter's delegate takes it. */
class EncodedBatch {
  constructor(readonly spans: readonly EncodedSpan[]) {}
}

/** How the exporter's own metrics count a batch, as the library counts its spans. */
const BATCH_METRICS: IExporterMetricsHelper<EncodedBatch> = {
  name: 'span',
  countItems: (batch) => batch.spans.length,
};

const BATCH_SERIALIZER: ISerializer<EncodedBatch, IExportTraceServiceResponse> = {
  serializeRequest: (batch) => exportRequest(batch.spans),
  deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
};

/** The OTLP protocols whose messages are protobuf, which this exporter writes. */
export type EncodedProtocol = 'grpc' | 'http/protobuf';

/**
 * The OTLP trace exporter for encoded spans: the library's own transport (gRPC or HTTP), endpoint,
 * headers, timeout, compression and retries, all read from the OTEL_EXPORTER_OTLP_* variables as
 * its OTLPTraceExporter reads them, with a serializer that frames the spans' bytes.
 */
export class EncodedSpanExporter implements SpanExporter {
  readonly #otlp: OTLPExporterBase<EncodedBatch>;

  constructor(readonly protocol: EncodedProtocol) {
    this.#otlp = new OTLPExporterBase(
      protocol === 'grpc'
        ? createOtlpGrpcExportDelegate(
            convertLegacyOtlpGrpcOptions({}, 'TRACES'),
            BATCH_SERIALIZER,
            'otlp_grpc_span_exporter',
            BATCH_METRICS,
            undefined,
            'TraceExportService',
            '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
          )
        : createOtlpHttpExportDelegate(
            convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
            BATCH_SERIALIZER,
            'otlp_http_span_exporter',
            BATCH_METRICS,
            undefined,
          ),
    );
  }

  /** Exports spans the batch processor kept: only ever {@link EncodedSpan}s (see EncodingSpanProcessor). */
  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.#otlp.export(new EncodedBatch(spans as unknown as EncodedSpan[]), resultCallback);
  }

  shutdown(): Promise<void> {
    return this.#otlp.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#otlp.forceFlush();
  }
}

/**
 * The SDK's batch processor over an {@link EncodedSpanExporter}, given each sampled span encoded
 * as it ends rather than the span itself.
 */
export class EncodingSpanProcessor implements SpanProcessor {
  readonly #batches: BatchSpanProcessor;
  readonly #encoder = new SpanEncoder();

  constructor(exporter: EncodedSpanExporter) {
    this.#batches = new BatchSpanProcessor(exporter);
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    let encoded: EncodedSpan;
    try {
      encoded = this.#encoder.encode(span);
    } catch (error) {
      // Ending a span is part of answering a request, which a span that cannot be written must not fail.
      diag.error('a span could not be encoded for export, and is dropped', error);
      return;
    }
    this.#batches.onEnd(encoded as unknown as ReadableSpan);
  }

  forceFlush(): Promise<void> {
    return this.#batches.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#batches.shutdown();
  }
}
