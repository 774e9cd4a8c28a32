import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { tracingRequested } from '../../src/common/tracing.js';
import { http } from '../helpers/http.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../helpers/otlp-receiver.js';
import { type ComponentProcess, spawnComponent } from './support/processes.js';

const SERVER = 2;
const CLIENT = 3;

// Issue 11, part 3: the components run as their own processes (ESM through tsx, as `npm start` runs
// them compiled), each configured only by the standard OTEL_* variables, exporting OTLP/HTTP JSON to
// a receiver in this test; one REST request must come back as one trace across every hop.
const mysqlUrl = inject('mysqlUrl');
const stores = [
  { label: 'the embedded store', system: 'sqlite', enabled: true },
  { label: 'MariaDB', system: 'mysql', enabled: mysqlUrl !== '' },
] as const;

for (const store of stores) {
  describe.runIf(store.enabled)(
    `one trace per REST request: gateway → gRPC client → service → database, on ${store.label}`,
    () => {
      let receiver: OtlpReceiver;
      let dataDir: string;
      let database: TestDatabase | undefined;
      const processes: ComponentProcess[] = [];
      let gatewayPort: number;
      /** A second gateway, with --client-trace-context link. */
      let linkingGatewayPort: number;

      beforeAll(async () => {
        receiver = await startOtlpReceiver();
        dataDir = mkdtempSync(join(tmpdir(), 'shop-tracing-'));
        if (store.system === 'mysql') database = await createTestDatabase(mysqlUrl);
        const env = {
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
          OTEL_TRACES_SAMPLER: 'parentbased_always_on',
          OTEL_BSP_SCHEDULE_DELAY: '50',
          OTEL_SERVICE_NAME: '',
          OTEL_RESOURCE_ATTRIBUTES: '',
          DATA_DIR: dataDir,
          MYSQL_URL: database?.url ?? '',
        };
        const distributor = spawnComponent(
          'src/distributor/main.ts',
          ['--port', '0', '--insecure-open-registry'],
          env,
        );
        processes.push(distributor);
        const distributorPort = JSON.parse(await distributor.waitForLine(/"msg":"listening on/)).port;
        const address = `127.0.0.1:${distributorPort}`;
        const goods = spawnComponent(
          'src/services/goods/main.ts',
          ['--port', '0', '--distributor', address],
          env,
        );
        const service = (name: string) =>
          spawnComponent(`src/services/${name}/main.ts`, ['--port', '0', '--distributor', address], env);
        const gateway = spawnComponent('src/gateway/main.ts', ['--port', '0', '--distributor', address], env);
        const linkingGateway = spawnComponent(
          'src/gateway/main.ts',
          ['--port', '0', '--distributor', address, '--client-trace-context', 'link'],
          env,
        );
        processes.push(goods, service('members'), service('purchases'), gateway, linkingGateway);
        gatewayPort = JSON.parse(await gateway.waitForLine(/"msg":"listening on/)).port;
        linkingGatewayPort = JSON.parse(await linkingGateway.waitForLine(/"msg":"listening on/)).port;
        await vi.waitFor(
          async () => {
            const answer = await http(gatewayPort, 'POST', '/goods', {
              headers: { 'Content-Type': 'application/json' },
              body: JSON.stringify({ name: 'traced', category: 'tests', price: 1, description: 'd' }),
            });
            expect(JSON.parse(answer.body).errorcode).toBe(0);
            // Members and purchases are routed too (an unknown account is members' own answer).
            const purchase = await http(gatewayPort, 'POST', '/purchases', {
              headers: { 'Content-Type': 'application/json' },
              body: JSON.stringify({ userid: 1, goodsid: 1 }),
            });
            expect(JSON.parse(purchase.body).errorcode).toBe(0);
            const signIn = await http(gatewayPort, 'GET', '/members?username=nobody&password=none');
            expect(JSON.parse(signIn.body).errormessage).toBe('Invalid password');
          },
          { timeout: 30_000, interval: 200 },
        );
      });
      afterAll(async () => {
        for (const process of processes.reverse()) {
          process.child.kill('SIGTERM');
          await process.exited();
        }
        await receiver?.close();
        await database?.drop();
        rmSync(dataDir, { recursive: true, force: true });
      });

      /**
       * The spans of the trace whose gateway HTTP span has this request id, once every hop's are in:
       * the gateway's two, `service`'s server span, and what `complete` asks of its database spans
       * (one at least). Each component exports its spans in its own batches, and a batch may end
       * between a call's statements and the call itself: counting spans alone let the statements
       * stand in for a server span still on its way.
       */
      async function traceOf(
        requestId: string,
        service = 'goods',
        complete: (database: ReceivedSpan[]) => boolean = (database) => database.length >= 1,
      ): Promise<ReceivedSpan[]> {
        return vi.waitFor(
          () => {
            const root = receiver.spans.find(
              (span) =>
                span.service === 'gateway' &&
                span.kind === SERVER &&
                span.attributes['shop.request_id'] === requestId,
            );
            expect(root, `no HTTP span for ${requestId} yet`).toBeDefined();
            const trace = receiver.spans.filter((span) => span.traceId === root!.traceId);
            const has = (from: string, kind: number) =>
              trace.some((span) => span.service === from && span.kind === kind);
            const database = trace.filter((span) => span.service === service && span.kind === CLIENT);
            expect(
              has('gateway', CLIENT) && has(service, SERVER) && complete(database),
              JSON.stringify(trace, null, 1),
            ).toBe(true);
            return trace;
          },
          { timeout: 10_000, interval: 50 },
        );
      }

      /** Checks the four spans and their parent links; returns the HTTP span. */
      function expectHops(trace: ReceivedSpan[]): ReceivedSpan {
        const http = trace.find((span) => span.service === 'gateway' && span.kind === SERVER)!;
        const client = trace.filter((span) => span.service === 'gateway' && span.kind === CLIENT);
        const server = trace.filter((span) => span.service === 'goods' && span.kind === SERVER);
        const database = trace.filter((span) => span.service === 'goods' && span.kind === CLIENT);
        expect(http).toMatchObject({
          name: 'GET /goods',
          attributes: expect.objectContaining({
            'http.request.method': 'GET',
            'http.route': '/goods',
            'http.response.status_code': 200,
          }),
        });
        expect(client).toEqual([
          expect.objectContaining({
            name: 'shop.v1.GoodsService/ListGoods',
            parentSpanId: http.spanId,
            attributes: expect.objectContaining({ 'rpc.system': 'grpc', 'rpc.grpc.status_code': 0 }),
          }),
        ]);
        expect(server).toEqual([
          expect.objectContaining({
            name: 'shop.v1.GoodsService/ListGoods',
            parentSpanId: client[0]!.spanId,
          }),
        ]);
        expect(database.length).toBeGreaterThanOrEqual(1);
        for (const span of database) {
          expect(span).toMatchObject({
            name: 'SELECT goods',
            parentSpanId: server[0]!.spanId,
            attributes: expect.objectContaining({
              'db.system.name': store.system,
              'db.operation.name': 'SELECT',
              'db.collection.name': 'goods',
              'db.query.text': expect.stringMatching(/^SELECT\s[\s\S]*\sFROM goods WHERE id > \?\s/),
            }),
          });
        }
        expect(new Set(trace.map((span) => span.traceId)).size).toBe(1);
        return http;
      }

      it('makes one trace of a GET /goods, each hop the child of the one before', async () => {
        const answer = await http(gatewayPort, 'GET', '/goods', {
          headers: { 'X-Request-Id': 'trace-me-1' },
        });
        expect(JSON.parse(answer.body).errorcode).toBe(0);
        const root = expectHops(await traceOf('trace-me-1'));
        expect(root.parentSpanId).toBe('');
      });

      it.each([
        {
          request: 'POST /purchases',
          body: { userid: 1, goodsid: 1 },
          service: 'purchases',
          statements: ['INSERT purchases'],
        },
        {
          request: 'POST /members',
          body: { username: 'traced_member', password: 'traced password' },
          service: 'members',
          statements: ['INSERT members'],
        },
        {
          request: 'GET /members?username=traced_member&password=traced%20password',
          service: 'members',
          // The account's failed sign-ins in a row (sign-in-throttle.ts), then the account.
          statements: ['SELECT sign_in_failures', 'SELECT members'],
        },
      ])(
        'traces $request down to its statements, each a child of its call',
        async ({ request, body, service, statements }) => {
          const [method, path] = request.split(' ') as ['GET' | 'POST', string];
          const requestId = `trace-me-${service}-${method}`;
          const answer = await http(gatewayPort, method, path, {
            headers: { 'X-Request-Id': requestId, ...(body ? { 'Content-Type': 'application/json' } : {}) },
            ...(body ? { body: JSON.stringify(body) } : {}),
          });
          expect(JSON.parse(answer.body).errorcode).toBe(0);
          const trace = await traceOf(requestId, service, (database) => database.length >= statements.length);
          const server = trace.filter((span) => span.service === service && span.kind === SERVER);
          expect(server).toHaveLength(1);
          const database = trace.filter((span) => span.service === service && span.kind === CLIENT);
          expect(database.map((span) => span.name).sort()).toEqual([...statements].sort());
          for (const span of database) {
            expect(span).toMatchObject({
              parentSpanId: server[0]!.spanId,
              attributes: expect.objectContaining({ 'db.system.name': store.system }),
            });
          }
        },
      );

      it('traces an idempotent write down to its transaction, the child of its call', async () => {
        const answer = await http(gatewayPort, 'POST', '/goods', {
          headers: {
            'X-Request-Id': 'trace-me-once',
            'Idempotency-Key': 'trace-me-once',
            'Content-Type': 'application/json',
          },
          body: JSON.stringify({ name: 'once', category: 'tests', price: 1, description: 'd' }),
        });
        expect(JSON.parse(answer.body).errorcode).toBe(0);
        const trace = await traceOf('trace-me-once', 'goods', (database) =>
          database.some((span) => span.name === 'TRANSACTION goods_idempotency'),
        );
        const server = trace.filter((span) => span.service === 'goods' && span.kind === SERVER);
        expect(server).toHaveLength(1);
        const database = trace.filter((span) => span.service === 'goods' && span.kind === CLIENT);
        // MySQL looks the key up before its transaction; SQLite does both in one.
        expect(database.map((span) => span.name)).toContain('TRANSACTION goods_idempotency');
        for (const span of database) expect(span.parentSpanId).toBe(server[0]!.spanId);
      });

      it("continues the client's own trace when the request carries a traceparent", async () => {
        const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
        const parentId = '00f067aa0ba902b7';
        await http(gatewayPort, 'GET', '/goods', {
          headers: { 'X-Request-Id': 'trace-me-2', traceparent: `00-${traceId}-${parentId}-01` },
        });
        const root = expectHops(await traceOf('trace-me-2'));
        expect(root.traceId).toBe(traceId);
        expect(root.parentSpanId).toBe(parentId);
      });

      it("with --client-trace-context link, starts a trace of its own linked to the client's span, whatever the client's flag", async () => {
        const traceId = '6bf92f3577b34da6a3ce929d0e0e4736';
        const parentId = '00f067aa0ba902b7';
        await vi.waitFor(
          async () => expect((await http(linkingGatewayPort, 'GET', '/goods')).status).toBe(200),
          { timeout: 10_000, interval: 100 },
        );
        await http(linkingGatewayPort, 'GET', '/goods', {
          headers: { 'X-Request-Id': 'trace-me-linked', traceparent: `00-${traceId}-${parentId}-00` },
        });
        const root = expectHops(await traceOf('trace-me-linked'));
        expect(root.traceId).not.toBe(traceId);
        expect(root.parentSpanId).toBe('');
        expect(root.links).toEqual([{ traceId, spanId: parentId }]);
      });

      it('records nothing, in any component, of a request its caller did not sample', async () => {
        const unsampled = '5bf92f3577b34da6a3ce929d0e0e4736';
        const answer = await http(gatewayPort, 'GET', '/goods', {
          headers: { 'X-Request-Id': 'trace-me-not', traceparent: `00-${unsampled}-00f067aa0ba902b7-00` },
        });
        expect(JSON.parse(answer.body).errorcode).toBe(0);
        // A sampled request after it: once its spans are in from every component, so would the other's be.
        await http(gatewayPort, 'GET', '/goods', { headers: { 'X-Request-Id': 'trace-me-after' } });
        expectHops(await traceOf('trace-me-after'));
        expect(receiver.spans.filter((span) => span.traceId === unsampled)).toEqual([]);
      });

      it('marks a span failed only for a fault, not for a caller mistake', async () => {
        await http(gatewayPort, 'DELETE', '/goods?id=-1', { headers: { 'X-Request-Id': 'trace-me-3' } });
        const [root] = await vi.waitFor(() => {
          const found = receiver.spans.filter((span) => span.attributes['shop.request_id'] === 'trace-me-3');
          expect(found).toHaveLength(1);
          return found;
        });
        await vi.waitFor(() => {
          const trace = receiver.spans.filter((span) => span.traceId === root!.traceId);
          const server = trace.find((span) => span.service === 'goods' && span.kind === SERVER);
          expect(server?.attributes['rpc.grpc.status_code']).toBe(3);
          expect(server?.statusCode).not.toBe(2);
        });
      });
    },
  );
}

describe('tracing is off without an exporter, and costs nothing', () => {
  it('is asked for only by an exporter or an OTLP endpoint, and never with OTEL_SDK_DISABLED', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_SAMPLER: 'always_on', OTEL_SERVICE_NAME: 'x' })).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'console' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(
      true,
    );
    expect(
      tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }),
    ).toBe(false);
  });

  it('loads no part of the OpenTelemetry SDK when every component is built without it', async () => {
    await import('../../src/gateway/gateway-server.js');
    await import('../../src/services/common/start-service.js');
    await import('../../src/distributor/distributor-server.js');
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    // The probe sees CommonJS packages loaded by the components (prom-client is one)...
    expect(loaded.some((file) => file.includes('/prom-client/'))).toBe(true);
    // ...and no package of the SDK (prom-client itself loads only @opentelemetry/api, a no-op without it).
    expect(loaded.filter((file) => /@opentelemetry\/(sdk|exporter|resources|core)/.test(file))).toEqual([]);
  });
});
