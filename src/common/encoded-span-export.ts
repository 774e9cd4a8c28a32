import { diag, TraceFlags } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
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

/** The fields of a message around one field it repeats: as written, tags included. */
class Surroundings {
  constructor(
    /** The fields written before the repeated one (e.g. the resource, or the scope). */
    readonly before: Uint8Array,
    /** The fields written after it (e.g. a schema URL). */
    readonly after: Uint8Array,
  ) {}
}

/** Where a span goes in a request: under its resource (its ResourceSpans), then its scope (its ScopeSpans). */
class SpanFrame {
  constructor(
    /** The ResourceSpans fields around its scope_spans; shared by every scope of the resource. */
    readonly resource: Surroundings,
    /** The ScopeSpans fields around its spans. */
    readonly scope: Surroundings,
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
  readonly #frames = new Map<object, { resource: Surroundings; byScope: Map<object, SpanFrame> }>();

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
    let ofResource = this.#frames.get(span.resource);
    if (!ofResource) {
      const resource = surroundings(request, resourceSpans.start, resourceSpans.end, SCOPE_SPANS);
      ofResource = { resource, byScope: new Map() };
      // A resource still detecting attributes is written as it is now, and not kept for the next span.
      if (!span.resource.asyncAttributesPending) this.#frames.set(span.resource, ofResource);
    }
    let frame = ofResource.byScope.get(span.instrumentationScope);
    if (!frame) {
      frame = new SpanFrame(
        ofResource.resource,
        surroundings(request, scopeSpans.start, scopeSpans.end, SPANS),
      );
      ofResource.byScope.set(span.instrumentationScope, frame);
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

/** The fields before and after the one numbered `number` (a request of one span has one). */
function surroundings(bytes: Uint8Array, start: number, end: number, number: number): Surroundings {
  const field = onlyField(bytes, start, end, number);
  // Copies (a Buffer's subarray would be a view), so that the span's request is not kept.
  return new Surroundings(
    Uint8Array.prototype.slice.call(bytes, start, field.tagStart),
    Uint8Array.prototype.slice.call(bytes, field.end, end),
  );
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

/**
 * The ExportTraceServiceRequest of a batch of encoded spans, as the OTLP library writes it: one
 * ResourceSpans per resource, one ScopeSpans per scope within it, each in the order it first came.
 */
export function exportRequest(spans: readonly EncodedSpan[]): Uint8Array {
  const byResource = new Map<Surroundings, Map<SpanFrame, EncodedSpan[]>>();
  for (const span of spans) {
    let byScope = byResource.get(span.frame.resource);
    if (!byScope) {
      byScope = new Map();
      byResource.set(span.frame.resource, byScope);
    }
    const group = byScope.get(span.frame);
    if (group) group.push(span);
    else byScope.set(span.frame, [span]);
  }
  const resources = [...byResource].map(([resource, byScope]) => {
    const scopes = [...byScope].map(([frame, group]) => {
      let size = frame.scope.before.length + frame.scope.after.length;
      for (const span of group) size += fieldSize(span.end - span.start);
      return { frame, group, size };
    });
    let size = resource.before.length + resource.after.length;
    for (const scope of scopes) size += fieldSize(scope.size);
    return { resource, scopes, size };
  });
  const request = new Uint8Array(resources.reduce((total, resource) => total + fieldSize(resource.size), 0));
  let at = 0;
  const put = (bytes: Uint8Array) => {
    request.set(bytes, at);
    at += bytes.length;
  };
  for (const { resource, scopes, size } of resources) {
    at = writeHeader(request, at, RESOURCE_SPANS, size);
    put(resource.before);
    for (const { frame, group, size: scopeSize } of scopes) {
      at = writeHeader(request, at, SCOPE_SPANS, scopeSize);
      put(frame.scope.before);
      for (const span of group) {
        at = writeHeader(request, at, SPANS, span.end - span.start);
        put(span.chunk.subarray(span.start, span.end));
      }
      put(frame.scope.after);
    }
    put(resource.after);
  }
  return request;
}

/** The size of a length-delimited field of a one-byte tag (every field here) with `length` bytes of content. */
function fieldSize(length: number): number {
  return 1 + varintLength(length) + length;
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

  /** The processor that feeds this exporter: spans encoded as they end (see EncodingSpanProcessor). */
  processor(): SpanProcessor {
    return new EncodingSpanProcessor(this);
  }

  /** Exports the spans its processor kept, which are {@link EncodedSpan}s; anything else fails the batch. */
  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const encoded: unknown[] = spans;
    if (!encoded.every((span) => span instanceof EncodedSpan)) {
      resultCallback({
        code: ExportResultCode.FAILED,
        error: new Error('EncodedSpanExporter exports only spans encoded by its own processor'),
      });
      return;
    }
    this.#otlp.export(new EncodedBatch(encoded as EncodedSpan[]), resultCallback);
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
