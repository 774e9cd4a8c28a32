/**
 * Signals that arrive while a component is still loading its modules. Its entry (main.ts) holds
 * them first thing, then loads the rest with a dynamic import, which takes a few hundred ms
 * (grpc-js, pino, the generated code); without a listener meanwhile, SIGTERM or a Ctrl-C would kill
 * it outright, an exit by signal, instead of stopping it in order. ProcessSignals takes over what
 * was held (see takeHeldSignals). Module state, since signals are the process's: this module does
 * nothing until holdSignals() is called, so importing it elsewhere (tests) changes no handler.
 */
const HELD_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

let held: NodeJS.Signals[] | undefined;
const hold = (signal: NodeJS.Signals): void => {
  held?.push(signal);
};

/** Keeps SIGINT, SIGTERM and SIGHUP from ending the process until takeHeldSignals(). */
export function holdSignals(): void {
  if (held) return;
  held = [];
  for (const signal of HELD_SIGNALS) process.on(signal, hold);
}

/** Stops holding signals; returns those held so far, in order (none if nothing held them). */
export function takeHeldSignals(): NodeJS.Signals[] {
  if (!held) return [];
  for (const signal of HELD_SIGNALS) process.off(signal, hold);
  const taken = held;
  held = undefined;
  return taken;
}
