import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { envDetector } from '@opentelemetry/resources';
import * as tracing from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/common/config.js';
import {
  checkEndpoints,
  checkExporterSettings,
  exportersAskedFor,
  samplerFromEnv,
  samplerNamed,
  startOpenTelemetry,
  traceExporters,
  unrecordedShortcuts,
} from '../../src/common/otel-tracing.js';
import { isValidTraceparent } from '../../src/common/request-context.js';
import { memoryTracer } from '../helpers/memory-tracer.js';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

describe('the project tracer over OpenTelemetry', () => {
  it('links a sampled request across hops, with W3C carriers written by hand', () => {
    const { tracer, exporter } = memoryTracer(new tracing.AlwaysOnSampler());
    const http = tracer.startSpan('GET', 'server', undefined);
    const client = tracer.startSpan('shop.v1.GoodsService/ListGoods', 'client', http);
    expect([http.isSampled(), client.isSampled()]).toEqual([true, true]);
    const sent = client.carrier();
    expect(isValidTraceparent(sent.traceparent)).toBe(true);
    const [, traceId, clientId, flags] = TRACEPARENT.exec(sent.traceparent!)!;
    expect(flags).toBe('01');
    // The next process continues from the carrier alone.
    const server = tracer.startSpan('shop.v1.GoodsService/ListGoods', 'server', sent);
    const query = tracer.startSpan('SELECT goods', 'client', server);
    for (const span of [query, server, client, http]) span.end();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((span) => span.name)).toEqual([
      'SELECT goods',
      'shop.v1.GoodsService/ListGoods',
      'shop.v1.GoodsService/ListGoods',
      'GET',
    ]);
    const [querySpan, serverSpan, clientSpan, httpSpan] = spans;
    expect(new Set(spans.map((span) => span.spanContext().traceId))).toEqual(new Set([traceId]));
    expect(clientSpan!.spanContext().spanId).toBe(clientId);
    expect(httpSpan!.parentSpanContext).toBeUndefined();
    expect(clientSpan!.parentSpanContext?.spanId).toBe(httpSpan!.spanContext().spanId);
    expect(serverSpan!.parentSpanContext).toMatchObject({ spanId: clientId, isRemote: true });
    expect(querySpan!.parentSpanContext?.spanId).toBe(serverSpan!.spanContext().spanId);
  });

  it('records the children of a sampled span that has already ended (a call its client cancelled)', () => {
    const { tracer, exporter } = memoryTracer(new tracing.AlwaysOnSampler());
    const server = tracer.startSpan('shop.v1.GoodsService/ListGoods', 'server', undefined);
    server.end();
    expect(server.isSampled()).toBe(true);
    const query = tracer.startSpan('SELECT goods', 'client', server);
    query.end();
    const [serverSpan, querySpan] = exporter.getFinishedSpans();
    expect(querySpan?.name).toBe('SELECT goods');
    expect(querySpan?.parentSpanContext?.spanId).toBe(serverSpan!.spanContext().spanId);
  });

  it("continues a caller's trace and passes its tracestate on", () => {
    const { tracer } = memoryTracer(new tracing.AlwaysOnSampler());
    const incoming = {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'congo=t61rcWkgMzE',
    };
    const span = tracer.startSpan('GET', 'server', incoming);
    const [, traceId, spanId] = TRACEPARENT.exec(span.carrier().traceparent!)!;
    expect(traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(spanId).not.toBe('b7ad6b7169203331');
    expect(span.carrier().tracestate).toBe('congo=t61rcWkgMzE');
  });

  it("starts a trace of its own linked to a caller's span, sampled by its own sampler whatever the caller's flag says", () => {
    const client = {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'congo=t61rcWkgMzE',
    };
    const none = memoryTracer(
      new tracing.ParentBasedSampler({ root: new tracing.TraceIdRatioBasedSampler(0) }),
    );
    const refused = none.tracer.startSpan('GET', 'server', undefined, undefined, client);
    expect(refused.isSampled()).toBe(false);
    refused.end();
    expect(none.exporter.getFinishedSpans()).toEqual([]);

    const all = memoryTracer(new tracing.ParentBasedSampler({ root: new tracing.AlwaysOnSampler() }));
    const own = all.tracer.startSpan('GET', 'server', undefined, { 'url.path': '/goods' }, client);
    const [, traceId] = TRACEPARENT.exec(own.carrier().traceparent!)!;
    expect(traceId).not.toBe('0af7651916cd43dd8448eb211c80319c');
    // The caller's tracestate belongs to the caller's trace.
    expect(own.carrier().tracestate).toBeUndefined();
    own.end();
    const [span] = all.exporter.getFinishedSpans();
    expect(span?.parentSpanContext).toBeUndefined();
    expect(span?.attributes['url.path']).toBe('/goods');
    expect(span?.links.map((link) => link.context)).toEqual([
      expect.objectContaining({
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        isRemote: true,
      }),
    ]);
  });

  it('makes nothing below an unsampled span: its children pass its context on', () => {
    const { tracer, exporter } = memoryTracer(new tracing.TraceIdRatioBasedSampler(0));
    const http = tracer.startSpan('GET', 'server', undefined);
    const client = tracer.startSpan('shop.v1.GoodsService/ListGoods', 'client', http);
    const deeper = tracer.startSpan('SELECT goods', 'client', client);
    expect([http.isSampled(), client.isSampled(), deeper.isSampled()]).toEqual([false, false, false]);
    expect(TRACEPARENT.exec(http.carrier().traceparent!)?.[3]).toBe('00');
    expect(client.carrier()).toBe(http.carrier());
    expect(deeper).toBe(client);
    client.setAttribute('rpc.grpc.status_code', 0);
    client.fail('no matter');
    for (const span of [deeper, client, http]) span.end();
    expect(exporter.getFinishedSpans()).toEqual([]);
  });

  it('follows an unsampled caller under a parent-based sampler, and leaves other samplers to the SDK', () => {
    const unsampled = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' };
    const parentBased = memoryTracer(new tracing.ParentBasedSampler({ root: new tracing.AlwaysOnSampler() }));
    const followed = parentBased.tracer.startSpan('ListGoods', 'server', unsampled);
    expect(followed.carrier()).toBe(unsampled);
    followed.end();
    parentBased.tracer.startSpan('SELECT goods', 'client', followed).end();
    expect(parentBased.exporter.getFinishedSpans()).toEqual([]);

    // A sampler that ignores the parent (here: always on) decides for each span itself.
    const independent = memoryTracer(
      new tracing.AlwaysOnSampler(),
      unrecordedShortcuts({ OTEL_TRACES_SAMPLER: 'always_on' }),
    );
    const server = independent.tracer.startSpan('ListGoods', 'server', unsampled);
    independent.tracer.startSpan('SELECT goods', 'client', server).end();
    server.end();
    expect(independent.exporter.getFinishedSpans()).toHaveLength(2);
  });

  it.each([
    ['always_on', 'AlwaysOnSampler'],
    ['always_off', 'AlwaysOffSampler'],
    ['traceidratio', 'TraceIdRatioBased{1}'],
    [' ParentBased_TraceIdRatio ', 'ParentBased{root=TraceIdRatioBased{1}'],
    ['parentbased_always_off', 'ParentBased{root=AlwaysOffSampler'],
  ])('builds the sampler OTEL_TRACES_SAMPLER=%s names', (name, built) => {
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: name }).toString()).toContain(built);
  });

  it('samples parent-based, always on, by default; the ratio comes from OTEL_TRACES_SAMPLER_ARG', () => {
    expect(samplerNamed({})).toBe('parentbased_always_on');
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: '' }).toString()).toContain('root=AlwaysOnSampler');
    const sampler = { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio' };
    expect(samplerFromEnv({ ...sampler, OTEL_TRACES_SAMPLER_ARG: ' 0.1 ' }).toString()).toContain(
      'TraceIdRatioBased{0.1}',
    );
    expect(samplerFromEnv({ ...sampler, OTEL_TRACES_SAMPLER_ARG: '0' }).toString()).toContain(
      'TraceIdRatioBased{0}',
    );
    expect(samplerFromEnv({ ...sampler, OTEL_TRACES_SAMPLER_ARG: '' }).toString()).toContain(
      'TraceIdRatioBased{1}',
    );
  });

  it.each([
    [
      { OTEL_TRACES_SAMPLER: 'parentbased_jaeger_remote' },
      'OTEL_TRACES_SAMPLER: unknown sampler "parentbased_jaeger_remote"',
    ],
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER: unknown sampler "sometimes"'],
    [
      { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '10%' },
      'OTEL_TRACES_SAMPLER_ARG: "10%"',
    ],
    [
      { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' },
      'OTEL_TRACES_SAMPLER_ARG: "1.5"',
    ],
    [
      { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '-0.1' },
      'OTEL_TRACES_SAMPLER_ARG: "-0.1"',
    ],
  ])('refuses %o', (env, message) => {
    expect(() => samplerFromEnv(env)).toThrow(ConfigError);
    expect(() => samplerFromEnv(env)).toThrow(message);
  });

  it.each([
    [undefined, true, true],
    ['parentbased_always_on', true, true],
    [' ParentBased_TraceIdRatio ', true, true],
    ['parentbased_always_off', true, true],
    ['traceidratio', true, false],
    ['always_off', true, true],
    ['always_on', false, false],
  ])(
    'OTEL_TRACES_SAMPLER=%s: unrecorded below a local one %s, below an unsampled caller %s',
    (sampler, local, remote) => {
      expect(unrecordedShortcuts(sampler === undefined ? {} : { OTEL_TRACES_SAMPLER: sampler })).toEqual({
        localParent: local,
        remoteUnsampledParent: remote,
      });
    },
  );
});

describe('the SDK as the environment configures it', () => {
  // The SDK and its exporters read the process's environment themselves, as in a component.
  // Nothing is exported: nothing is sampled, and no collector answers on port 9.
  const quiet = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_TRACES_SAMPLER: 'always_off' };
  const OTEL_VARIABLES = [
    'OTEL_TRACES_EXPORTER',
    'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    'OTEL_EXPORTER_ZIPKIN_ENDPOINT',
    'OTEL_EXPORTER_OTLP_PROTOCOL',
    'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
    'OTEL_NODE_RESOURCE_DETECTORS',
  ];
  const started = (env: Record<string, string | undefined>) => {
    for (const name of OTEL_VARIABLES) vi.stubEnv(name, '');
    for (const [name, value] of Object.entries(env)) if (value !== undefined) vi.stubEnv(name, value);
    return startOpenTelemetry('test', process.env);
  };
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it.each([
    { OTEL_TRACES_EXPORTER: 'otlp' },
    { OTEL_TRACES_EXPORTER: '', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
    { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' },
    { OTEL_TRACES_EXPORTER: 'zipkin, otlp', OTEL_EXPORTER_ZIPKIN_ENDPOINT: 'http://127.0.0.1:9' },
    { OTEL_NODE_RESOURCE_DETECTORS: 'env, process' },
  ])('starts, and stops with nothing left to export, with %o', async (env) => {
    const { tracer, stop } = await started({ ...quiet, ...env });
    tracer.startSpan('GET', 'server', undefined).end();
    await expect(stop()).resolves.toBeUndefined();
  });

  it('samples as the environment it is given says, not the process environment', async () => {
    vi.stubEnv('OTEL_TRACES_SAMPLER', 'always_off');
    const on = await startOpenTelemetry('test', { ...process.env, OTEL_TRACES_SAMPLER: 'always_on' });
    const off = await startOpenTelemetry('test', { ...process.env, OTEL_TRACES_SAMPLER: 'always_off' });
    try {
      expect(on.tracer.startSpan('GET', 'server', undefined).isSampled()).toBe(true);
      expect(off.tracer.startSpan('GET', 'server', undefined).isSampled()).toBe(false);
    } finally {
      await Promise.all([on.stop(), off.stop()]);
    }
  });

  it('writes each span with the console exporter', async () => {
    const dir = vi.spyOn(console, 'dir').mockImplementation(() => {});
    try {
      const { tracer, stop } = await started({
        OTEL_TRACES_EXPORTER: 'console',
        OTEL_TRACES_SAMPLER: 'always_on',
      });
      tracer.startSpan('GET /goods', 'server', undefined).end();
      // Written once the resource's detected attributes are in, which stopping does not wait for.
      await vi.waitFor(() =>
        expect(dir).toHaveBeenCalledWith(expect.objectContaining({ name: 'GET /goods' }), expect.anything()),
      );
      await stop();
    } finally {
      dir.mockRestore();
    }
  });

  it.each([
    [{}, ['otlp http/protobuf']],
    [{ OTEL_TRACES_EXPORTER: ' ', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, ['otlp http/json']],
    [
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: ' GRPC ' },
      ['otlp grpc'],
    ],
    // An empty traces protocol is unset, as the SDK reads it.
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: '  ' }, ['otlp grpc']],
    [{ OTEL_TRACES_EXPORTER: 'Zipkin, otlp, zipkin, null' }, ['zipkin', 'otlp http/protobuf']],
    [{ OTEL_TRACES_EXPORTER: 'console' }, ['console']],
  ])('with %o exports to %o', (env, choices) => {
    expect(exportersAskedFor(env)).toEqual(choices);
  });

  it('builds the exporter of each choice', async () => {
    const built = await traceExporters({
      OTEL_TRACES_EXPORTER: 'console,zipkin,otlp',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
    });
    expect(built.map((exporter) => exporter.constructor)).toEqual([
      tracing.ConsoleSpanExporter,
      ZipkinExporter,
      GrpcExporter,
    ]);
    const [json] = await traceExporters({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    const [protobuf] = await traceExporters({});
    expect([json?.constructor, protobuf?.constructor]).toEqual([JsonExporter, ProtobufExporter]);
    for (const exporter of [...built, json, protobuf]) await exporter?.shutdown();
  });

  it.each([
    [{ OTEL_TRACES_EXPORTER: 'otlp,jaeger' }, /OTEL_TRACES_EXPORTER: unknown exporter "jaeger"/],
    [
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'udp' },
      /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: unknown protocol "udp"/,
    ],
    [{ OTEL_NODE_RESOURCE_DETECTORS: 'env,cloud' }, /OTEL_NODE_RESOURCE_DETECTORS: unknown detector "cloud"/],
    [
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'carrier-pigeon' },
      /OTEL_EXPORTER_OTLP_PROTOCOL: unknown protocol "carrier-pigeon"/,
    ],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' },
      /OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" is not an http:\/\/ or https:\/\/ URL/,
    ],
    [
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:99999' },
      /OTEL_EXPORTER_OTLP_ENDPOINT: "http:\/\/127.0.0.1:99999" is not an http:\/\/, https:\/\/ or unix:\/\/ URL, or a host:port/,
    ],
    [{ OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' }, /OTEL_EXPORTER_OTLP_COMPRESSION: expected gzip or none/],
  ])('refuses %o at start with a clear error', async (env, message) => {
    const start = started({ ...quiet, ...env });
    await expect(start).rejects.toThrow(message);
    await expect(start).rejects.toBeInstanceOf(ConfigError);
  });

  /** OTLP/HTTP (protobuf, the default) to `endpoint`. */
  const http = (endpoint: string) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
  /** OTLP/gRPC to `endpoint`. */
  const grpc = (endpoint: string) => ({
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
  });
  const GENERAL = 'OTEL_EXPORTER_OTLP_ENDPOINT';

  it.each([
    [http('not a url'), GENERAL],
    [http('ftp://collector:4318'), GENERAL],
    [http('http://'), GENERAL],
    [
      { ...http('http://ok:4318'), OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://x:4318 /v1' },
      'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    ],
    [{ ...http('unix:///run/otel.sock'), OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, GENERAL],
    // OTLP/HTTP appends v1/traces to the text as it is: after a space or a query it would not be a
    // URL, or not the one meant, and the exporter would send to localhost:4318 instead.
    [http('http://collector:4318 '), GENERAL],
    [http('http://collector:4318?tenant=a'), GENERAL],
    [http('http://collector:4318/#a'), GENERAL],
    // Over gRPC the exporter chooses plaintext by a case-sensitive "http://", and dials a scheme
    // without "//" as a host name.
    [grpc('HTTP://collector:4317'), GENERAL],
    [grpc('grpcs://collector:4317'), GENERAL],
    [grpc('unix:/run/otel.sock'), GENERAL],
    [grpc('http:/collector:4317'), GENERAL],
    [grpc('http://'), GENERAL],
    [grpc('not a url'), GENERAL],
    [grpc('ftp://collector:4317'), GENERAL],
    [
      { OTEL_TRACES_EXPORTER: 'zipkin', OTEL_EXPORTER_ZIPKIN_ENDPOINT: 'zipkin:9411' },
      'OTEL_EXPORTER_ZIPKIN_ENDPOINT',
    ],
  ])('refuses the exporter endpoint of %o, naming %s', (env, variable) => {
    expect(() => checkEndpoints(env)).toThrow(new RegExp(`^${variable}: "`));
    expect(() => checkEndpoints(env)).toThrow(ConfigError);
  });

  it.each<NodeJS.ProcessEnv>([
    {},
    http('  '),
    http('http://collector:4318'),
    http('https://collector.example/otlp/'),
    http('http://[::1]:4318/otlp'),
    // The traces' own endpoint wins over a broken general one, as the exporters read them.
    { ...http('not a url'), OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://[::1]:4318/v1/traces' },
    // The URL parser drops the spaces around the traces' own endpoint, which is used as it is.
    { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: ' http://collector:4318/v1/traces?tenant=a ' },
    grpc('collector:4317'),
    grpc('http://10.0.0.2:4317'),
    grpc('unix:///run/otel.sock'),
    grpc(' [::1]:4317 '),
    grpc('localhost:4317'),
    grpc('localhost:4317/'),
    { OTEL_TRACES_EXPORTER: 'zipkin', OTEL_EXPORTER_ZIPKIN_ENDPOINT: 'http://zipkin:9411/api/v2/spans' },
    // Only the exporters asked for are checked.
    { ...http('not a url'), OTEL_TRACES_EXPORTER: 'console' },
  ])('takes the exporter endpoint of %o', (env) => {
    expect(() => checkEndpoints(env)).not.toThrow();
  });
});

describe('the batching, timeout, compression and header settings', () => {
  it.each([
    [{ OTEL_BSP_MAX_QUEUE_SIZE: 'abc' }, /^OTEL_BSP_MAX_QUEUE_SIZE: expected a number above 0, got "abc"$/],
    [{ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '0' }, /^OTEL_BSP_MAX_EXPORT_BATCH_SIZE: expected a number above 0/],
    [{ OTEL_BSP_SCHEDULE_DELAY: '-5' }, /^OTEL_BSP_SCHEDULE_DELAY: expected a number of 0 or more/],
    [{ OTEL_EXPORTER_OTLP_TIMEOUT: '10s' }, /^OTEL_EXPORTER_OTLP_TIMEOUT: expected a number above 0/],
    // Past a Node.js timer's range setTimeout takes 1 ms: an export every millisecond, or none in time.
    [{ OTEL_BSP_SCHEDULE_DELAY: '3000000000' }, /^OTEL_BSP_SCHEDULE_DELAY: expected at most 2147483647 ms/],
    [{ OTEL_BSP_EXPORT_TIMEOUT: '1e10' }, /^OTEL_BSP_EXPORT_TIMEOUT: expected at most 2147483647 ms/],
    [
      { OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '2147483648' },
      /^OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: expected at most/,
    ],
    [
      { OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' },
      /^OTEL_EXPORTER_OTLP_COMPRESSION: expected gzip or none, got "zstd"$/,
    ],
    [
      { OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'GZIP' },
      /^OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: expected gzip or none/,
    ],
    [{ OTEL_EXPORTER_OTLP_HEADERS: '%%%' }, /^OTEL_EXPORTER_OTLP_HEADERS: expected name=value pairs/],
    [
      { OTEL_EXPORTER_OTLP_HEADERS: 'api-key=s3cr%zz' },
      /^OTEL_EXPORTER_OTLP_HEADERS: expected name=value pairs/,
    ],
    [
      { OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'api-key' },
      /^OTEL_EXPORTER_OTLP_TRACES_HEADERS: expected name=value pairs/,
    ],
    [
      { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,team=a=b' },
      /^OTEL_RESOURCE_ATTRIBUTES: expected key=value pairs .*; got "team=a=b"$/,
    ],
    [{ OTEL_RESOURCE_ATTRIBUTES: ' =prod' }, /^OTEL_RESOURCE_ATTRIBUTES: .*got "=prod"$/],
    [{ OTEL_RESOURCE_ATTRIBUTES: 'region' }, /^OTEL_RESOURCE_ATTRIBUTES: .*got "region"$/],
    [{ OTEL_RESOURCE_ATTRIBUTES: 'region=eu%zz' }, /^OTEL_RESOURCE_ATTRIBUTES: .*got "region=eu%zz"$/],
    [{ OTEL_RESOURCE_ATTRIBUTES: `note=${'x'.repeat(256)}` }, /^OTEL_RESOURCE_ATTRIBUTES: .*at most 255/],
  ])('refuses %o', (env, message) => {
    expect(() => checkExporterSettings(env)).toThrow(message);
    expect(() => checkExporterSettings(env)).toThrow(ConfigError);
  });

  it.each([
    ['deployment.environment=prod,team=a=b', false],
    ['region=eu%zz', false],
    [`note=${'x'.repeat(256)}`, false],
    ['region', false],
    [' deployment.environment = prod , team=a%3Db,', true],
    [`note=${'x'.repeat(255)}`, true],
  ])('refuses OTEL_RESOURCE_ATTRIBUTES="%s" exactly when the SDK would drop it: %s', (value, kept) => {
    const before = process.env.OTEL_RESOURCE_ATTRIBUTES;
    process.env.OTEL_RESOURCE_ATTRIBUTES = value;
    try {
      const detected = Object.keys(envDetector.detect().attributes ?? {}).length > 0;
      expect(detected).toBe(kept);
    } finally {
      if (before === undefined) delete process.env.OTEL_RESOURCE_ATTRIBUTES;
      else process.env.OTEL_RESOURCE_ATTRIBUTES = before;
    }
    const check = () => checkExporterSettings({ OTEL_RESOURCE_ATTRIBUTES: value });
    if (kept) expect(check).not.toThrow();
    else expect(check).toThrow(ConfigError);
  });

  it('never repeats a header value, which may be a secret', () => {
    expect(() => checkExporterSettings({ OTEL_EXPORTER_OTLP_HEADERS: 'api-key=s3cr%zz' })).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('s3cr') }),
    );
  });

  it.each<NodeJS.ProcessEnv>([
    {},
    {
      OTEL_BSP_MAX_QUEUE_SIZE: '4096',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: ' 512 ',
      OTEL_BSP_SCHEDULE_DELAY: '0',
    },
    { OTEL_EXPORTER_OTLP_TIMEOUT: '10000', OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '2500.5' },
    { OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip', OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: ' none ' },
    { OTEL_EXPORTER_OTLP_HEADERS: 'api-key=abc%20def, x-tenant=a;meta,' },
    { OTEL_BSP_MAX_QUEUE_SIZE: '  ' },
  ])('takes %o', (env) => {
    expect(() => checkExporterSettings(env)).not.toThrow();
  });
});
