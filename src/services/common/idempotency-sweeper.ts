import { type Logger, silentLogger } from '../../common/logger.js';
import { IDEMPOTENCY_SWEEP_INTERVAL_MS } from './idempotency.js';
import type { ServiceStore } from './service-store.js';

/** Options of {@link IdempotencySweeper}. */
export interface IdempotencySweeperOptions {
  store: Pick<ServiceStore, 'sweepExpired'>;
  /** Pause between the end of one sweep and the start of the next (default 10 min). */
  intervalMs?: number;
  log?: Logger;
}

/**
 * Deletes a service's expired idempotency keys (and members' old sign-in failures) in the
 * background: one bounded sweep per interval (see the store's `sweepExpired`), so the journal stays
 * near what one retention period of writes needs. Sweeps never overlap, the timer is unref'd, and a failed sweep (the database away) is
 * logged and tried again at the next interval; lookups ignore expired keys meanwhile anyway.
 */
export class IdempotencySweeper {
  readonly #store: Pick<ServiceStore, 'sweepExpired'>;
  readonly #intervalMs: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;

  constructor(options: IdempotencySweeperOptions) {
    this.#store = options.store;
    this.#intervalMs = options.intervalMs ?? IDEMPOTENCY_SWEEP_INTERVAL_MS;
    this.#log = options.log ?? silentLogger();
  }

  /** Sweeps after one interval, then every interval until `stop()`. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    this.#timer = setTimeout(() => void this.#sweep(), this.#intervalMs);
    this.#timer.unref();
  }

  async #sweep(): Promise<void> {
    try {
      const deleted = await this.#store.sweepExpired();
      if (deleted > 0)
        this.#log.debug(
          { event: 'idempotency-sweep', deleted },
          'expired records deleted (idempotency keys, and sign-in failures on members)',
        );
    } catch (error) {
      const cause = (error as { cause?: unknown } | undefined)?.cause ?? error;
      this.#log.warn(
        { event: 'idempotency-sweep-failed', err: cause },
        'could not delete expired records (idempotency keys, or sign-in failures on members)',
      );
    }
    if (!this.#stopped) this.#schedule();
  }
}
