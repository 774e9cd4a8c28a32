import { EXIT_CODES } from '../../common/exit-codes.js';
import { logGrpcThrough } from '../../common/grpc-logging.js';
import { createLogger } from '../../common/logger.js';
import { runMain } from '../../common/process-lifecycle.js';
import { startTracing, stopTracing } from '../../common/tracing.js';
import type { AnyShopService } from './define-service.js';
import { loadServiceConfig, serviceUsage } from './service-config.js';
import { startService } from './start-service.js';

/**
 * The whole `main` of a service's process (its folder's main.ts holds signals, then imports this
 * and calls it): reads its flags and environment, starts it, and wires signals to its ordered stop.
 * A bad setting prints the service's usage text and exits with 2.
 */
export function runService(service: AnyShopService): void {
  runMain(async (signals) => {
    const config = loadServiceConfig(service, process.argv.slice(2), process.env);
    const log = createLogger({ component: service.name, level: config.logLevel });
    logGrpcThrough(log);
    // Traces when OTEL_* ask for them (tracing.ts); before the server is built, which reads it.
    await startTracing(service.name, process.env, log);
    const running = await startService(service, config, { log });
    const stopAndExit = signals.stopOnSignals(log, () => {
      const begunAt = performance.now();
      return running.stop(begunAt).finally(() => stopTracing(log, begunAt));
    });
    // Serving while never routed helps nobody: a refusal for good stops the service, with exit code 3.
    running.registration.once('refused', () => stopAndExit(EXIT_CODES.refused, 'refused by the distributor'));
  }, serviceUsage(service));
}
