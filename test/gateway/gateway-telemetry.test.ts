import type { IncomingMessage, ServerResponse } from 'node:http';
import { Metadata } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { Gauge } from 'prom-client';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { Tracer } from '../../src/common/trace-span.js';
import { GatewayTelemetry } from '../../src/gateway/gateway-telemetry.js';
import type { GatewayView } from '../../src/gateway/gateway-view.js';
import { memoryTracer } from '../helpers/memory-tracer.js';

/**
 * The process's tracer as the code under test finds it (activeTracer): the project's real one over
 * the SDK (memoryTracer, set below), since startTracing builds its exporters from the environment only.
 */
const active = vi.hoisted(() => ({ tracer: undefined as Tracer | undefined }));

vi.mock('../../src/common/tracing.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/common/tracing.js')>();
  return { ...original, activeTracer: () => active.tracer };
});

const { tracer, exporter } = memoryTracer();
active.tracer = tracer;

beforeEach(() => {
  exporter.reset();
});

const view: GatewayView = {
  routeOf: () => '/goods',
  routes: () => [],
  revision: () => undefined,
  stopping: () => false,
  unservedRouteReadyAfterMs: () => 60_000,
  restartGraceMs: () => 10_000,
  unreachableSince: () => undefined,
  outOfReach: () => false,
  unreachableReason: () => undefined,
  connection: () => 'connected',
  holdsTemplate: () => true,
  connectionLoad: () => ({ connections: 0, requestsInFlight: 0, maxConnections: 64 }),
};

/** A response that resolves with the body it is ended with. */
function fakeResponse(): { response: ServerResponse; body: Promise<string> } {
  let done: (body: string) => void = () => {};
  const body = new Promise<string>((resolve) => {
    done = resolve;
  });
  const response = {
    destroyed: false,
    req: { method: 'GET' },
    setHeader() {},
    writeHead() {},
    end(text: string) {
      done(text);
    },
  } as unknown as ServerResponse;
  return { response, body };
}

describe('GatewayTelemetry /metrics', () => {
  it('renders the metrics once for scrapes that arrive together (its port is public: pipelined and parallel scrapes)', async () => {
    const telemetry = new GatewayTelemetry(view);
    let renders = 0;
    new Gauge({
      name: 'test_renders',
      help: 'renders of the registry',
      registers: [telemetry.registry!],
      collect() {
        renders++;
        this.set(renders);
      },
    });
    const scrapes = Array.from({ length: 16 }, () => fakeResponse());
    for (const { response } of scrapes) telemetry.answerPage(response, '/metrics', undefined);
    const bodies = await Promise.all(scrapes.map((scrape) => scrape.body));
    expect(renders).toBe(1);
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toContain('test_renders 1');
    // A later scrape renders anew.
    const later = fakeResponse();
    telemetry.answerPage(later.response, '/metrics', undefined);
    expect(await later.body).toContain('test_renders 2');
  });
});

describe('GatewayTelemetry answers cut short', () => {
  it("counts a 200 cut short with error_type, apart from whole 200s, and among the status page's errors", async () => {
    const telemetry = new GatewayTelemetry(view, { processMetrics: false });
    const answered = { headersSent: true, statusCode: 200 } as ServerResponse;
    for (let i = 0; i < 2; i++) {
      telemetry.onRequest({ headers: {} } as IncomingMessage, 'GET', '/goods').closed(answered);
    }
    const cut = telemetry.onRequest({ headers: {} } as IncomingMessage, 'GET', '/goods');
    cut.cutShort('a page failed after the answer had begun: INTERNAL');
    cut.closed(answered);
    const scrape = fakeResponse();
    telemetry.answerPage(scrape.response, '/metrics', undefined);
    const text = await scrape.body;
    const counts = text
      .split('\n')
      .filter((line) => line.startsWith('http_server_request_duration_seconds_count'));
    expect(counts).toEqual([
      'http_server_request_duration_seconds_count{http_request_method="GET",http_route="/goods",http_response_status_code="200"} 2',
      'http_server_request_duration_seconds_count{http_request_method="GET",http_route="/goods",http_response_status_code="200",error_type="answer_cut_short"} 1',
    ]);
    const goods = telemetry.status().routes.find((route) => route.path === '/goods');
    expect(goods?.rate).toMatchObject({ requests: 3, errors: 1 });
  });
});

describe('GatewayTelemetry forgetting a route', () => {
  it("drops the route's series, and starts them from zero if the route comes back", async () => {
    // A registry whose routes keep changing grew /metrics without end: every route ever called kept its series.
    let route = '/goods';
    const telemetry = new GatewayTelemetry({ ...view, routeOf: () => route }, { processMetrics: false });
    const answered = { headersSent: true, statusCode: 200 } as ServerResponse;
    const call = (path: string): void => {
      route = path;
      telemetry.onRequest({ headers: {} } as IncomingMessage, 'GET', path).closed(answered);
    };
    const counts = async (): Promise<string[]> => {
      const scrape = fakeResponse();
      telemetry.answerPage(scrape.response, '/metrics', undefined);
      return (await scrape.body)
        .split('\n')
        .filter((line) => line.startsWith('http_server_request_duration_seconds_count'));
    };
    call('/goods');
    call('/canary/{id}');
    call('/canary/{id}');
    telemetry.forget({ templates: ['/canary/{id}'], grpcPaths: [] });
    expect(await counts()).toEqual([
      'http_server_request_duration_seconds_count{http_request_method="GET",http_route="/goods",http_response_status_code="200"} 1',
    ]);
    call('/canary/{id}');
    expect(await counts()).toContain(
      'http_server_request_duration_seconds_count{http_request_method="GET",http_route="/canary/{id}",http_response_status_code="200"} 1',
    );
  });

  it('does not bring back the series of a route forgotten while one of its requests ran', async () => {
    const telemetry = new GatewayTelemetry(
      { ...view, holdsTemplate: (template) => template !== '/canary/{id}' },
      { processMetrics: false },
    );
    const running = telemetry.onRequest({ headers: {} } as IncomingMessage, 'GET', '/canary/7');
    running.route = '/canary/{id}';
    telemetry.forget({ templates: ['/canary/{id}'], grpcPaths: [] });
    running.closed({ headersSent: true, statusCode: 200 } as ServerResponse);
    const scrape = fakeResponse();
    telemetry.answerPage(scrape.response, '/metrics', undefined);
    expect((await scrape.body).includes('canary')).toBe(false);
  });

  it("drops a gRPC method's client series once no route calls it", async () => {
    const telemetry = new GatewayTelemetry(view, { processMetrics: false });
    for (const path of ['/shop.v1.GoodsService/ListGoods', '/canary.v1.Canary/Get']) {
      telemetry.calls.begin(path, new Metadata())!.end(0, undefined);
    }
    // A call begun before its method is forgotten ends unrecorded, rather than bringing it back.
    const running = telemetry.calls.begin('/canary.v1.Canary/Get', new Metadata())!;
    telemetry.forget({ templates: [], grpcPaths: ['/canary.v1.Canary/Get'] });
    running.end(0, undefined);
    const scrape = fakeResponse();
    telemetry.answerPage(scrape.response, '/metrics', undefined);
    const lines = (await scrape.body).split('\n').filter((line) => /^grpc_client_\w+\{/.test(line));
    expect(lines.some((line) => line.includes('grpc_service="shop.v1.GoodsService"'))).toBe(true);
    expect(lines.filter((line) => line.includes('canary'))).toEqual([]);
  });
});

describe('GatewayTelemetry HTTP server spans', () => {
  it('names a method OpenTelemetry does not know "_OTHER" (span "HTTP ..."), as the metrics do, and keeps the method as sent beside it', () => {
    const telemetry = new GatewayTelemetry(view, { metrics: false });
    const answered = { headersSent: true, statusCode: 405 } as ServerResponse;
    for (const method of ['GET', 'PROPFIND']) {
      const request = { headers: {} } as IncomingMessage;
      telemetry.onRequest(request, method, '/goods').closed(answered);
    }
    const spans = exporter.getFinishedSpans();
    expect(spans.map(({ name, kind, attributes }) => ({ name, kind, attributes }))).toEqual([
      {
        name: 'GET /goods',
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': 'GET',
          'url.path': '/goods',
          'shop.request_id': expect.any(String),
          'http.route': '/goods',
          'http.response.status_code': 405,
        },
      },
      {
        name: 'HTTP /goods',
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': '_OTHER',
          'http.request.method_original': 'PROPFIND',
          'url.path': '/goods',
          'shop.request_id': expect.any(String),
          'http.route': '/goods',
          'http.response.status_code': 405,
        },
      },
    ]);
    // No caller's trace context came: each request is a trace of its own, and a 405 is no failure.
    expect(spans.map((span) => span.parentSpanContext)).toEqual([undefined, undefined]);
    expect(spans[0]!.spanContext().traceId).not.toBe(spans[1]!.spanContext().traceId);
    expect(spans.map((span) => span.status)).toEqual([
      { code: SpanStatusCode.UNSET },
      { code: SpanStatusCode.UNSET },
    ]);
  });

  it('fails the span of an answer the gateway cut short after a 200, and not of a whole 200', () => {
    const telemetry = new GatewayTelemetry(view, { metrics: false });
    const answered = { headersSent: true, statusCode: 200 } as ServerResponse;
    const whole = telemetry.onRequest({ headers: {} } as IncomingMessage, 'GET', '/goods');
    whole.closed(answered);
    const cut = telemetry.onRequest({ headers: {} } as IncomingMessage, 'GET', '/goods');
    cut.cutShort('a page failed after the answer had begun: INTERNAL');
    cut.closed(answered);
    const spans = exporter.getFinishedSpans();
    expect(spans.map((span) => span.status)).toEqual([
      { code: SpanStatusCode.UNSET },
      { code: SpanStatusCode.ERROR, message: 'a page failed after the answer had begun: INTERNAL' },
    ]);
    expect(spans[0]!.attributes).not.toHaveProperty('error.type');
    expect(spans[1]!.attributes).toMatchObject({
      'http.response.status_code': 200,
      'error.type': 'answer_cut_short',
    });
  });

  it('says why an answer its client left unfinished is incomplete, without failing its span (a 499 does not)', () => {
    const telemetry = new GatewayTelemetry(view, { metrics: false });
    const answered = { headersSent: true, statusCode: 200 } as ServerResponse;
    for (const errorType of ['client_closed', 'client_stopped_reading'] as const) {
      const left = telemetry.onRequest({ headers: {} } as IncomingMessage, 'GET', '/goods');
      left.cutShort('the client left', errorType);
      left.closed(answered);
    }
    expect(exporter.getFinishedSpans().map((span) => [span.status, span.attributes['error.type']])).toEqual([
      [{ code: SpanStatusCode.UNSET }, 'client_closed'],
      [{ code: SpanStatusCode.UNSET }, 'client_stopped_reading'],
    ]);
  });

  it("continues a caller's sampled trace, records nothing of an unsampled one, and passes each on upstream", () => {
    const telemetry = new GatewayTelemetry(view, { metrics: false });
    const answered = { headersSent: true, statusCode: 200 } as ServerResponse;
    const callerTraceparent = (flags: string) =>
      `00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-${flags}`;
    const caller = (flags: string) =>
      ({ headers: { traceparent: callerTraceparent(flags) } }) as unknown as IncomingMessage;
    const sampled = telemetry.onRequest(caller('01'), 'GET', '/goods');
    const sampledUpstream = sampled.metadata(undefined).get('traceparent');
    sampled.closed(answered);
    const [span] = exporter.getFinishedSpans();
    expect(span!.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(span!.parentSpanContext).toMatchObject({ spanId: 'b7ad6b7169203331', isRemote: true });
    // The upstream call is a child of the gateway's span.
    expect(sampledUpstream).toEqual([`00-0af7651916cd43dd8448eb211c80319c-${span!.spanContext().spanId}-01`]);

    exporter.reset();
    const unsampled = telemetry.onRequest(caller('00'), 'GET', '/goods');
    expect(unsampled.metadata(undefined).get('traceparent')).toEqual([callerTraceparent('00')]);
    unsampled.closed(answered);
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});

describe('GatewayTelemetry status rows', () => {
  it('marks rows of traffic the gateway does not route (405s, unmatched paths) as not listed, and HEAD as its GET', () => {
    const goods = {
      method: 'GET',
      path: '/goods',
      template: '/goods',
      grpcMethods: ['shop.v1.GoodsService/ListGoods'],
      serving: ['goods@127.0.0.1:9010'],
      draining: [],
    };
    const telemetry = new GatewayTelemetry(
      {
        ...view,
        routes: () => [goods],
        routeOf: (_method, path) => (path === '/goods' ? '/goods' : undefined),
      },
      { processMetrics: false },
    );
    const answered = (statusCode: number) => ({ headersSent: true, statusCode }) as ServerResponse;
    telemetry.onRequest({ headers: {} } as IncomingMessage, 'GET', '/goods').closed(answered(200));
    telemetry.onRequest({ headers: {} } as IncomingMessage, 'HEAD', '/goods').closed(answered(200));
    telemetry.onRequest({ headers: {} } as IncomingMessage, 'PATCH', '/goods').closed(answered(405));
    telemetry.onRequest({ headers: {} } as IncomingMessage, 'GET', '/nothing').closed(answered(404));
    const rows = telemetry.status().routes.map(({ method, path, listed, serving }) => ({
      route: `${method} ${path}`,
      listed,
      serving,
    }));
    expect(rows).toEqual(
      expect.arrayContaining([
        { route: 'GET /goods', listed: true, serving: ['goods@127.0.0.1:9010'] },
        { route: 'HEAD /goods', listed: true, serving: ['goods@127.0.0.1:9010'] },
        { route: 'PATCH /goods', listed: false, serving: [] },
        { route: 'GET unmatched', listed: false, serving: [] },
      ]),
    );
    expect(rows).toHaveLength(4);
  });
});
