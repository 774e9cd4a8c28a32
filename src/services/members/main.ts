import { createLogger } from '../../common/logger.js';
import { runMain, stopOnSignals } from '../../common/process-lifecycle.js';
import { startService } from '../common/start-service.js';
import { loadMembersConfig, MEMBERS_USAGE } from './config.js';
import { membersSpec } from './members-spec.js';

runMain(async () => {
  const config = loadMembersConfig(process.argv.slice(2), process.env);
  const log = createLogger({ component: 'members', level: config.logLevel });
  const service = await startService(membersSpec, config, { log });
  stopOnSignals(log, () => service.stop());
}, MEMBERS_USAGE);
