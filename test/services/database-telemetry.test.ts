import { status } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import { ServiceError } from '../../src/common/service-error.js';
import type { Tracer, TraceSpan } from '../../src/common/trace-span.js';
import {
  databaseOperation,
  databaseOperationSync,
  transactionOn,
} from '../../src/services/common/database-telemetry.js';

/** The spans started, with what they were failed with. */
const traced = vi.hoisted(() => ({ spans: [] as Array<{ name: string; failed?: string }> }));

vi.mock('../../src/common/tracing.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/common/tracing.js')>();
  const tracer: Tracer = {
    startSpan(name): TraceSpan {
      const recorded: { name: string; failed?: string } = { name };
      traced.spans.push(recorded);
      return {
        setName() {},
        setAttribute() {},
        fail: (message) => {
          recorded.failed = message;
        },
        end() {},
        carrier: () => ({}),
        isSampled: () => true,
      };
    },
  };
  return { ...original, activeTracer: () => tracer };
});

const parent = { isSampled: () => true } as unknown as TraceSpan;
const throwing = (error: Error) => () => {
  throw error;
};

describe('database operation spans', () => {
  it("fail for the store's faults, not for a caller's mistake that rolls a transaction back", async () => {
    traced.spans.length = 0;
    const name = transactionOn('purchases_idempotency');
    const reused = new ServiceError(
      status.FAILED_PRECONDITION,
      'Idempotency-Key reused with a different request',
    );
    expect(() => databaseOperationSync(undefined, 'sqlite', name, throwing(reused), parent)).toThrow(reused);
    await expect(
      databaseOperation(undefined, 'mysql', name, () => Promise.reject(reused), parent),
    ).rejects.toBe(reused);
    const down = new ServiceError(status.UNAVAILABLE, 'Database unavailable');
    expect(() => databaseOperationSync(undefined, 'sqlite', name, throwing(down), parent)).toThrow(down);
    const driver = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' });
    expect(() => databaseOperationSync(undefined, 'sqlite', name, throwing(driver), parent)).toThrow(driver);
    expect(traced.spans.map((span) => span.failed)).toEqual([
      undefined,
      undefined,
      'ServiceError',
      'SQLITE_IOERR_WRITE',
    ]);
  });
});
