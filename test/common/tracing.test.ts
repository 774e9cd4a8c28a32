import { describe, expect, it } from 'vitest';
import { STOP_LIMIT_MS } from '../../src/common/process-lifecycle.js';
import { flushBudget, TRACE_FLUSH_AT_STOP_MS } from '../../src/common/tracing.js';

// The time a stop gives the flush of its traces (see test/e2e/tracing-stop.test.ts for the stops).
describe('the flush of traces at a stop', () => {
  it("gets 2 s, or what is left of the launcher's 10 s less half a second, or none", () => {
    expect(flushBudget(0, 0)).toBe(TRACE_FLUSH_AT_STOP_MS);
    expect(flushBudget(1_000, 7_000)).toBe(TRACE_FLUSH_AT_STOP_MS);
    expect(flushBudget(0, STOP_LIMIT_MS - 1_500)).toBe(1_000);
    expect(flushBudget(0, STOP_LIMIT_MS - 500)).toBe(0);
    expect(flushBudget(0, STOP_LIMIT_MS + 5_000)).toBe(0);
  });
});
