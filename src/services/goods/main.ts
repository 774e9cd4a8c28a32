import { createLogger } from '../../common/logger.js';
import { runMain, stopOnSignals } from '../../common/process-lifecycle.js';
import { startService } from '../common/start-service.js';
import { GOODS_USAGE, loadGoodsConfig } from './config.js';
import { goodsSpec } from './goods-spec.js';

runMain(async () => {
  const config = loadGoodsConfig(process.argv.slice(2), process.env);
  const log = createLogger({ component: 'goods', level: config.logLevel });
  const service = await startService(goodsSpec, config, { log });
  stopOnSignals(log, () => service.stop());
}, GOODS_USAGE);
