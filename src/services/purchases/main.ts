import { createLogger } from '../../common/logger.js';
import { runMain, stopOnSignals } from '../../common/process-lifecycle.js';
import { startService } from '../common/start-service.js';
import { loadPurchasesConfig, PURCHASES_USAGE } from './config.js';
import { purchasesSpec } from './purchases-spec.js';

runMain(async () => {
  const config = loadPurchasesConfig(process.argv.slice(2), process.env);
  const log = createLogger({ component: 'purchases', level: config.logLevel });
  const service = await startService(purchasesSpec, config, { log });
  stopOnSignals(log, () => service.stop());
}, PURCHASES_USAGE);
