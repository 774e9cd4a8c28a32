import { createServer, type Server } from 'node:http';
import { Server as GrpcServer, ServerCredentials } from '@grpc/grpc-js';
import { bytesMethod } from '../common/bytes-method.js';
import { type CaseResult, type MedianInterval, median, medianInterval } from './case-result.js';
import type { CpuPerRequest } from './cpu-meter.js';
import { type SystemOptions, type SystemUnderTest, startSystem } from './system-under-test.js';

// Issue 11's cost: the main cases run on four twin shops that do nothing else: one as it ships
// (metrics and request ids on), one with both off (METRICS=off REQUEST_IDS=off), and two with
// OpenTelemetry tracing on as well, sampling 10 % of traces (OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG
// 0.1), one exporting OTLP over HTTP (http/protobuf, the specification's default), one over gRPC, each to
// a sink in the bench process that reads and drops every export. Over HTTP, the exporter's client
// requests go through the same Node.js HTTP code as the gateway's served ones, and V8 keeps
// deoptimizing it ("wrong map"); over gRPC it uses the grpc-js the gateway already calls services with.
// The main plaintext shop is not the reference: it also serves sign-ins, the growth case and more,
// and a process that has done more work carries more (a larger heap to collect) into each case.

/**
 * A row of the cost table: the shop as it ships ("off" names what it is measured against), or with
 * tracing on top, exported over OTLP/HTTP or OTLP/gRPC, against the one with both off.
 */
export type ObservabilityVariant = 'off' | 'traced' | 'tracedGrpc';

/** Which twin shop a case runs on. */
export type TwinVariant = 'shipped' | ObservabilityVariant;

export const VARIANT_LABELS: Record<TwinVariant, string> = {
  shipped: 'as shipped, twin',
  off: 'metrics + ids off',
  traced: 'tracing 10 %',
  tracedGrpc: 'tracing 10 %, OTLP/gRPC',
};

/** What each row of the cost table measures. */
export const ROW_LABELS: Record<ObservabilityVariant, string> = {
  off: 'metrics + ids (default)',
  traced: 'metrics + ids + tracing',
  tracedGrpc: '+ tracing, OTLP/gRPC',
};

/** The twin shops and the trace sink, running. */
export interface ObservabilityShops {
  readonly shipped: SystemUnderTest;
  readonly off: SystemUnderTest;
  readonly traced: SystemUnderTest;
  readonly tracedGrpc: SystemUnderTest;
  /** What the sinks received. */
  readonly sinks: readonly TraceSink[];
  stop(): Promise<void>;
}

/** An OTLP endpoint (over HTTP or gRPC) that accepts every export and keeps nothing but counts. */
export interface TraceSink {
  /** "OTLP/HTTP" or "OTLP/gRPC". */
  readonly protocol: string;
  readonly url: string;
  readonly exports: number;
  readonly bytes: number;
}

/** A running sink: its counts, kept up to date by its server, and how to close it. */
interface RunningSink extends TraceSink {
  url: string;
  exports: number;
  bytes: number;
  close(): Promise<void>;
}

async function startHttpTraceSink(): Promise<RunningSink> {
  const server: Server = createServer((request, response) => {
    request.on('data', (chunk: Buffer) => {
      sink.bytes += chunk.length;
    });
    request.on('end', () => {
      sink.exports++;
      // An empty ExportTraceServiceResponse: nothing rejected.
      response.writeHead(200, { 'Content-Type': 'application/x-protobuf', 'Content-Length': 0 }).end();
    });
  });
  const sink: RunningSink = {
    protocol: 'OTLP/HTTP',
    url: '',
    exports: 0,
    bytes: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return sink;
}

/** The OTLP trace service over gRPC: its one method, with the messages left as bytes. */
const TRACE_SERVICE = {
  Export: bytesMethod('/opentelemetry.proto.collector.trace.v1.TraceService/Export'),
};

/** An OTLP/gRPC endpoint that accepts every export and keeps nothing but counts. */
async function startGrpcTraceSink(): Promise<RunningSink> {
  const server = new GrpcServer();
  const sink: RunningSink = {
    protocol: 'OTLP/gRPC',
    url: '',
    exports: 0,
    bytes: 0,
    close: async () => {
      // At once, as the HTTP sink closes: an exporter still connected must not hold the bench.
      server.forceShutdown();
    },
  };
  server.addService(TRACE_SERVICE, {
    Export: (call: { request: Buffer }, callback: (error: null, response: Buffer) => void) => {
      sink.exports++;
      sink.bytes += call.request.length;
      // An empty ExportTraceServiceResponse: nothing rejected.
      callback(null, Buffer.alloc(0));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  sink.url = `http://127.0.0.1:${port}`;
  return sink;
}

/** Tracing at 10 % of traces, exported with `protocol` to `endpoint`. */
function tracingEnv(protocol: 'http/protobuf' | 'grpc', endpoint: string): NodeJS.ProcessEnv {
  return {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.1',
  };
}

/** Starts the four twin shops (plaintext, like the main one) and the sinks. */
export async function startObservabilityShops(
  options: Pick<SystemOptions, 'logFile'>,
): Promise<ObservabilityShops> {
  const stops: Array<() => Promise<void>> = [];
  try {
    const httpSink = await startHttpTraceSink();
    stops.unshift(() => httpSink.close());
    const grpcSink = await startGrpcTraceSink();
    stops.unshift(() => grpcSink.close());
    const shipped = await startSystem({
      logFile: options.logFile.replace(/\.log$/, '-as-shipped.log'),
      tls: false,
    });
    stops.unshift(() => shipped.stop());
    const off = await startSystem({
      logFile: options.logFile.replace(/\.log$/, '-observability-off.log'),
      tls: false,
      env: { METRICS: 'off', REQUEST_IDS: 'off' },
    });
    stops.unshift(() => off.stop());
    const traced = await startSystem({
      logFile: options.logFile.replace(/\.log$/, '-tracing.log'),
      tls: false,
      env: tracingEnv('http/protobuf', httpSink.url),
    });
    stops.unshift(() => traced.stop());
    const tracedGrpc = await startSystem({
      logFile: options.logFile.replace(/\.log$/, '-tracing-grpc.log'),
      tls: false,
      env: tracingEnv('grpc', grpcSink.url),
    });
    stops.unshift(() => tracedGrpc.stop());
    return {
      shipped,
      off,
      traced,
      tracedGrpc,
      sinks: [httpSink, grpcSink],
      async stop() {
        for (const stop of stops) await stop();
      },
    };
  } catch (error) {
    for (const stop of stops) await stop();
    throw error;
  }
}

/**
 * What one main case loses to observability, against its twin with everything off, over the same
 * rounds. A pair is a slice of the measured twin and the off twin's slice of the same turn (see
 * BENCH_OBSERVABILITY_SLICES in main.ts).
 */
export interface ObservabilityCost {
  readonly case: string;
  /** "off": the shop as it ships (metrics and ids on); "traced", "tracedGrpc": with tracing at 10 % on top. */
  readonly variant: ObservabilityVariant;
  readonly requestsPerSec: number;
  readonly offRequestsPerSec: number;
  /** The median of the per-pair losses 1 − measured/off: 0 means it costs nothing. */
  readonly loss: number;
  /**
   * Where the median loss lies at 95 % confidence, from the pairs alone (see medianInterval):
   * undefined with fewer than 6 pairs. A target inside it is one this run cannot tell from the spread.
   */
  readonly lossInterval: MedianInterval | undefined;
  readonly pairLosses: number[];
  readonly p99Ms: number;
  readonly offP99Ms: number;
  /** CPU per request of the whole shop and of the gateway, in µs (medians of slices). */
  readonly cpu: Pick<CpuPerRequest, 'totalUs' | 'gatewayUs'>;
  readonly offCpu: Pick<CpuPerRequest, 'totalUs' | 'gatewayUs'>;
  /** The median of the per-pair CPU increases measured/off − 1, over the whole shop. */
  readonly cpuIncrease: number;
  /** The same for the gateway alone, the process that limits these cases. */
  readonly gatewayCpuIncrease: number;
}

const medianOf = <T>(values: readonly T[], read: (value: T) => number): number => median(values.map(read));

/**
 * The losses of each main case: the twin as it ships, and the traced twin, each against the twin
 * with everything off. `twinOf(name, variant)` names a case's twin; a case whose twins did not run
 * is left out.
 */
export function observabilityCosts(
  mainCases: readonly string[],
  twinOf: (name: string, variant: TwinVariant) => string,
  all: Map<string, CaseResult[]>,
  cpu: Map<string, CpuPerRequest[]>,
): ObservabilityCost[] {
  return mainCases.flatMap((name) => {
    const on = all.get(twinOf(name, 'shipped'));
    const off = all.get(twinOf(name, 'off'));
    const traced = all.get(twinOf(name, 'traced'));
    const tracedGrpc = all.get(twinOf(name, 'tracedGrpc'));
    if (!on || !off || !traced || !tracedGrpc) return [];
    const offCpu = cpu.get(twinOf(name, 'off')) ?? [];
    const row = (
      variant: ObservabilityVariant,
      measured: CaseResult[],
      measuredName: string,
    ): ObservabilityCost => {
      const measuredCpu = cpu.get(measuredName) ?? [];
      const pairLosses = measured.map(
        (result, pair) => 1 - result.requestsPerSec / off[pair]!.requestsPerSec,
      );
      return {
        case: name,
        variant,
        requestsPerSec: medianOf(measured, (result) => result.requestsPerSec),
        offRequestsPerSec: medianOf(off, (result) => result.requestsPerSec),
        loss: median(pairLosses),
        lossInterval: medianInterval(pairLosses),
        pairLosses,
        p99Ms: medianOf(measured, (result) => result.p99Ms),
        offP99Ms: medianOf(off, (result) => result.p99Ms),
        cpu: {
          totalUs: medianOf(measuredCpu, (sample) => sample.totalUs),
          gatewayUs: medianOf(measuredCpu, (sample) => sample.gatewayUs),
        },
        offCpu: {
          totalUs: medianOf(offCpu, (sample) => sample.totalUs),
          gatewayUs: medianOf(offCpu, (sample) => sample.gatewayUs),
        },
        cpuIncrease: median(
          measuredCpu.map((sample, pair) => sample.totalUs / (offCpu[pair]?.totalUs ?? Number.NaN) - 1),
        ),
        gatewayCpuIncrease: median(
          measuredCpu.map((sample, pair) => sample.gatewayUs / (offCpu[pair]?.gatewayUs ?? Number.NaN) - 1),
        ),
      };
    };
    return [
      row('off', on, twinOf(name, 'shipped')),
      row('traced', traced, twinOf(name, 'traced')),
      row('tracedGrpc', tracedGrpc, twinOf(name, 'tracedGrpc')),
    ];
  });
}

/** The report's section: one line per case and measured shop. */
export function observabilityReport(
  rows: readonly ObservabilityCost[],
  sinks: readonly TraceSink[],
): string[] {
  if (rows.length === 0) return [];
  const width = Math.max(...rows.map((row) => row.case.length));
  const percent = (ratio: number) => `${(100 * ratio).toFixed(1)}%`;
  const lines = [
    'Observability cost: each main case on a twin shop as it ships, and on two with tracing (10 %) on top (exported over OTLP/HTTP, and over OTLP/gRPC), against a twin with metrics and ids off',
    [
      'case'.padEnd(width),
      'measured'.padEnd(23),
      'req/s'.padStart(7),
      'off'.padStart(7),
      'loss'.padStart(7),
      'loss, 95 %'.padStart(15),
      'p99'.padStart(6),
      'off'.padStart(6),
      'CPU µs/req'.padStart(10),
      'off'.padStart(6),
      'CPU +'.padStart(7),
      'gateway µs'.padStart(10),
      'off'.padStart(6),
      'gw +'.padStart(7),
    ].join(' '),
  ];
  for (const row of rows) {
    lines.push(
      [
        row.case.padEnd(width),
        ROW_LABELS[row.variant].padEnd(23),
        row.requestsPerSec.toFixed(0).padStart(7),
        row.offRequestsPerSec.toFixed(0).padStart(7),
        percent(row.loss).padStart(7),
        (row.lossInterval
          ? `${percent(row.lossInterval.low)} to ${percent(row.lossInterval.high)}`
          : 'too few pairs'
        ).padStart(15),
        row.p99Ms.toFixed(1).padStart(6),
        row.offP99Ms.toFixed(1).padStart(6),
        row.cpu.totalUs.toFixed(0).padStart(10),
        row.offCpu.totalUs.toFixed(0).padStart(6),
        percent(row.cpuIncrease).padStart(7),
        row.cpu.gatewayUs.toFixed(0).padStart(10),
        row.offCpu.gatewayUs.toFixed(0).padStart(6),
        percent(row.gatewayCpuIncrease).padStart(7),
      ].join(' '),
    );
  }
  lines.push(
    '(loss: median of the per-pair losses 1 − req/s ÷ off req/s, a pair being two slices of the same turn; p99 in ms, median of slices)',
  );
  lines.push(
    '(loss, 95 %: where the median loss lies at 95 % confidence, from the pairs alone, assuming nothing of their spread but independence)',
  );
  lines.push(
    '(CPU µs/req: all the processes of the shop per answered request, then the gateway alone; CPU + and gw +: median of the per-pair measured ÷ off − 1)',
  );
  for (const sink of sinks) {
    lines.push(
      `(the ${sink.protocol} trace sink took ${sink.exports} exports, ${(sink.bytes / 1024).toFixed(0)} KiB)`,
    );
  }
  return lines;
}

/** Issue 11's targets: at most 5 % lost to metrics and ids, at most 15 % with tracing at 10 % (either protocol). */
export const OBSERVABILITY_TARGETS: Record<ObservabilityVariant, number> = {
  off: 0.05,
  traced: 0.15,
  tracedGrpc: 0.15,
};
