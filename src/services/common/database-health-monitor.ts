import { errorCause, limiterOf } from '../../common/log-limiter.js';
import { type Logger, silentLogger } from '../../common/logger.js';

/** Options of {@link DatabaseHealthMonitor}. */
export interface DatabaseHealthMonitorOptions {
  /**
   * A cheap round trip to the database; rejects when it cannot be used. A `hint` string on the
   * error (what to change, when the cause is a setting) is logged with it.
   */
  probe: () => Promise<void>;
  /** Called with every change of reachability (not with every probe). */
  onChange: (reachable: boolean) => void;
  /** Pause between the end of one probe and the start of the next (default 2 s). */
  intervalMs?: number;
  log?: Logger;
}

/**
 * Probes a service's database in the background so that its health says NOT_SERVING while the
 * database is unreachable and SERVING again once it is back, without any call having to fail first.
 *
 * It starts pessimistic: unreachable until the first probe succeeds. Probes never overlap (the next
 * is scheduled after the previous settles), the timer is unref'd so it never keeps a process alive,
 * and `stop()` clears it.
 */
export class DatabaseHealthMonitor {
  readonly #probe: () => Promise<void>;
  readonly #onChange: (reachable: boolean) => void;
  readonly #intervalMs: number;
  readonly #log: Logger;
  #reachable = false;
  #probedOnce = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;

  constructor(options: DatabaseHealthMonitorOptions) {
    this.#probe = options.probe;
    this.#onChange = options.onChange;
    this.#intervalMs = options.intervalMs ?? 2_000;
    this.#log = options.log ?? silentLogger();
  }

  /** Whether the last probe succeeded. */
  get reachable(): boolean {
    return this.#reachable;
  }

  /** Probes now, then every interval until `stop()`. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  async #run(): Promise<void> {
    let reachable: boolean;
    let failure: unknown;
    try {
      await this.#probe();
      reachable = true;
    } catch (error) {
      reachable = false;
      failure = error;
    }
    if (this.#stopped) return;
    if (reachable !== this.#reachable || !this.#probedOnce) {
      this.#probedOnce = true;
      this.#reachable = reachable;
      // A database that comes and goes writes one line of each kind per interval (see LogLimiter).
      if (reachable)
        limiterOf(this.#log).info('database-up', { event: 'database-up' }, 'database reachable: serving');
      else {
        const cause = (failure as { cause?: unknown } | undefined)?.cause ?? failure;
        const hint = (failure as { hint?: unknown } | undefined)?.hint;
        limiterOf(this.#log).error(
          `database-down ${errorCause(cause)}`,
          { event: 'database-down', err: cause },
          `database unreachable: not serving${typeof hint === 'string' ? ` (${hint})` : ''}`,
        );
      }
      this.#onChange(reachable);
    }
    this.#timer = setTimeout(() => void this.#run(), this.#intervalMs);
    this.#timer.unref();
  }
}
