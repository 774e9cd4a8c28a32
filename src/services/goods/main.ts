import { holdSignals } from '../../common/signal-hold.js';

// Loading the service's modules takes a few hundred ms: a signal meanwhile is held, then handled.
holdSignals();
const [{ runService }, { goodsService }] = await Promise.all([
  import('../common/run-service.js'),
  import('./goods-service.js'),
]);
runService(goodsService);
