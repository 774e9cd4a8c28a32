import { connect } from 'node:net';
import {
  type handleUnaryCall,
  type Metadata,
  type ServerUnaryCall,
  type ServiceError,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ServerCallTelemetry } from '../../src/common/grpc-server-telemetry.js';
import { requestLogFields } from '../../src/common/request-context.js';
import { startTracing } from '../../src/common/tracing.js';
import { type Goods, GoodsServiceService, type ListGoodsRequest } from '../../src/gen/services.js';
import { http } from '../helpers/http.js';
import { type CapturedLog, captureLog, type LogLine } from '../helpers/log-capture.js';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../helpers/otlp-receiver.js';
import { sample } from '../helpers/prometheus.js';
import {
  Closer,
  startDistributor,
  startGateway,
  startGoodsService,
  waitForRoute,
} from './support/cluster.js';

// The gateway's observability with tracing on in this process: the gateway and the
// services (in-memory goods, observed by the services' own ServerCallTelemetry) share one tracer
// and export to a receiver here. Every span is named "gateway" by service: told apart by kind and name.

const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;
const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const P = '00f067aa0ba902b7';
const TRACEPARENT = `00-${T}-${P}-01`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const VALID_00 = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/;
const LIST = 'shop.v1.GoodsService/ListGoods';

type ListHandler = handleUnaryCall<ListGoodsRequest, { results: Goods[]; nextPageToken: string }>;

interface Seen {
  readonly instance: number;
  readonly metadata: Metadata;
}

let receiver: OtlpReceiver;
let stopTracing: (() => Promise<void>) | undefined;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  vi.stubEnv('OTEL_TRACES_EXPORTER', 'otlp');
  vi.stubEnv('OTEL_EXPORTER_OTLP_PROTOCOL', 'http/json');
  vi.stubEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', '');
  vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', receiver.endpoint);
  vi.stubEnv('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', '');
  vi.stubEnv('OTEL_TRACES_SAMPLER', 'parentbased_always_on');
  vi.stubEnv('OTEL_BSP_SCHEDULE_DELAY', '20');
  vi.stubEnv('OTEL_NODE_RESOURCE_DETECTORS', 'none');
  vi.stubEnv('OTEL_SERVICE_NAME', '');
  vi.stubEnv('OTEL_RESOURCE_ATTRIBUTES', '');
  const running = await startTracing('gateway', process.env);
  stopTracing = running?.stop;
});
afterAll(async () => {
  await stopTracing?.();
  vi.unstubAllEnvs();
  await receiver?.close();
});

function goodsList(count: number): Goods[] {
  return Array.from({ length: count }, (_, index) => ({
    id: index + 1,
    name: `goods ${index + 1}`,
    category: 'c',
    price: index,
    description: 'd',
  }));
}

describe('the gateway traced in-process: trace context, request ids, retries, pages and deadlines', () => {
  const closer = new Closer();
  let seen: Seen[];
  let serviceLog: CapturedLog;
  let gatewayLog: CapturedLog;

  afterEach(() => closer.closeAll());

  /**
   * `instances` goods instances observed as the services observe their calls, paging `goods` by
   * 1,000; `behave` may answer a call itself (return true), e.g. to fail it.
   */
  async function shop(
    options: {
      instances?: number;
      goods?: Goods[];
      deadlineMs?: number;
      clientTraceContext?: 'child' | 'link';
      behave?: (
        instance: number,
        call: ServerUnaryCall<ListGoodsRequest, unknown>,
        callback: sendUnaryData<never>,
      ) => boolean;
    } = {},
  ): Promise<number> {
    seen = [];
    serviceLog = captureLog('goods');
    gatewayLog = captureLog('gateway');
    const distributor = (await startDistributor(closer)).address;
    const goods = options.goods ?? goodsList(3);
    const instances = options.instances ?? 1;
    for (let instance = 0; instance < instances; instance++) {
      const telemetry = new ServerCallTelemetry({ requestIds: true, log: serviceLog.log });
      const listGoods: ListHandler = (call, callback) => {
        seen.push({ instance, metadata: call.metadata });
        serviceLog.log.info({ ...requestLogFields(call.metadata), instance }, 'listing goods');
        if (options.behave?.(instance, call, callback as sendUnaryData<never>)) return;
        const start = call.request.pageToken ? Number(call.request.pageToken) : 0;
        const end = Math.min(goods.length, start + 1_000);
        callback(null, {
          results: goods.slice(start, end),
          nextPageToken: end < goods.length ? String(end) : '',
        });
      };
      await startGoodsService(closer, distributor, telemetry.instrument(GoodsServiceService, { listGoods }));
    }
    const started = await startGateway(closer, distributor, {
      log: gatewayLog.log,
      ...(options.deadlineMs ? { deadlineMs: options.deadlineMs } : {}),
      ...(options.clientTraceContext
        ? { observability: { clientTraceContext: options.clientTraceContext } }
        : {}),
    });
    await waitForRoute(started.gateway, 'GET /goods', instances);
    return started.port;
  }

  /** The spans of the request with this id, once its HTTP span and `calls` server spans have come. */
  async function spansOf(
    requestId: string,
    calls = 1,
  ): Promise<{ http: ReceivedSpan; trace: ReceivedSpan[] }> {
    return vi.waitFor(
      () => {
        const root = receiver.spans.find(
          (span) => span.kind === SERVER && span.attributes['shop.request_id'] === requestId,
        );
        expect(root, `no HTTP span for ${requestId}`).toBeDefined();
        // The root's descendants (a continued trace id is shared by several tests).
        const trace = [root!];
        for (let grown = true; grown; ) {
          grown = false;
          for (const span of receiver.spans) {
            if (trace.includes(span) || !trace.some((parent) => parent.spanId === span.parentSpanId))
              continue;
            trace.push(span);
            grown = true;
          }
        }
        expect(trace.filter((span) => span.kind === SERVER && span.name === LIST).length).toBe(calls);
        expect(trace.filter((span) => span.kind === CLIENT && span.name === LIST).length).toBe(calls);
        return { http: root!, trace };
      },
      { timeout: 5_000, interval: 20 },
    );
  }

  const first = (metadata: Metadata, key: string): string | undefined => {
    const value = metadata.get(key)[0];
    return value === undefined ? undefined : String(value);
  };

  describe('traceparent at the gateway', () => {
    const cases: Array<[label: string, headers: Record<string, string | string[]>, continues: boolean]> = [
      ['version 00', { traceparent: TRACEPARENT }, true],
      ['version ff', { traceparent: `ff-${T}-${P}-01` }, false],
      ['a later version, four fields', { traceparent: `01-${T}-${P}-01` }, true],
      ['a later version with extra data', { traceparent: `01-${T}-${P}-01-what-the-future-holds` }, true],
      ['a later version, flags not followed by a dash', { traceparent: `01-${T}-${P}-01.x` }, false],
      ['an all-zero trace id', { traceparent: `00-${'0'.repeat(32)}-${P}-01` }, false],
      ['an all-zero parent id', { traceparent: `00-${T}-${'0'.repeat(16)}-01` }, false],
      ['uppercase hex', { traceparent: `00-${T.toUpperCase()}-${P}-01` }, false],
      ['a trace id one short', { traceparent: `00-${T.slice(1)}-${P}-01` }, false],
      ['a parent id one long', { traceparent: `00-${T}-${P}0-01` }, false],
      ['version 00 with extra data', { traceparent: `${TRACEPARENT}-x` }, false],
      ['sent twice', { traceparent: [TRACEPARENT, TRACEPARENT] }, false],
      ['unknown flags 03', { traceparent: `00-${T}-${P}-03` }, true],
      ['unknown flags ff', { traceparent: `00-${T}-${P}-ff` }, true],
    ];
    it.each(cases)('%s', async (label, headers, continues) => {
      const port = await shop();
      const id = `tp-${label.replace(/[^a-z0-9]+/gi, '-')}`;
      const answer = await http(port, 'GET', '/goods', { headers: { ...headers, 'X-Request-Id': id } });
      expect(answer.status).toBe(200);
      expect(seen).toHaveLength(1);
      const sent = first(seen[0]!.metadata, 'traceparent');
      expect(sent).toMatch(VALID_00);
      const { http: root, trace } = await spansOf(id);
      if (continues) {
        expect(root.traceId).toBe(T);
        expect(root.parentSpanId).toBe(P);
        // Sampled (bit 0) honoured; no other flag passed on.
        expect(sent!.slice(53)).toBe('01');
      } else {
        expect(root.traceId).not.toBe(T);
        expect(root.parentSpanId).toBe('');
      }
      // The new (or continued) trace is the one the service is told about: the client span is the parent.
      const client = trace.find((span) => span.kind === CLIENT)!;
      expect(sent).toBe(`00-${root.traceId}-${client.spanId}-01`);
      expect(client.parentSpanId).toBe(root.spanId);
    });

    it('an unsampled caller: its traceparent passed on as it came', async () => {
      const port = await shop();
      const unsampled = `00-${T}-${P}-00`;
      const answer = await http(port, 'GET', '/goods', {
        headers: { traceparent: unsampled, 'X-Request-Id': 'unsampled-1' },
      });
      expect(answer.status).toBe(200);
      expect(first(seen[0]!.metadata, 'traceparent')).toBe(unsampled);
    });

    it.each([
      ['sampled', TRACEPARENT],
      ['unsampled', `00-${T}-${P}-00`],
    ])(
      "with --client-trace-context link, a %s caller's span is linked to, not the parent: the gateway's sampler decides",
      async (label, traceparent) => {
        const port = await shop({ clientTraceContext: 'link' });
        const id = `linked-${label}`;
        const answer = await http(port, 'GET', '/goods', {
          headers: { traceparent, tracestate: 'congo=t61rcWkgMzE', 'X-Request-Id': id },
        });
        expect(answer.status).toBe(200);
        // Sampled under this suite's parentbased_always_on, as any request without a caller.
        const { http: root, trace } = await spansOf(id);
        expect(root.traceId).not.toBe(T);
        expect(root.parentSpanId).toBe('');
        expect(root.links).toEqual([{ traceId: T, spanId: P }]);
        const client = trace.find((span) => span.kind === CLIENT)!;
        expect(first(seen[0]!.metadata, 'traceparent')).toBe(`00-${root.traceId}-${client.spanId}-01`);
        expect(first(seen[0]!.metadata, 'tracestate')).toBeUndefined();
      },
    );
  });

  it("cuts a span's url.path to 1,024 characters, whatever the client sent", async () => {
    const port = await shop();
    const path = `/${'p'.repeat(5_000)}`;
    expect((await http(port, 'GET', path, { headers: { 'X-Request-Id': 'long-path' } })).status).toBe(404);
    const root = await vi.waitFor(
      () => {
        const found = receiver.spans.find((span) => span.attributes['shop.request_id'] === 'long-path');
        expect(found).toBeDefined();
        return found!;
      },
      { timeout: 5_000, interval: 20 },
    );
    expect(root.attributes['url.path']).toBe(path.slice(0, 1_024));
  });

  describe('tracestate at the gateway', () => {
    const m = (count: number) => Array.from({ length: count }, (_, index) => `k${index}=v`).join(',');
    const long = `x=${'y'.repeat(200)},z=1,${Array.from({ length: 12 }, (_, index) => `q${index}=${'w'.repeat(40)}`).join(',')}`;
    const cases: Array<
      [label: string, headers: Record<string, string | string[]>, expected: string | undefined]
    > = [
      ['32 members', { traceparent: TRACEPARENT, tracestate: m(32) }, m(32)],
      ['33 members', { traceparent: TRACEPARENT, tracestate: m(33) }, undefined],
      [
        'over 512 characters',
        { traceparent: TRACEPARENT, tracestate: long },
        `z=1,${Array.from({ length: 11 }, (_, index) => `q${index}=${'w'.repeat(40)}`).join(',')}`,
      ],
      ['an invalid member', { traceparent: TRACEPARENT, tracestate: 'a=1,B=2' }, undefined],
      ['sent twice', { traceparent: TRACEPARENT, tracestate: ['a=1, b=2', 'c=3'] }, 'a=1,b=2,c=3'],
      [
        'with an invalid traceparent',
        { traceparent: `00-${T.toUpperCase()}-${P}-01`, tracestate: 'a=1' },
        undefined,
      ],
      ['without a traceparent', { tracestate: 'a=1' }, undefined],
    ];
    it.each(cases)('%s', async (label, headers, expected) => {
      const port = await shop();
      const id = `ts-${label.replace(/[^a-z0-9]+/gi, '-')}`;
      const answer = await http(port, 'GET', '/goods', { headers: { ...headers, 'X-Request-Id': id } });
      expect(answer.status).toBe(200);
      expect(first(seen[0]!.metadata, 'tracestate')).toBe(expected);
    });
  });

  describe('X-Request-Id', () => {
    const cases: Array<[label: string, value: string | string[], kept: boolean]> = [
      ['valid', 'ok.id:1_2-3', true],
      ['128 characters', 'a'.repeat(128), true],
      ['overlong', 'b'.repeat(129), false],
      ['a tab', 'a\tb', false],
      ['non-ASCII', 'idé', false],
      ['empty', '', false],
      ['sent twice', ['dup-1', 'dup-2'], false],
      ['a comma-joined list', 'list-1,list-2', false],
      ['a log-injection attempt', 'x","level":60,"msg":"forged', false],
    ];
    it.each(cases)('%s', async (_label, value, kept) => {
      const port = await shop();
      const answer = await http(port, 'GET', '/goods', { headers: { 'X-Request-Id': value } });
      expect(answer.status).toBe(200);
      const id = String(answer.headers['x-request-id']);
      if (kept) expect(id).toBe(value);
      else expect(id).toMatch(UUID);
      expect(first(seen[0]!.metadata, 'x-request-id')).toBe(id);
      await vi.waitFor(() =>
        expect(gatewayLog.lines.some((line) => line.msg === 'request answered')).toBe(true),
      );
      await vi.waitFor(() => expect(serviceLog.lines.some((line) => line.msg === 'call handled')).toBe(true));
      const about = (lines: LogLine[]) =>
        lines.filter(
          (line) =>
            line.msg === 'request answered' || line.msg === 'call handled' || line.msg === 'listing goods',
        );
      for (const line of [...about(gatewayLog.lines), ...about(serviceLog.lines)])
        expect(line.requestId).toBe(id);
      if (!kept) {
        const raw = (Array.isArray(value) ? value : [value]).filter((text) => text.length > 0);
        const all = JSON.stringify([...gatewayLog.lines, ...serviceLog.lines]);
        for (const text of raw) expect(all).not.toContain(text);
      }
    });

    it('a control character (raw request)', async () => {
      const port = await shop();
      const socket = connect(port, '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk: Buffer) => {
        answer += chunk.toString('latin1');
      });
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(
        'GET /goods HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: a\u0001b\r\nConnection: close\r\n\r\n',
      );
      await vi.waitFor(() => expect(answer).toContain('\r\n\r\n'));
      socket.destroy();
      // Node's parser refuses it before it is a request.
      expect(answer.slice(0, answer.indexOf('\r\n'))).toContain(' 400 ');
      expect(JSON.stringify([...gatewayLog.lines, ...serviceLog.lines])).not.toContain('a\\u0001b');
    });
  });

  it('a GET refused with UNAVAILABLE and retried on the other instance', async () => {
    let failed = false;
    const port = await shop({
      instances: 2,
      behave: (_instance, _call, callback) => {
        if (failed) return false;
        failed = true;
        callback({ code: status.UNAVAILABLE, details: 'refused on purpose' } as ServiceError);
        return true;
      },
    });
    const id = 'retry-probe-1';
    const answer = await http(port, 'GET', '/goods', {
      headers: { 'X-Request-Id': id, traceparent: TRACEPARENT },
    });
    expect(answer.status).toBe(200);
    expect(seen.map((call) => call.instance).sort()).toEqual([0, 1]);
    for (const call of seen) expect(first(call.metadata, 'x-request-id')).toBe(id);
    // Every attempt a client span under the one HTTP span, each with its status.
    const { http: root, trace } = await spansOf(id, 2);
    const clients = trace.filter((span) => span.kind === CLIENT && span.name === LIST);
    expect(
      clients
        .map((span) => [span.parentSpanId, span.attributes['rpc.grpc.status_code'], span.statusCode])
        .sort(),
    ).toEqual(
      [
        [root.spanId, 0, 0],
        [root.spanId, status.UNAVAILABLE, ERROR],
      ].sort(),
    );
    const servers = trace.filter((span) => span.kind === SERVER && span.name === LIST);
    expect(servers.map((span) => span.parentSpanId).sort()).toEqual(
      clients.map((span) => span.spanId).sort(),
    );
    // Both services' lines carry the id; the gateway's retry line too.
    await vi.waitFor(() => {
      const instances = serviceLog.lines.filter(
        (line) => line.msg === 'listing goods' && line.requestId === id,
      );
      expect(instances.map((line) => line.instance).sort()).toEqual([0, 1]);
      expect(
        serviceLog.lines.filter((line) => line.msg === 'call handled' && line.requestId === id),
      ).toHaveLength(2);
    });
    expect(
      gatewayLog.lines.find(
        (line) => line.msg === 'retrying elsewhere' || line.msg === 'retrying a page elsewhere',
      )?.requestId,
    ).toBe(id);
    // Metrics: both attempts by code, the request once.
    const text = (await http(port, 'GET', '/metrics')).body;
    const labels = { grpc_service: 'shop.v1.GoodsService', grpc_method: 'ListGoods', grpc_type: 'unary' };
    expect(sample(text, 'grpc_client_started_total', labels)).toBe(2);
    expect(sample(text, 'grpc_client_handled_total', { ...labels, grpc_code: 'Unavailable' })).toBe(1);
    expect(sample(text, 'grpc_client_handled_total', { ...labels, grpc_code: 'OK' })).toBe(1);
    expect(
      sample(text, 'http_server_request_duration_seconds_count', {
        http_request_method: 'GET',
        http_route: '/goods',
        http_response_status_code: '200',
      }),
    ).toBe(1);
  });

  it('a list of three pages: every page carries the request id and trace context, a child of the HTTP span', async () => {
    const port = await shop({ goods: goodsList(2_500) });
    const id = 'paged-probe-1';
    const answer = await http(port, 'GET', '/goods', {
      headers: { 'X-Request-Id': id, traceparent: TRACEPARENT },
    });
    expect(answer.status).toBe(200);
    expect((JSON.parse(answer.body) as { results: Goods[] }).results).toHaveLength(2_500);
    expect(seen).toHaveLength(3);
    const { http: root, trace } = await spansOf(id, 3);
    expect(root.traceId).toBe(T);
    const clients = trace.filter((span) => span.kind === CLIENT && span.name === LIST);
    for (const client of clients) expect(client.parentSpanId).toBe(root.spanId);
    for (const call of seen) {
      expect(first(call.metadata, 'x-request-id')).toBe(id);
      const sent = first(call.metadata, 'traceparent')!;
      expect(sent.slice(3, 35)).toBe(T);
      expect(clients.map((span) => span.spanId)).toContain(sent.slice(36, 52));
    }
    const servers = trace.filter((span) => span.kind === SERVER && span.name === LIST);
    expect(servers.map((span) => span.parentSpanId).sort()).toEqual(
      clients.map((span) => span.spanId).sort(),
    );
  });

  it('a call past its deadline: the server span ends, failed; the client span says DEADLINE_EXCEEDED', async () => {
    const port = await shop({ deadlineMs: 300, behave: () => true });
    const id = 'deadline-probe-1';
    const answer = await http(port, 'GET', '/goods', { headers: { 'X-Request-Id': id } });
    expect(answer.status).toBe(504);
    const { trace } = await spansOf(id, 1);
    const client = trace.find((span) => span.kind === CLIENT && span.name === LIST)!;
    const server = trace.find((span) => span.kind === SERVER && span.name === LIST)!;
    expect([client.attributes['rpc.grpc.status_code'], client.statusCode]).toEqual([
      status.DEADLINE_EXCEEDED,
      ERROR,
    ]);
    expect([server.attributes['rpc.grpc.status_code'], server.statusCode]).toEqual([
      status.DEADLINE_EXCEEDED,
      ERROR,
    ]);
    // Its description says what its code does: the handler never answered, the deadline passed.
    expect(server.statusMessage).toBe('DEADLINE_EXCEEDED');
    await vi.waitFor(() =>
      expect(
        serviceLog.lines.find((line) => line.msg === 'call handled' && line.requestId === id)?.code,
      ).toBe('DEADLINE_EXCEEDED'),
    );
  });
});
