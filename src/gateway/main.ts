import { holdSignals } from '../common/signal-hold.js';

// Loading the gateway's modules takes a few hundred ms: a signal meanwhile is held, then handled.
holdSignals();
const { runGateway } = await import('./run-gateway.js');
runGateway();
