import { vi } from 'vitest';

/**
 * vi.waitFor gives up after 1 s unless told otherwise. The suite runs two files at once on two
 * cores, beside real servers, MariaDB and Chromium, and a condition that holds within milliseconds
 * alone can take seconds there: a wait that gave up then failed its test, and left its load running
 * into the next step (the balancing test, CI clone 94). A wait with no timeout of its own gets 10 s;
 * a test that holds something to a bound still passes that bound.
 */
export const DEFAULT_WAIT_TIMEOUT_MS = 10_000;

const waitFor = vi.waitFor;
vi.waitFor = ((callback: Parameters<typeof waitFor>[0], options?: Parameters<typeof waitFor>[1]) =>
  waitFor(
    callback,
    typeof options === 'number' ? options : { timeout: DEFAULT_WAIT_TIMEOUT_MS, ...options },
  )) as typeof vi.waitFor;
