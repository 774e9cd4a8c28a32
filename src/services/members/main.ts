import { EXIT_CODES } from '../../common/exit-codes.js';
import { createLogger } from '../../common/logger.js';
import { runMain, stopOnSignals } from '../../common/process-lifecycle.js';
import { startTracing, stopTracing } from '../../common/tracing.js';
import { startService } from '../common/start-service.js';
import { loadMembersConfig, MEMBERS_USAGE } from './config.js';
import { membersSpec } from './members-spec.js';

runMain(async () => {
  const config = loadMembersConfig(process.argv.slice(2), process.env);
  const log = createLogger({ component: 'members', level: config.logLevel });
  await startTracing('members');
  const service = await startService(membersSpec, config, { log });
  const stopAndExit = stopOnSignals(log, () => service.stop().finally(stopTracing));
  // Serving while never routed helps nobody: a refusal for good stops the service, with exit code 3.
  service.registration.once('refused', () => stopAndExit(EXIT_CODES.refused, 'refused by the distributor'));
}, MEMBERS_USAGE);
