import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { outcomeForStatus } from '../../src/gateway/status-mapping.js';

describe('outcomeForStatus', () => {
  it('keeps HTTP 200 and the service message for business outcomes', () => {
    const business = [
      status.INVALID_ARGUMENT,
      status.NOT_FOUND,
      status.ALREADY_EXISTS,
      status.PERMISSION_DENIED,
      status.UNAUTHENTICATED,
      status.ABORTED,
      status.OUT_OF_RANGE,
    ];
    for (const code of business) {
      expect(outcomeForStatus(code, 'no data')).toEqual({
        httpStatus: 200,
        message: 'no data',
        retryAfter: false,
      });
    }
    expect(outcomeForStatus(status.INVALID_ARGUMENT, '').message).toBe('Invalid Parameters');
    expect(outcomeForStatus(status.NOT_FOUND, '  ').message).toBe('Not found');
    expect(outcomeForStatus(status.UNAUTHENTICATED, 'x'.repeat(5000)).message.length).toBe(1024);
  });

  it('answers FAILED_PRECONDITION (an Idempotency-Key reused) 422 with the service message', () => {
    expect(
      outcomeForStatus(status.FAILED_PRECONDITION, 'Idempotency-Key reused with a different request'),
    ).toEqual({
      httpStatus: 422,
      message: 'Idempotency-Key reused with a different request',
      retryAfter: false,
    });
    expect(outcomeForStatus(status.FAILED_PRECONDITION, '').message).toBe('Failed precondition');
  });

  it('maps faults to HTTP errors with the gateway own words, never upstream details', () => {
    const table: [status, number, boolean][] = [
      [status.UNAVAILABLE, 503, true],
      [status.CANCELLED, 503, true],
      [status.RESOURCE_EXHAUSTED, 429, true],
      [status.DEADLINE_EXCEEDED, 504, false],
      [status.UNIMPLEMENTED, 500, false],
      [status.INTERNAL, 500, false],
      [status.UNKNOWN, 500, false],
      [status.DATA_LOSS, 500, false],
      [status.OK, 500, false],
    ];
    for (const [code, httpStatus, retryAfter] of table) {
      const outcome = outcomeForStatus(code, 'ECONNREFUSED 10.0.0.7:3306 at Pool.query (db.js:42)');
      expect(outcome.httpStatus, status[code]).toBe(httpStatus);
      expect(outcome.retryAfter, status[code]).toBe(retryAfter);
      expect(outcome.message).not.toContain('ECONNREFUSED');
    }
  });

  it('covers every gRPC status code', () => {
    for (const code of Object.values(status).filter((value): value is status => typeof value === 'number')) {
      expect(outcomeForStatus(code, '').httpStatus).toBeGreaterThanOrEqual(200);
    }
    expect(outcomeForStatus(99 as status, '').httpStatus).toBe(500);
  });
});
