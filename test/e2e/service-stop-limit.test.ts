import {
  type ClientReadableStream,
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import { STOP_LIMIT_MS } from '../../src/common/process-lifecycle.js';
import { TRACE_FLUSH_AT_STOP_MS } from '../../src/common/tracing.js';
import {
  DistributorServiceService,
  NodeState,
  type RegisterRequest,
  RegisterResponse,
} from '../../src/gen/distributor.js';
import { createTestDatabase } from '../helpers/mysql.js';
import { startSilentCollector } from '../helpers/otlp-receiver.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { type ComponentProcess, spawnComponent } from './support/processes.js';

// A service's stop is a row of waits: the distributor's confirmation of draining (1 s at most), the
// calls in flight (6 s), the distributor's answer to leaving (2 s), the database pool's goodbye
// (2 s), the flush of its traces (2 s). Each step gets its own time or what is left of the launcher's
// limit for a whole stop, whichever is less: past that limit the launcher kills the service
// (SIGKILL), its traces and its exit code lost.

const mysqlUrl = inject('mysqlUrl');

describe.runIf(mysqlUrl !== '')('a service whose distributor and database stall at its stop', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /**
   * A distributor that registers every node, then answers nothing more: no confirmation of the
   * draining state, no end to the stream when the node leaves.
   */
  async function stallingDistributor(): Promise<{ address: string; registered: () => number }> {
    let registered = 0;
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
            registered++;
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
    return { address: `127.0.0.1:${port}`, registered: () => registered };
  }

  it("stops inside the launcher's limit, each wait cut to what is left of it, and exits as stopped", async () => {
    const database = await createTestDatabase(mysqlUrl);
    cleanups.push(() => database.drop());
    const databaseUrl = new URL(database.url);
    const proxy = await TcpProxy.start({
      host: databaseUrl.hostname,
      port: Number(databaseUrl.port || 3306),
    });
    cleanups.push(() => proxy.close());
    databaseUrl.host = `127.0.0.1:${proxy.port}`;
    const distributor = await stallingDistributor();
    const collector = await startSilentCollector();
    cleanups.push(() => collector.close());

    const goods: ComponentProcess = spawnComponent(
      'src/services/goods/main.ts',
      ['--port', '0', '--host', '127.0.0.1', '--distributor', distributor.address],
      {
        MYSQL_URL: databaseUrl.toString(),
        // Every call traced, its spans held until the stop, for a collector that never answers.
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}`,
        OTEL_TRACES_SAMPLER: 'parentbased_always_on',
        OTEL_BSP_SCHEDULE_DELAY: '600000',
      },
    );
    cleanups.push(() => void goods.child.kill('SIGKILL'));
    const port = JSON.parse(await goods.waitForLine(/"msg":"listening on/)).port as number;
    await goods.waitForLine(/"event":"registered"/);
    expect(distributor.registered()).toBe(1);

    // The pool holds connections to the database once a call has used it (an empty table: NOT_FOUND).
    const Goods = makeGenericClientConstructor(
      {
        listGoods: bytesMethod('/shop.v1.GoodsService/ListGoods'),
        watch: bytesMethod('/grpc.health.v1.Health/Watch', true),
      },
      'Goods',
    );
    const client = new Goods(`127.0.0.1:${port}`, credentials.createInsecure()) as InstanceType<
      typeof Goods
    > & {
      listGoods(request: Buffer, callback: (error: ServiceError | null) => void): void;
      watch(request: Buffer): ClientReadableStream<Buffer>;
    };
    cleanups.push(() => client.close());
    const listed = await new Promise<ServiceError | null>((resolve) =>
      client.listGoods(Buffer.alloc(0), resolve),
    );
    expect(listed?.code).toBe(status.NOT_FOUND);
    // A call that ends only when the server ends it: the stop gives it the whole grace.
    const watch = client.watch(Buffer.alloc(0));
    watch.on('error', () => {});
    await new Promise((resolve) => watch.once('data', resolve));
    // The database's network goes silent: nothing the pool says at the stop is answered.
    proxy.blackhole();

    const begunAt = performance.now();
    goods.child.kill('SIGTERM');
    const code = await goods.exited();
    const stopMs = performance.now() - begunAt;

    expect(code).toBe(0);
    // The distributor's two waits and the grace take 9 s; what follows gets what is left.
    expect(stopMs).toBeLessThan(STOP_LIMIT_MS);
    // The calls in flight still had their whole grace.
    expect(stopMs).toBeGreaterThan(7_000);
    expect(goods.lines.some((line) => line.includes('error while stopping'))).toBe(false);
    // The flush came last and got what was left, not its own 2 s: the spans are dropped, with a word.
    const flushWarnings = goods.lines
      .filter((line) => line.includes('"event":"trace-flush"'))
      .map((line) => JSON.parse(line) as { budgetMs: number });
    expect(flushWarnings).toHaveLength(1);
    expect(flushWarnings[0]!.budgetMs).toBeLessThan(TRACE_FLUSH_AT_STOP_MS / 2);
  }, 30_000);
});
