import { holdSignals } from '../../common/signal-hold.js';

// Loading the service's modules takes a few hundred ms: a signal meanwhile is held, then handled.
holdSignals();
const [{ runService }, { membersService }] = await Promise.all([
  import('../common/run-service.js'),
  import('./members-service.js'),
]);
runService(membersService);
