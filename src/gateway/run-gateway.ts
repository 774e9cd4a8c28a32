import { EXIT_CODES } from '../common/exit-codes.js';
import { logGrpcThrough } from '../common/grpc-logging.js';
import { httpEndpointUrl } from '../common/http-endpoint.js';
import { useLeanAsyncResourceBind } from '../common/lean-async-resource-bind.js';
import { listenFailure } from '../common/listen-failure.js';
import { createLogger } from '../common/logger.js';
import {
  announceListening,
  answerStatusQuestions,
  runMain,
  SUPERVISED_ENV,
} from '../common/process-lifecycle.js';
import { settingName } from '../common/settings.js';
import { startTracing, stopTracing } from '../common/tracing.js';
import { GATEWAY_SETTINGS, GATEWAY_USAGE, loadGatewayConfig } from './config.js';
import { createGateway } from './gateway-server.js';

/**
 * The gateway's process: reads its flags and environment, starts it, and wires signals to its
 * ordered stop (a drain first, with --drain-delay-ms). Its entry, main.ts, holds signals while
 * this module and its imports load.
 */
export function runGateway(): void {
  runMain(async (signals) => {
    const config = loadGatewayConfig(process.argv.slice(2), process.env);
    const log = createLogger({ component: 'gateway', level: config.logLevel });
    logGrpcThrough(log);
    // Every upstream call opens an HTTP/2 stream, which Node 20 binds at a needless cost (see the module).
    if (useLeanAsyncResourceBind())
      log.debug("AsyncResource.prototype.bind replaced by one without DEP0172's accessor");
    // Under npm start the launcher kills a component 10 s after its SIGTERM, drain included, and it
    // has no load balancer in front to drain from.
    const supervised = process.env[SUPERVISED_ENV] === '1';
    if (supervised && config.drainDelayMs > 0) {
      log.warn(
        { event: 'drain-under-launcher', drainDelayMs: config.drainDelayMs },
        `${settingName(GATEWAY_SETTINGS.drainDelayMs)} is ${config.drainDelayMs} ms under npm start, whose launcher kills a component 10 s after asking it to stop, drain included: it is meant for a gateway behind a load balancer`,
      );
    }
    await startTracing('gateway', process.env, log);
    const gateway = createGateway({
      distributor: config.distributor,
      log,
      deadlineMs: config.deadlineMs,
      bodyLimitBytes: config.bodyLimitBytes,
      maxConnections: config.maxConnections,
      maxPipelinedRequests: config.maxPipelined,
      bodyBudgetBytes: config.bodyBudgetBytes,
      maxStreamedLists: config.maxStreamedLists,
      unreadAnswerTimeoutMs: config.unreadAnswerTimeoutMs,
      restartGraceMs: config.restartGraceMs,
      drainDelayMs: config.drainDelayMs,
      ...(config.tls ? { tls: config.tls } : {}),
      ...(config.registryToken ? { registryToken: config.registryToken } : {}),
      corsOrigins: config.corsOrigins,
      allowedHosts: config.allowedHosts,
      statusClients: config.statusClients,
      ...(config.https
        ? {
            https: {
              certFile: config.https.certFile,
              keyFile: config.https.keyFile,
              ...(config.https.clientCaFile ? { caFile: config.https.clientCaFile } : {}),
              sources: {
                certFile: settingName(GATEWAY_SETTINGS.httpsCert),
                keyFile: settingName(GATEWAY_SETTINGS.httpsKey),
                caFile: settingName(GATEWAY_SETTINGS.httpsClientCa),
              },
            },
          }
        : {}),
      observability: {
        metrics: config.observability.metrics,
        requestIds: config.observability.requestIds,
        processMetrics: true,
        clientTraceContext: config.clientTraceContext,
      },
    });
    const port = await gateway.listen(config.host, config.port).catch((error: unknown) => {
      throw listenFailure(error, config.host, config.port, GATEWAY_SETTINGS);
    });
    const url = httpEndpointUrl({ protocol: config.https ? 'https' : 'http', host: config.host, port });
    log.info(
      { host: config.host, port, distributor: config.distributor },
      `listening on ${url}, routing from the distributor at ${config.distributor}`,
    );
    // With the port it really got: the launcher asks it when the shop is ready (shop-readiness.ts).
    announceListening(url);
    // Where its REST port requires client certificates, the launcher asks over the pipe instead.
    answerStatusQuestions(() => gateway.supervisorStatus(), 'gateway');
    let drainFirst = true;
    const stopAndExit = signals.stopOnSignals(
      log,
      async () => {
        const signalledAt = performance.now();
        // The drain is the operator's own time (--drain-delay-ms), for a load balancer to take the
        // gateway out. The steps after it get their budget from then on, but under the launcher,
        // whose 10 s began at its signal.
        if (drainFirst) await gateway.drain();
        const begunAt = supervised ? signalledAt : performance.now();
        return gateway.stop().finally(() => stopTracing(log, begunAt));
      },
      () => gateway.endDrain(),
    );
    // A refusal for good stops it, with exit code 3: drained first if it was serving routes (a token
    // rotated under a gateway behind a load balancer), at once if it never learned any.
    gateway.registration?.once('refused', () => {
      if (gateway.revision === undefined) drainFirst = false;
      stopAndExit(EXIT_CODES.refused, 'refused by the distributor');
    });
  }, GATEWAY_USAGE);
}
