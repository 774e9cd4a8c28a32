/**
 * Signals that arrive while a component is still loading its modules. Its entry (main.ts) holds
 * them first thing, then loads the rest with a dynamic import, which takes a few hundred ms
 * (grpc-js, pino, the generated code); without a listener meanwhile, SIGTERM or a Ctrl-C would kill
 * it outright, an exit by signal, instead of stopping it in order. ProcessSignals takes over what
 * was held (see takeHeldSignals). Module state, since signals are the process's: this module does
 * nothing until holdSignals() is called, so importing it elsewhere (tests) changes no handler.
 * It imports nothing of the project's but exit-codes.ts, so that it is loaded at once.
 */
import { EXIT_CODES } from './exit-codes.js';

const HELD_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * A signal this soon after the first is the same request, not a second one: Ctrl-C on a component
 * run by `npm run goods` reaches it twice, from the terminal and forwarded by npm. A signal later
 * than this is a second request, which exits at once (see ProcessSignals), held or not.
 */
export const REPEATED_SIGNAL_MS = 1_000;

/** A signal held, and when it came (performance.now()). */
export interface HeldSignal {
  readonly signal: NodeJS.Signals;
  readonly at: number;
}

let held: HeldSignal[] | undefined;
const hold = (signal: NodeJS.Signals): void => {
  if (!held) return;
  const at = performance.now();
  const first = held[0];
  if (first !== undefined && at - first.at >= REPEATED_SIGNAL_MS) {
    // A second request while still loading: exit now, as ProcessSignals does during the start, so
    // that a loading that is slow or stuck does not make the process deaf to every signal.
    process.stderr.write(`${signal}: second signal while loading, exiting now\n`);
    process.exit(EXIT_CODES.failed);
  }
  held.push({ signal, at });
};

/** Keeps SIGINT, SIGTERM and SIGHUP from ending the process until takeHeldSignals(). */
export function holdSignals(): void {
  if (held) return;
  held = [];
  for (const signal of HELD_SIGNALS) process.on(signal, hold);
}

/**
 * Stops holding signals; returns those held so far, in order, with their times (none if nothing
 * held them).
 */
export function takeHeldSignals(): HeldSignal[] {
  if (!held) return [];
  for (const signal of HELD_SIGNALS) process.off(signal, hold);
  const taken = held;
  held = undefined;
  return taken;
}
