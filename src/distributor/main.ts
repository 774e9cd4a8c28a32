import { holdSignals } from '../common/signal-hold.js';

// Loading the distributor's modules takes a few hundred ms: a signal meanwhile is held, then handled.
holdSignals();
const { runDistributor } = await import('./run-distributor.js');
runDistributor();
