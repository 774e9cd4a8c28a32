import { EXIT_CODES } from '../../common/exit-codes.js';
import { createLogger } from '../../common/logger.js';
import { runMain, stopOnSignals } from '../../common/process-lifecycle.js';
import { startTracing, stopTracing } from '../../common/tracing.js';
import { startService } from '../common/start-service.js';
import { loadPurchasesConfig, PURCHASES_USAGE } from './config.js';
import { purchasesSpec } from './purchases-spec.js';

runMain(async () => {
  const config = loadPurchasesConfig(process.argv.slice(2), process.env);
  const log = createLogger({ component: 'purchases', level: config.logLevel });
  await startTracing('purchases');
  const service = await startService(purchasesSpec, config, { log });
  const stopAndExit = stopOnSignals(log, () => service.stop().finally(stopTracing));
  // Serving while never routed helps nobody: a refusal for good stops the service, with exit code 3.
  service.registration.once('refused', () => stopAndExit(EXIT_CODES.refused, 'refused by the distributor'));
}, PURCHASES_USAGE);
