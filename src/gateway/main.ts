import { formatHostPort } from '../common/config.js';
import { EXIT_CODES } from '../common/exit-codes.js';
import { logGrpcThrough } from '../common/grpc-logging.js';
import { useLeanAsyncResourceBind } from '../common/lean-async-resource-bind.js';
import { listenFailure } from '../common/listen-failure.js';
import { createLogger } from '../common/logger.js';
import { runMain } from '../common/process-lifecycle.js';
import { settingName } from '../common/settings.js';
import { startTracing, stopTracing } from '../common/tracing.js';
import { GATEWAY_SETTINGS, GATEWAY_USAGE, loadGatewayConfig } from './config.js';
import { createGateway } from './gateway-server.js';

runMain(async (signals) => {
  const config = loadGatewayConfig(process.argv.slice(2), process.env);
  const log = createLogger({ component: 'gateway', level: config.logLevel });
  logGrpcThrough(log);
  // Every upstream call opens an HTTP/2 stream, which Node 20 binds at a needless cost (see the module).
  if (useLeanAsyncResourceBind())
    log.debug("AsyncResource.prototype.bind replaced by one without DEP0172's accessor");
  await startTracing('gateway');
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
    },
  });
  const port = await gateway.listen(config.host, config.port).catch((error: unknown) => {
    throw listenFailure(error, config.host, config.port, GATEWAY_SETTINGS);
  });
  log.info(
    { host: config.host, port, distributor: config.distributor },
    `listening on ${config.https ? 'https' : 'http'}://${formatHostPort({ host: config.host, port })}, routing from the distributor at ${config.distributor}`,
  );
  let drainFirst = true;
  const stopAndExit = signals.stopOnSignals(log, async () => {
    // The drain is the operator's own time (--drain-delay-ms), for a load balancer to take the
    // gateway out; the stop's own budget (the launcher's 10 s) begins after it.
    if (drainFirst) await gateway.drain();
    const begunAt = performance.now();
    return gateway.stop().finally(() => stopTracing(log, begunAt));
  });
  // Without a registration the gateway learns no routes: a refusal for good stops it, with exit code 3.
  gateway.registration?.once('refused', () => {
    drainFirst = false; // it never learned a route: nothing to take it out of
    stopAndExit(EXIT_CODES.refused, 'refused by the distributor');
  });
}, GATEWAY_USAGE);
