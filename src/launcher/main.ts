import { holdSignals } from '../common/signal-hold.js';

// Loading the launcher's modules takes a few hundred ms: a signal meanwhile is held, then handled
// (before any component has started, it stops nothing and exits 0).
holdSignals();
await import('./run-launcher.js');
