import { ConfigError } from './config.js';
import { EXIT_CODES } from './exit-codes.js';
import type { Logger } from './logger.js';

/**
 * How long the launcher waits for a component to stop before it kills it (SIGKILL): what a
 * component's whole stop (draining, calls in flight, the flush of its traces) is planned to fit in.
 */
export const STOP_LIMIT_MS = 10_000;

/** What a component keeps of the launcher's limit for exiting once its stop is done. */
const EXIT_MARGIN_MS = 500;

/**
 * The time one step of a stop begun at `stopBegunAt` (performance.now()) may take: `capMs`, or
 * what is left of the launcher's limit less half a second for exiting; none when nothing is left.
 * Each step of an ordered stop asks in turn, so that a slow peer at one step takes from the later
 * ones instead of pushing the whole stop past the limit and into a SIGKILL.
 */
export function stopStepBudget(stopBegunAt: number, capMs: number, now = performance.now()): number {
  const left = STOP_LIMIT_MS - EXIT_MARGIN_MS - (now - stopBegunAt);
  return Math.round(Math.min(capMs, Math.max(0, left)));
}

/** Set by the launcher's supervisor in each component it runs. */
export const SUPERVISED_ENV = 'SHOP_SUPERVISED';

/**
 * The line a supervised component writes to its stdout once it listens, whatever its log level
 * (with LOG_LEVEL=warn it logs nothing then). The supervisor reads it and shows it to nobody.
 */
export const LISTENING_LINE = 'shop-supervisor: listening';

/** Tells the supervisor, if this process runs under one, that it listens (see LISTENING_LINE). */
export function announceListening(): void {
  if (process.env[SUPERVISED_ENV] === '1') process.stdout.write(`${LISTENING_LINE}\n`);
}

/**
 * Stops a process in order and then exits with `exitCode`, for a failure it cannot heal by itself
 * (e.g. EXIT_CODES.refused); `reason` is logged. Like a signal, only the first request counts.
 */
export type StopAndExit = (exitCode: number, reason: string) => void;

/**
 * A signal this soon after the first is the same request, not a second one: Ctrl-C on a component
 * run by `npm run goods` reaches it twice, from the terminal and forwarded by npm.
 */
const REPEATED_SIGNAL_MS = 1_000;

/**
 * Wires a process's signals to its one `stop()`: SIGINT, SIGTERM or SIGHUP stops it in order and
 * exits 0; a second signal (more than a second after the first) exits at once with 1. An
 * unexpected error is a bug: it is logged and the process exits with 1 rather than running on in
 * an unknown state. Returns the same orderly stop for the process's own fatal conditions, with the
 * exit code they call for.
 */
export function stopOnSignals(log: Logger, stop: () => Promise<void>): StopAndExit {
  let stopping = false;
  let firstSignalAt: number | undefined;
  const stopThenExit = (exitCode: number, fields: Record<string, unknown>): void => {
    stopping = true;
    log[exitCode === EXIT_CODES.stopped ? 'info' : 'error'](fields, 'stopping');
    stop().then(
      () => {
        log.info('stopped');
        process.exit(exitCode);
      },
      (error: unknown) => {
        log.error({ err: error }, 'error while stopping');
        process.exit(exitCode === EXIT_CODES.stopped ? EXIT_CODES.failed : exitCode);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    const now = performance.now();
    if (stopping) {
      if (firstSignalAt !== undefined && now - firstSignalAt < REPEATED_SIGNAL_MS) return;
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(EXIT_CODES.failed);
    }
    firstSignalAt = now;
    stopThenExit(EXIT_CODES.stopped, { signal });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The terminal of a component run by hand closed: stop in order, as the launcher does.
  process.on('SIGHUP', onSignal);
  if (process.env[SUPERVISED_ENV] === '1') {
    // The supervisor holds the other end of stdin: its end means the supervisor is gone.
    process.stdin.on('end', () => onSignal('SIGTERM'));
    process.stdin.on('error', () => onSignal('SIGTERM'));
    process.stdin.resume();
  }
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception');
    process.exit(EXIT_CODES.failed);
  });
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: reason }, 'unhandled rejection');
    process.exit(EXIT_CODES.failed);
  });
  return (exitCode, reason) => {
    if (!stopping) stopThenExit(exitCode, { reason, exitCode });
  };
}

/** Runs a process's async `main`, turning a start-up failure into a clear message and exit code. */
export function runMain(main: () => Promise<void>, usage: string, argv = process.argv.slice(2)): void {
  if (asksForHelp(argv)) {
    process.stdout.write(`${usage}\n`);
    process.exit(EXIT_CODES.stopped);
  }
  main().catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    const badConfig = error instanceof ConfigError;
    process.stderr.write(`${message}\n${badConfig ? `\n${usage}\n` : ''}`);
    process.exit(badConfig ? EXIT_CODES.badConfiguration : EXIT_CODES.failed);
  });
}

/** Whether a command line asks for the usage (`--help` or `-h`), which is printed instead of a start. */
export function asksForHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}
