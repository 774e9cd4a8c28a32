/**
 * How a component's process ends, so that whatever runs it (the launcher, systemd, a container
 * runtime) can tell a failure that a restart may heal from one that would only repeat.
 */
export const EXIT_CODES = {
  /** Stopped as asked (a signal, or the supervisor gone), in order. */
  stopped: 0,
  /**
   * Crashed, or could not start for a reason that may pass (a port still held, say); for the
   * launcher, also a stop that had to kill a component (SIGKILL) past the stop limit.
   */
  failed: 1,
  /** Its flags or environment are wrong: it printed why and its usage. */
  badConfiguration: 2,
  /** The distributor refused it for a reason that no retry changes (see retry-policy.ts). */
  refused: 3,
} as const;

/**
 * The exit codes a restart cannot help, with what they mean: a supervisor must not start such a
 * process again until a person has changed something.
 */
export const PERMANENT_EXITS: ReadonlyMap<number, string> = new Map([
  [EXIT_CODES.badConfiguration, 'bad configuration'],
  [EXIT_CODES.refused, 'refused by the distributor'],
]);
