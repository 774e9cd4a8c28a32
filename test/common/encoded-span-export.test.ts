import { createServer, type Server } from 'node:http';
import { Server as GrpcServer, ServerCredentials } from '@grpc/grpc-js';
import { type DiagLogger, DiagLogLevel, diag } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import * as tracing from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import {
  type EncodedProtocol,
  EncodedSpanExporter,
  EncodingSpanProcessor,
  exportRequest,
  SpanEncoder,
} from '../../src/common/encoded-span-export.js';

const RESOURCE = resourceFromAttributes({
  'service.name': 'goods',
  'host.name': 'shop-1',
  'process.pid': 4242,
  'process.command_args': ['node', 'dist/services/goods/main.js', '--port', '0'],
});

const QUIET_LOGGER: DiagLogger = {
  error: () => {},
  warn: () => {},
  info: () => {},
  debug: () => {},
  verbose: () => {},
};

/** Spans as the SDK ends them, kept in memory, from a provider with a detected-looking resource. */
function provider(...processors: tracing.SpanProcessor[]) {
  const memory = new tracing.InMemorySpanExporter();
  const sdk = new tracing.BasicTracerProvider({
    resource: RESOURCE,
    spanProcessors: [new tracing.SimpleSpanProcessor(memory), ...processors],
  });
  return { sdk, memory };
}

/** A server span, its client child (failed) and a database span under it, with the attributes the shop sets. */
function someSpans(tracer: ReturnType<tracing.BasicTracerProvider['getTracer']>, padding = '') {
  const server = tracer.startSpan('GET /goods', {
    kind: 1,
    attributes: { 'http.request.method': 'GET', 'url.path': '/goods', 'shop.request_id': `r-1${padding}` },
  });
  server.setAttribute('http.response.status_code', 200);
  server.addEvent('answered', { rows: 3 });
  server.end();
  const client = tracer.startSpan('shop.v1.GoodsService/ListGoods', { kind: 2 });
  client.setStatus({ code: 2, message: 'gRPC status 14' });
  client.end();
  const query = tracer.startSpan('SELECT goods', { attributes: { 'db.system.name': 'mysql', rows: 3.5 } });
  query.end();
}

describe('spans encoded as they end', () => {
  it('never fail the span that ends: one that cannot be written is reported and dropped', async () => {
    const errors: unknown[][] = [];
    diag.setLogger({ ...QUIET_LOGGER, error: (...args: unknown[]) => errors.push(args) }, DiagLogLevel.ERROR);
    const write = vi.spyOn(ProtobufTraceSerializer, 'serializeRequest').mockImplementationOnce(() => {
      throw new Error('cannot write');
    });
    try {
      const exporter = new EncodedSpanExporter('http/protobuf');
      const send = vi.spyOn(exporter, 'export');
      const { sdk } = provider(new EncodingSpanProcessor(exporter));
      expect(() => sdk.getTracer('grpc-shop').startSpan('GET /goods').end()).not.toThrow();
      expect(errors).toEqual([['a span could not be encoded for export, and is dropped', expect.any(Error)]]);
      await sdk.forceFlush();
      expect(send).not.toHaveBeenCalled();
      await sdk.shutdown();
    } finally {
      write.mockRestore();
      diag.disable();
    }
  });

  it('make, batched, the very request the OTLP library writes for the spans themselves', () => {
    const { sdk, memory } = provider();
    someSpans(sdk.getTracer('grpc-shop'));
    someSpans(sdk.getTracer('grpc-shop'));
    const spans = memory.getFinishedSpans();
    const encoder = new SpanEncoder();
    const encoded = spans.map((span) => encoder.encode(span));
    expect(Buffer.from(exportRequest(encoded))).toEqual(
      Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!),
    );
    // A batch may be any part of what was encoded, in any grouping.
    expect(Buffer.from(exportRequest(encoded.slice(2, 4)))).toEqual(
      Buffer.from(ProtobufTraceSerializer.serializeRequest(spans.slice(2, 4))!),
    );
  });

  it('group spans of several resources and scopes as the library does, schema URLs in place', () => {
    const { sdk, memory } = provider();
    const other = new tracing.BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'members' }),
      spanProcessors: [new tracing.SimpleSpanProcessor(memory)],
    });
    someSpans(sdk.getTracer('grpc-shop'));
    someSpans(
      sdk.getTracer('another scope', '1.0.0', { schemaUrl: 'https://opentelemetry.io/schemas/1.25.0' }),
    );
    someSpans(other.getTracer('grpc-shop'));
    const spans = memory.getFinishedSpans();
    const encoder = new SpanEncoder();
    // Interleaved: two scopes under one resource, and a second resource.
    const interleaved = [0, 3, 6, 1, 4, 7, 2, 5, 8].map((index) => spans[index]!);
    const request = exportRequest(interleaved.map((span) => encoder.encode(span)));
    expect(Buffer.from(request)).toEqual(Buffer.from(ProtobufTraceSerializer.serializeRequest(interleaved)!));
  });

  it('go out only through their own processor: the exporter refuses spans of any other', async () => {
    const exporter = new EncodedSpanExporter('grpc');
    expect(exporter.processor()).toBeInstanceOf(EncodingSpanProcessor);
    const { sdk, memory } = provider();
    someSpans(sdk.getTracer('grpc-shop'));
    const result = await new Promise<{ code: number; error?: Error }>((resolve) =>
      exporter.export(memory.getFinishedSpans(), resolve),
    );
    expect(result.code).toBe(ExportResultCode.FAILED);
    expect(result.error?.message).toMatch(/only spans encoded by its own processor/);
    await exporter.shutdown();
  });

  it('fill one block after another, and a span larger than a block gets its own', () => {
    const { sdk, memory } = provider();
    for (let index = 0; index < 150; index++) someSpans(sdk.getTracer('grpc-shop'), 'x'.repeat(400));
    someSpans(sdk.getTracer('grpc-shop'), 'y'.repeat(100_000));
    const spans = memory.getFinishedSpans();
    const encoder = new SpanEncoder();
    const encoded = spans.map((span) => encoder.encode(span));
    expect(new Set(encoded.map((span) => span.chunk)).size).toBeGreaterThan(2);
    expect(Buffer.from(exportRequest(encoded))).toEqual(
      Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!),
    );
  });
});

/** An OTLP endpoint over `protocol` that keeps every request's bytes. */
async function receiver(protocol: EncodedProtocol) {
  const bodies: Buffer[] = [];
  const contentTypes: string[] = [];
  if (protocol === 'grpc') {
    const server = new GrpcServer();
    server.addService(
      { Export: bytesMethod('/opentelemetry.proto.collector.trace.v1.TraceService/Export') },
      {
        Export: (call: { request: Buffer }, callback: (error: null, response: Buffer) => void) => {
          bodies.push(call.request);
          callback(null, Buffer.alloc(0));
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    return {
      endpoint: `http://127.0.0.1:${port}`,
      bodies,
      contentTypes,
      close: async () => server.forceShutdown(),
    };
  }
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method === 'POST' && request.url === '/v1/traces') {
        bodies.push(Buffer.concat(chunks));
        contentTypes.push(request.headers['content-type'] ?? '');
      }
      response.writeHead(200, { 'Content-Type': 'application/x-protobuf', 'Content-Length': 0 }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bodies,
    contentTypes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each(['grpc', 'http/protobuf'] as const)(
  'the exporter of encoded spans over OTLP %s',
  (protocol) => {
    afterEach(() => {
      vi.unstubAllEnvs();
    });

    it('sends, in batches of OTEL_BSP_MAX_EXPORT_BATCH_SIZE, what the OTLP library would', async () => {
      const endpoint = await receiver(protocol);
      try {
        // Read as the library's own exporter and batch processor read them.
        vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', endpoint.endpoint);
        vi.stubEnv('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', '4');
        vi.stubEnv('OTEL_BSP_SCHEDULE_DELAY', '10');
        const { sdk, memory } = provider(new EncodingSpanProcessor(new EncodedSpanExporter(protocol)));
        someSpans(sdk.getTracer('grpc-shop'));
        someSpans(sdk.getTracer('grpc-shop'));
        // A span recorded but not sampled is not exported.
        const recordOnly: tracing.Sampler = {
          shouldSample: () => ({ decision: tracing.SamplingDecision.RECORD }),
          toString: () => 'record only',
        };
        const unsampled = new tracing.BasicTracerProvider({
          sampler: recordOnly,
          spanProcessors: [new EncodingSpanProcessor(new EncodedSpanExporter(protocol))],
        });
        const recorded = unsampled.getTracer('grpc-shop').startSpan('recorded, not sampled');
        expect(recorded.isRecording()).toBe(true);
        recorded.end();
        await unsampled.shutdown();
        await sdk.forceFlush();
        const spans = memory.getFinishedSpans();
        expect(spans).toHaveLength(6);
        // The first batch went when its fourth span ended, the second when flushed: either may land first.
        await vi.waitFor(() => expect(endpoint.bodies).toHaveLength(2));
        const batches = [spans.slice(0, 4), spans.slice(4)].map((batch) =>
          Buffer.from(ProtobufTraceSerializer.serializeRequest(batch)!),
        );
        expect(endpoint.bodies).toEqual(expect.arrayContaining(batches));
        if (protocol === 'http/protobuf')
          expect(endpoint.contentTypes).toEqual(Array(2).fill('application/x-protobuf'));
        await sdk.shutdown();
      } finally {
        await endpoint.close();
      }
    });
  },
);
