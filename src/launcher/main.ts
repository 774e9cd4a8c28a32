import { holdSignals } from '../common/signal-hold.js';
import { noteParent } from './parent-watch.js';

// Loading the launcher's modules takes a few hundred ms: a signal meanwhile is held, then handled
// (before any component has started, it stops nothing and exits 0), and a parent that dies
// meanwhile is still seen gone (parent-watch.ts).
noteParent();
holdSignals();
await import('./run-launcher.js');
