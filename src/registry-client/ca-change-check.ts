import type { Logger } from '../common/logger.js';

/**
 * Runs `check`, a look at the distributor's certificate on a stream's connection against a CA file
 * just taken. A failure is logged, not thrown: thrown, it would stop the reading of the files, and
 * the renewals told after it.
 */
export function checkAfterCaChange(log: Logger, check: () => void): void {
  try {
    check();
  } catch (error) {
    log.warn(
      { event: 'untrusted-check-failed', err: error },
      "could not check the distributor's certificate against the changed CA file",
    );
  }
}
