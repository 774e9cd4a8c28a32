import { createInterface } from 'node:readline';
import { ConfigError } from './config.js';
import { EXIT_CODES } from './exit-codes.js';
import type { Logger } from './logger.js';
import { LossyStdout } from './lossy-stdout.js';
import { REPEATED_SIGNAL_MS, takeHeldSignals } from './signal-hold.js';

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

/**
 * Tells the supervisor, if this process runs under one, that it listens (see LISTENING_LINE), and
 * at which URL when it has one the supervisor may ask (the gateway's, with the port it really got).
 */
export function announceListening(url?: string): void {
  if (process.env[SUPERVISED_ENV] !== '1') return;
  process.stdout.write(`${LISTENING_LINE}${url === undefined ? '' : ` ${url}`}\n`);
}

/**
 * What a line of a supervised component's stdout announces: undefined for any other line than
 * LISTENING_LINE; the URL it carries, or '' for none.
 */
export function listeningAnnounced(line: string): string | undefined {
  if (line === LISTENING_LINE) return '';
  return line.startsWith(`${LISTENING_LINE} `) ? line.slice(LISTENING_LINE.length + 1) : undefined;
}

/**
 * The line the supervisor writes to a supervised component's stdin to ask for its status (see
 * answerStatusQuestions): the launcher asks the gateway so when the gateway's REST port requires
 * client certificates, which its `GET /status.json` then asks of the launcher too.
 */
export const STATUS_QUESTION = 'shop-supervisor: status?';

/** The start of a supervised component's answer on its stdout, its status as JSON after a space. */
export const STATUS_LINE = 'shop-supervisor: status';

/**
 * Answers each STATUS_QUESTION on stdin with `status()` as one STATUS_LINE on stdout, when this
 * process runs under the supervisor (whose pipe stdin is: nobody else can ask). Written as the log
 * lines are (synchronously, never blocking for long), so that no log line lands inside it.
 */
export function answerStatusQuestions(status: () => unknown, component: string): void {
  if (process.env[SUPERVISED_ENV] !== '1') return;
  const out = new LossyStdout(component);
  createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
    if (line === STATUS_QUESTION) out.write(`${STATUS_LINE} ${JSON.stringify(status())}\n`);
  });
}

/** The JSON of a STATUS_LINE; undefined for any other line. */
export function statusAnswered(line: string): string | undefined {
  return line.startsWith(`${STATUS_LINE} `) ? line.slice(STATUS_LINE.length + 1) : undefined;
}

/**
 * Stops a process in order and then exits with `exitCode`, for a failure it cannot heal by itself
 * (e.g. EXIT_CODES.refused); `reason` is logged. Like a signal, only the first request counts.
 */
export type StopAndExit = (exitCode: number, reason: string) => void;

/**
 * A process's signals, from the start of its `main` on (see runMain), and those its entry held while
 * it loaded (signal-hold.ts). Until the process has its
 * orderly stop (stopOnSignals), a signal is kept: the start runs on to its end, and the stop then
 * begins at once. Killed mid-start instead, a service would leave its store open (SQLite's -wal and
 * -shm files behind) and the launcher would see a component die from the signal it sent.
 */
export class ProcessSignals {
  #stopping = false;
  #firstSignalAt: number | undefined;
  /** The signal that came before the stop was known. */
  #pending: NodeJS.Signals | undefined;
  #stopThenExit: ((exitCode: number, fields: Record<string, unknown>) => void) | undefined;
  #log: Logger | undefined;
  /** What a second signal may cut short instead of exiting (see stopOnSignals), until it has. */
  #hurry: (() => boolean) | undefined;
  /** A second signal ended a drain: the next one is the third. */
  #drainEnded = false;

  constructor() {
    const onSignal = (signal: NodeJS.Signals): void => this.#onSignal(signal);
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
    // What came while the entry was still loading this (signal-hold.ts), in order and at the time
    // it came: a signal more than REPEATED_SIGNAL_MS after a held one is a second request.
    for (const { signal, at } of takeHeldSignals()) this.#onSignal(signal, at);
  }

  /**
   * Wires the signals to the process's one `stop()`: SIGINT, SIGTERM or SIGHUP stops it in order
   * and exits 0; a second signal (more than a second after the first) exits at once with 1. A
   * signal kept from the start begins the stop now. An unexpected error is a bug: it is logged and
   * the process exits with 1 rather than running on in an unknown state. Returns the same orderly
   * stop for the process's own fatal conditions, with the exit code they call for.
   *
   * `hurry`, if given, is asked first on a second signal: it cuts short a wait of the stop's own
   * choosing (the gateway's drain) and says whether there was one; the stop then goes on in order,
   * and only a signal after that exits at once.
   */
  stopOnSignals(log: Logger, stop: () => Promise<void>, hurry?: () => boolean): StopAndExit {
    this.#hurry = hurry;
    const stopThenExit = (exitCode: number, fields: Record<string, unknown>): void => {
      this.#stopping = true;
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
    this.#stopThenExit = stopThenExit;
    this.#log = log;
    process.on('uncaughtException', (error) => {
      log.fatal({ err: error }, 'uncaught exception');
      process.exit(EXIT_CODES.failed);
    });
    process.on('unhandledRejection', (reason) => {
      log.fatal({ err: reason }, 'unhandled rejection');
      process.exit(EXIT_CODES.failed);
    });
    if (this.#pending !== undefined) {
      stopThenExit(EXIT_CODES.stopped, { signal: this.#pending, during: 'start' });
    }
    return (exitCode, reason) => {
      if (!this.#stopping) stopThenExit(exitCode, { reason, exitCode });
    };
  }

  #onSignal(signal: NodeJS.Signals, now = performance.now()): void {
    if (this.#stopping || this.#pending !== undefined) {
      if (this.#firstSignalAt !== undefined && now - this.#firstSignalAt < REPEATED_SIGNAL_MS) return;
      const hurry = this.#hurry;
      this.#hurry = undefined;
      if (this.#stopping && hurry?.()) {
        // Counted as the first again: the two copies of one Ctrl-C must not exit.
        this.#firstSignalAt = now;
        this.#drainEnded = true;
        this.#log?.warn({ signal }, 'second signal: the drain ends now, the stop goes on in order');
        return;
      }
      if (this.#log)
        this.#log.warn({ signal }, `${this.#drainEnded ? 'third' : 'second'} signal: exiting now`);
      // No logger yet during the start: the launcher shows stderr as the component's own lines.
      else process.stderr.write(`${signal}: second signal during the start, exiting now\n`);
      process.exit(EXIT_CODES.failed);
    }
    this.#firstSignalAt = now;
    if (this.#stopThenExit === undefined) this.#pending = signal;
    else this.#stopThenExit(EXIT_CODES.stopped, { signal });
  }
}

/** {@link ProcessSignals.stopOnSignals} for a process that takes its signals from here on. */
export function stopOnSignals(log: Logger, stop: () => Promise<void>): StopAndExit {
  return new ProcessSignals().stopOnSignals(log, stop);
}

/**
 * Runs a process's async `main`, turning a start-up failure into a clear message and exit code.
 * `main` is handed the process's signals, taken from now on (see ProcessSignals).
 */
export function runMain(
  main: (signals: ProcessSignals) => Promise<void>,
  usage: string,
  argv = process.argv.slice(2),
): void {
  if (asksForHelp(argv)) {
    process.stdout.write(`${usage}\n`);
    process.exit(EXIT_CODES.stopped);
  }
  main(new ProcessSignals()).catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    const badConfig = error instanceof ConfigError;
    process.stderr.write(`${message}\n${badConfig && error.showUsage ? `\n${usage}\n` : ''}`);
    process.exit(badConfig ? EXIT_CODES.badConfiguration : EXIT_CODES.failed);
  });
}

/** Whether a command line asks for the usage (`--help` or `-h`), which is printed instead of a start. */
export function asksForHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}
