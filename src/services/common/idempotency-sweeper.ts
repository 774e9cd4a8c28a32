import { type Logger, silentLogger } from '../../common/logger.js';
import {
  IDEMPOTENCY_SWEEP_BATCH,
  IDEMPOTENCY_SWEEP_INTERVAL_MS,
  IDEMPOTENCY_SWEEP_MAX_BATCHES,
} from './idempotency.js';
import type { ServiceStore } from './service-store.js';

const FIRST_SWEEP_WITHIN_MS = 60_000;

/**
 * The pause after a sweep that deleted all it may (more keys may have expired than it took): one
 * capped sweep per interval deletes at most 20,000 keys per 10 minutes, fewer than an instance taking
 * 34 keyed writes a second adds, and its journal grew without end. Sweeping again after this pause
 * catches up at up to 4,000 keys a second, and leaves the database to the calls most of the time.
 */
const CATCH_UP_PAUSE_MS = 5_000;

/** The most one sweep deletes (see IDEMPOTENCY_SWEEP_MAX_BATCHES): reaching it says more may be due. */
const SWEEP_CAP = IDEMPOTENCY_SWEEP_BATCH * IDEMPOTENCY_SWEEP_MAX_BATCHES;

/** Options of {@link IdempotencySweeper}. */
export interface IdempotencySweeperOptions {
  store: Pick<ServiceStore, 'sweepExpired'>;
  /** Pause between the end of one sweep and the start of the next (default 10 min). */
  intervalMs?: number;
  /** Pause after a sweep that deleted as much as a sweep may, before the next (default 5 s). */
  catchUpPauseMs?: number;
  /** The first sweep comes at a random moment within this long of the start, or of the interval if shorter (default 1 min). */
  firstSweepWithinMs?: number;
  log?: Logger;
}

/**
 * Deletes a service's expired idempotency keys (and members' old sign-in failures) in the
 * background: one bounded sweep per interval (see the store's `sweepExpired`), or sooner while sweeps
 * are cut short by their bound (see CATCH_UP_PAUSE_MS), so the journal stays near what one retention
 * period of writes needs. The first comes within a minute of the start, not
 * an interval after it: an instance restarted more often than every 10 minutes (a crash loop,
 * frequent deploys) would otherwise never sweep; at a random moment, so that instances started
 * together do not sweep one table together. Sweeps never overlap, the timer is unref'd, and a
 * failed sweep (the database away) is logged and tried again at the next interval; lookups ignore
 * expired keys meanwhile anyway.
 */
export class IdempotencySweeper {
  readonly #store: Pick<ServiceStore, 'sweepExpired'>;
  readonly #intervalMs: number;
  readonly #catchUpPauseMs: number;
  readonly #firstSweepWithinMs: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;

  constructor(options: IdempotencySweeperOptions) {
    this.#store = options.store;
    this.#intervalMs = options.intervalMs ?? IDEMPOTENCY_SWEEP_INTERVAL_MS;
    this.#catchUpPauseMs = Math.min(options.catchUpPauseMs ?? CATCH_UP_PAUSE_MS, this.#intervalMs);
    this.#firstSweepWithinMs = options.firstSweepWithinMs ?? FIRST_SWEEP_WITHIN_MS;
    this.#log = options.log ?? silentLogger();
  }

  /** Sweeps once soon (see the class), then every interval until `stop()`. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(Math.floor(Math.random() * Math.min(this.#firstSweepWithinMs, this.#intervalMs)));
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => void this.#sweep(), delayMs);
    this.#timer.unref();
  }

  async #sweep(): Promise<void> {
    let capped = false;
    try {
      const deleted = await this.#store.sweepExpired();
      capped = deleted >= SWEEP_CAP;
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
    if (!this.#stopped) this.#schedule(capped ? this.#catchUpPauseMs : this.#intervalMs);
  }
}
