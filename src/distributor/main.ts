import { createLogger } from '../common/logger.js';
import { runMain, stopOnSignals } from '../common/process-lifecycle.js';
import { DISTRIBUTOR_USAGE, loadDistributorConfig } from './config.js';
import { createDistributorServer } from './distributor-server.js';

runMain(async () => {
  const config = loadDistributorConfig(process.argv.slice(2), process.env);
  const log = createLogger({ component: 'distributor', level: config.logLevel });
  const distributor = createDistributorServer({ log });
  const port = await distributor.listen(config.host, config.port);
  log.info({ host: config.host, port }, `listening on ${config.host}:${port}`);
  stopOnSignals(log, () => distributor.stop());
}, DISTRIBUTOR_USAGE);
