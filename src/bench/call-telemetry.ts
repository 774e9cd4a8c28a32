import {
  type CallOptions,
  Client,
  credentials,
  InterceptingCall,
  type Interceptor,
  Metadata,
  Server,
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptor,
  type ServerUnaryCall,
  type ServiceError,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { asIs, bytesMethod } from '../common/bytes-method.js';
import { ClientCallTelemetry } from '../common/grpc-client-telemetry.js';
import { ServerCallTelemetry } from '../common/grpc-server-telemetry.js';
import { createMetricsRegistry, GrpcCallMetrics } from '../common/metrics.js';
import { channelOptionsFor } from '../common/proxy-choice.js';
import { positiveInteger, readBenchSettings } from './bench-settings.js';
import { median } from './case-result.js';

// `npm run bench:calls`: what observing a gRPC call costs, and why the components observe their calls
// in their handlers and at their call sites rather than through grpc-js interceptors. One process
// serves and calls a small unary method on loopback (a 3 KB answer, as a page of goods is, 64 calls
// at a time, each with an x-request-id), in variants that run alternately, round after round, so
// that the ratios hold on a busy machine: nothing observed; a server or client interceptor that does
// nothing at all (what grpc-js's interception costs by itself); and the components' own telemetry as
// they ship it (metrics and request ids), on the server and on the client side.
const ROUNDS = readBenchSettings(() => positiveInteger(process.env, 'BENCH_ROUNDS', 12));
const CALLS = readBenchSettings(() => positiveInteger(process.env, 'BENCH_CALLS', 3_000));
const CONCURRENCY = 64;

const PATH = '/shop.v1.GoodsService/ListGoods';
const DEFINITION = { ListGoods: bytesMethod(PATH) };
const ANSWER = Buffer.alloc(3_000, 7);
const REQUEST = Buffer.from('page');

type Handler = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => void;
/** The handler answers on the next turn, as one that waits for its store does. */
const handler: Handler = (_call, callback) => setImmediate(() => callback(null, ANSWER));

const emptyServerInterceptor: ServerInterceptor = (_method, call) => new ServerInterceptingCall(call);
const emptyClientInterceptor: Interceptor = (options, nextCall) => new InterceptingCall(nextCall(options));

/** The shipped client telemetry, run from an interceptor, as the gateway did before. */
function clientInterceptorOf(telemetry: ClientCallTelemetry): Interceptor {
  return (options, nextCall) => {
    let observed: ReturnType<ClientCallTelemetry['begin']>;
    return new InterceptingCall(nextCall(options), {
      start(metadata, _listener, next) {
        observed = telemetry.begin(options.method_definition.path, metadata);
        next(observed?.metadata ?? metadata, {
          onReceiveStatus(status, nextStatus) {
            observed?.end(status.code, status.details);
            nextStatus(status);
          },
        });
      },
    });
  };
}

/** One way of serving and calling, ready to run a batch of calls. */
interface Variant {
  readonly name: string;
  run(calls: number): Promise<void>;
  close(): void;
}

interface VariantSpec {
  readonly name: string;
  readonly serverInterceptor?: ServerInterceptor;
  readonly serverTelemetry?: ServerCallTelemetry;
  readonly clientInterceptor?: Interceptor;
  readonly clientTelemetry?: ClientCallTelemetry;
}

async function startVariant(spec: VariantSpec): Promise<Variant> {
  const server = new Server({
    ...(spec.serverInterceptor ? { interceptors: [spec.serverInterceptor] } : {}),
    ...spec.serverTelemetry?.serverOptions(),
  });
  const handlers = { ListGoods: handler };
  server.addService(
    DEFINITION,
    spec.serverTelemetry ? spec.serverTelemetry.instrument(DEFINITION, handlers) : handlers,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  const target = `127.0.0.1:${port}`;
  const client = new Client(
    target,
    credentials.createInsecure(),
    channelOptionsFor(target, spec.clientInterceptor ? { interceptors: [spec.clientInterceptor] } : {}),
  );
  const telemetry = spec.clientTelemetry;
  const call = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const metadata = new Metadata();
      metadata.set('x-request-id', 'bench-request-0001');
      const observed = telemetry?.begin(PATH, metadata);
      const options: CallOptions = { deadline: Date.now() + 10_000 };
      client.makeUnaryRequest(
        PATH,
        asIs,
        asIs,
        REQUEST,
        observed?.metadata ?? metadata,
        options,
        (error: ServiceError | null) => {
          observed?.end(error ? error.code : 0, error?.details);
          if (error) reject(error);
          else resolve();
        },
      );
    });
  return {
    name: spec.name,
    async run(calls) {
      let started = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (started++ < calls) await call();
        }),
      );
    },
    close() {
      client.close();
      server.forceShutdown();
    },
  };
}

async function main(): Promise<void> {
  const shipped = () => ({
    server: new ServerCallTelemetry({
      metrics: new GrpcCallMetrics(createMetricsRegistry(), 'server'),
      requestIds: true,
    }),
    client: new ClientCallTelemetry({ metrics: new GrpcCallMetrics(createMetricsRegistry(), 'client') }),
  });
  const variants = [
    await startVariant({ name: 'nothing observed' }),
    await startVariant({
      name: 'server interceptor that does nothing',
      serverInterceptor: emptyServerInterceptor,
    }),
    await startVariant({ name: 'server: handlers observed (as shipped)', serverTelemetry: shipped().server }),
    await startVariant({
      name: 'server: the same telemetry, through its interceptor',
      serverInterceptor: shipped().server.serverOptions().interceptors![0]!,
    }),
    await startVariant({
      name: 'client interceptor that does nothing',
      clientInterceptor: emptyClientInterceptor,
    }),
    await startVariant({
      name: 'client: call site observed (as shipped)',
      clientTelemetry: shipped().client,
    }),
    await startVariant({
      name: 'client: the same telemetry, through an interceptor',
      clientInterceptor: clientInterceptorOf(shipped().client),
    }),
    await startVariant({
      name: 'both sides as shipped',
      serverTelemetry: shipped().server,
      clientTelemetry: shipped().client,
    }),
  ];
  try {
    for (const variant of variants) await variant.run(CALLS);
    const cpuPerCall = new Map<string, number[]>(variants.map((variant) => [variant.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let index = 0; index < variants.length; index++) {
        const variant = variants[(index + round) % variants.length]!;
        const before = process.cpuUsage();
        await variant.run(CALLS);
        const used = process.cpuUsage(before);
        cpuPerCall.get(variant.name)!.push((used.user + used.system) / CALLS);
      }
    }
    const reference = cpuPerCall.get(variants[0]!.name)!;
    const say = (line: string) => process.stdout.write(`${line}\n`);
    say(
      `bench:calls: CPU per call, client and server in one process (${ROUNDS} rounds of ${CALLS} calls, ${CONCURRENCY} at a time; medians)`,
    );
    say('| variant | µs per call | against nothing observed (median of rounds) |');
    say('|---|---:|---:|');
    for (const [name, samples] of cpuPerCall) {
      const ratio = median(samples.map((sample, round) => sample / reference[round]! - 1));
      const sign = ratio >= 0 ? '+' : '−';
      say(`| ${name} | ${median(samples).toFixed(1)} | ${sign}${Math.abs(ratio * 100).toFixed(1)} % |`);
    }
  } finally {
    for (const variant of variants) variant.close();
  }
}

await main();
