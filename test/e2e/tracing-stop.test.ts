import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ClientDuplexStream,
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
} from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import { STOP_LIMIT_MS } from '../../src/common/process-lifecycle.js';
import { TRACE_FLUSH_AT_STOP_MS } from '../../src/common/tracing.js';
import {
  DistributorServiceService,
  NodeState,
  type RegisterRequest,
  RegisterResponse,
} from '../../src/gen/distributor.js';
import { GoodsServiceClient } from '../../src/gen/services.js';
import {
  type OtlpReceiver,
  type SilentCollector,
  startOtlpReceiver,
  startSilentCollector,
} from '../helpers/otlp-receiver.js';
import { type ComponentProcess, freePort, spawnComponent } from './support/processes.js';

// A component's stop with tracing on: the spans still buffered go to the collector, and a collector
// that is down or does not answer costs those spans and a warning, not the stop.

describe('tracing when a component stops', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /**
   * Goods on the embedded store, tracing every call to `endpoint` over `protocol`, exporting only
   * when it stops (the batch delay is longer than the test); by default no distributor to register
   * with.
   */
  async function tracedGoods(
    protocol: 'grpc' | 'http/json',
    endpoint: string,
    distributor = '127.0.0.1:1',
  ): Promise<ComponentProcess & { port: number }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'shop-tracing-stop-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const goods = spawnComponent(
      'src/services/goods/main.ts',
      ['--port', '0', '--distributor', distributor],
      {
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_TRACES_SAMPLER: 'parentbased_always_on',
        OTEL_BSP_SCHEDULE_DELAY: '600000',
        DATA_DIR: dataDir,
        MYSQL_URL: '',
      },
    );
    cleanups.push(() => void goods.child.kill('SIGKILL'));
    const port = JSON.parse(await goods.waitForLine(/"msg":"listening on/)).port as number;
    // Three traced calls: each a server span and a database span, buffered until the stop.
    const client = new GoodsServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    for (let call = 0; call < 3; call++) {
      await new Promise<void>((resolve) => client.listGoods({}, () => resolve()));
    }
    client.close();
    return Object.assign(goods, { port });
  }

  /**
   * A distributor that registers every node, then answers nothing more: no confirmation of the
   * draining state (the stop waits 1 s for it), no end to the stream when the node leaves (2 s).
   */
  async function stallingDistributor(): Promise<string> {
    const held = new Set<ServerDuplexStream<RegisterRequest, RegisterResponse>>();
    const server = new Server();
    server.addService(
      { register: DistributorServiceService.register },
      {
        register: (call: ServerDuplexStream<RegisterRequest, RegisterResponse>) => {
          held.add(call);
          call.on('error', () => {});
          call.once('data', (request: RegisterRequest) => {
            if (request.kind?.$case !== 'node') return;
            const { name, host, port } = request.kind.value;
            call.write(
              RegisterResponse.fromPartial({
                nodeId: `${name}@${host}:${port}`,
                ack: { state: NodeState.NODE_STATE_SERVING, revision: 1, instanceId: 'stalling' },
              }),
            );
          });
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    cleanups.push(() => {
      for (const call of held) call.destroy();
      server.forceShutdown();
    });
    return `127.0.0.1:${port}`;
  }

  /** A health Watch on `port`: a call that ends only when the server ends it. */
  /**
   * A call that holds the stop's grace: a reflection stream left open (a health Watch no longer
   * does, as a stopping service ends its Watch calls).
   */
  async function endlessCall(port: number): Promise<void> {
    const Reflection = makeGenericClientConstructor(
      {
        info: {
          ...bytesMethod('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', true),
          requestStream: true,
        },
      },
      'Reflection',
    );
    const reflection = new Reflection(`127.0.0.1:${port}`, credentials.createInsecure()) as InstanceType<
      typeof Reflection
    > & { info(): ClientDuplexStream<Buffer, Buffer> };
    cleanups.push(() => reflection.close());
    const stream = reflection.info();
    stream.on('error', () => {});
    // list_services (field 7), empty: answered, and the stream stays open.
    stream.write(Buffer.from([0x3a, 0x00]));
    await new Promise((resolve) => stream.once('data', resolve));
  }

  async function silentCollector(): Promise<SilentCollector> {
    const collector = await startSilentCollector();
    cleanups.push(() => collector.close());
    return collector;
  }

  /** SIGTERM, then the exit code and how long the stop took. */
  async function stop(goods: ComponentProcess): Promise<{ code: number | string; ms: number }> {
    const startedAt = performance.now();
    goods.child.kill('SIGTERM');
    const code = await goods.exited();
    return { code, ms: performance.now() - startedAt };
  }

  const flushWarnings = (goods: ComponentProcess) =>
    goods.lines.filter((line) => line.includes('"event":"trace-flush"')).map((line) => JSON.parse(line));

  it('exports the spans still buffered, then exits as stopped', async () => {
    const receiver: OtlpReceiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());
    const goods = await tracedGoods('http/json', receiver.endpoint);
    expect(receiver.spans).toEqual([]);
    expect((await stop(goods)).code).toBe(0);
    const names = receiver.spans.filter((span) => span.service === 'goods').map((span) => span.name);
    expect(names.filter((name) => name === 'shop.v1.GoodsService/ListGoods')).toHaveLength(3);
    expect(flushWarnings(goods)).toEqual([]);
  });

  it('with the collector refusing connections: the spans are dropped with a warning, and the stop still succeeds', async () => {
    const goods = await tracedGoods('grpc', `http://127.0.0.1:${await freePort()}`);
    const { code } = await stop(goods);
    expect(code).toBe(0);
    expect(flushWarnings(goods)).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'traces: the collector refused the spans still buffered at the stop; they are dropped',
        reason: expect.stringContaining('UNAVAILABLE'),
      }),
    ]);
    expect(goods.lines.some((line) => line.includes('error while stopping'))).toBe(false);
  });

  it('with a collector that never answers: the stop waits for it 2 s, not the exporter deadline of 10 s', async () => {
    const { port, connections } = await silentCollector();
    const goods = await tracedGoods('grpc', `http://127.0.0.1:${port}`);
    const { code, ms } = await stop(goods);
    expect(code).toBe(0);
    expect(connections()).toBeGreaterThan(0);
    expect(ms).toBeGreaterThanOrEqual(TRACE_FLUSH_AT_STOP_MS - 100);
    // Well inside the launcher's 10 s for a whole stop.
    expect(ms).toBeLessThan(TRACE_FLUSH_AT_STOP_MS + 4_000);
    expect(flushWarnings(goods)).toEqual([
      expect.objectContaining({
        level: 40,
        budgetMs: TRACE_FLUSH_AT_STOP_MS,
        msg: `traces: the collector took no spans within ${TRACE_FLUSH_AT_STOP_MS} ms of the stop; the spans still buffered are dropped`,
      }),
    ]);
  }, 20_000);

  it("with a call that never ends and a collector that never answers, the whole stop stays inside the launcher's 10 s", async () => {
    const { port } = await silentCollector();
    const goods = await tracedGoods('grpc', `http://127.0.0.1:${port}`);
    await endlessCall(goods.port);
    const { code, ms } = await stop(goods);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(10_000);
    expect(flushWarnings(goods)).toHaveLength(1);
  }, 30_000);

  it('with a distributor that stalls as well, the flush comes last and gets what is left of the 10 s', async () => {
    const { port } = await silentCollector();
    const goods = await tracedGoods('grpc', `http://127.0.0.1:${port}`, await stallingDistributor());
    await goods.waitForLine(/"event":"registered"/);
    await endlessCall(goods.port);
    const { code, ms } = await stop(goods);
    expect(code).toBe(0);
    // The draining notice (1 s), the grace (6 s) and leaving (2 s) took their whole time ...
    expect(ms).toBeGreaterThan(9_000);
    // ... and the flush had the half second left before the launcher's limit, not its own 2 s. The
    // exit is seen here through this process's own event loop, late by up to a few hundred ms when
    // the whole suite loads the machine (10,020 ms once): the plan is checked by the budget below.
    expect(ms).toBeLessThan(STOP_LIMIT_MS + 300);
    const [warning, ...more] = flushWarnings(goods);
    expect(more).toEqual([]);
    expect(warning.budgetMs).toBeLessThanOrEqual(500);
  }, 30_000);
});
