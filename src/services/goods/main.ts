import { EXIT_CODES } from '../../common/exit-codes.js';
import { createLogger } from '../../common/logger.js';
import { runMain, stopOnSignals } from '../../common/process-lifecycle.js';
import { startTracing, stopTracing } from '../../common/tracing.js';
import { startService } from '../common/start-service.js';
import { GOODS_USAGE, loadGoodsConfig } from './config.js';
import { goodsSpec } from './goods-spec.js';

runMain(async () => {
  const config = loadGoodsConfig(process.argv.slice(2), process.env);
  const log = createLogger({ component: 'goods', level: config.logLevel });
  await startTracing('goods');
  const service = await startService(goodsSpec, config, { log });
  const stopAndExit = stopOnSignals(log, () => service.stop().finally(stopTracing));
  // Serving while never routed helps nobody: a refusal for good stops the service, with exit code 3.
  service.registration.once('refused', () => stopAndExit(EXIT_CODES.refused, 'refused by the distributor'));
}, GOODS_USAGE);
