import { startConfiguredAdminServer } from '../common/admin-server.js';
import { formatHostPort } from '../common/config.js';
import { logGrpcThrough } from '../common/grpc-logging.js';
import { listenFailure } from '../common/listen-failure.js';
import { createLogger } from '../common/logger.js';
import { announceListening, runMain } from '../common/process-lifecycle.js';
import { checkOwnIdentity } from '../common/tls-files.js';
import { startTracing, stopTracing } from '../common/tracing.js';
import {
  DISTRIBUTOR_SETTINGS,
  DISTRIBUTOR_USAGE,
  ignoredOpenSwitch,
  loadDistributorConfig,
} from './config.js';
import { createDistributorServer } from './distributor-server.js';
import { DistributorTelemetry } from './distributor-telemetry.js';

/**
 * The distributor's process: reads its flags and environment, starts it, and wires signals to
 * its ordered stop. Its entry, main.ts, holds signals while this module and its imports load.
 */
export function runDistributor(): void {
  runMain(async (signals) => {
    const config = loadDistributorConfig(process.argv.slice(2), process.env);
    // Services and gateways dial only spiffe://shop/distributor (secure naming).
    if (config.tls) checkOwnIdentity(config.tls, 'distributor');
    const log = createLogger({ component: 'distributor', level: config.logLevel });
    logGrpcThrough(log);
    await startTracing('distributor', process.env, log);
    const { observability } = config;
    const telemetry = new DistributorTelemetry({
      metrics: observability.metrics,
      processMetrics: observability.metricsPort !== undefined,
    });
    const distributor = createDistributorServer({
      telemetry,
      log,
      // Read again every 5 s; a CA file changed so that a caller's certificate no longer chains to
      // it ends that caller's Register and Watch streams.
      ...(config.tls ? { tls: config.tls } : {}),
      // With a CA, every caller has a verified certificate: a node may register only under its name.
      requireCertificateIdentity: config.tls?.caFile !== undefined,
      maxConnections: config.maxConnections,
      unreadAnswerTimeoutMs: config.unreadAnswerTimeoutMs,
      ...(config.registryToken ? { registryToken: config.registryToken } : {}),
    });
    const port = await distributor.listen(config.host, config.port).catch((error: unknown) => {
      throw listenFailure(error, config.host, config.port, DISTRIBUTOR_SETTINGS);
    });
    const auth = [
      config.tls?.caFile ? 'mTLS (certificate identity must match the registered name)' : undefined,
      config.registryToken ? 'registration token' : undefined,
    ].filter(Boolean);
    log.info(
      { event: 'listening', host: config.host, port, tls: Boolean(config.tls), auth },
      `listening on ${formatHostPort({ host: config.host, port })}; registration requires ${auth.join(' and ') || 'nothing (open registry)'}`,
    );
    const ignored = ignoredOpenSwitch(config);
    if (ignored) log.warn({ event: 'open-registry-ignored' }, ignored);
    announceListening();
    const admin = await startConfiguredAdminServer(observability, telemetry.registry, {
      host: config.host,
      addresses: distributor.boundAddresses(),
      log,
      settings: DISTRIBUTOR_SETTINGS,
    });
    signals.stopOnSignals(log, async () => {
      const begunAt = performance.now();
      try {
        await distributor.stop();
        await admin?.stop();
      } finally {
        await stopTracing(log, begunAt);
      }
    });
  }, DISTRIBUTOR_USAGE);
}
