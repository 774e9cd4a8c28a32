import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  cutAfterSent,
  outcomeForStatus,
  retryPushbackOf,
  upstreamStatus,
} from '../../src/gateway/status-mapping.js';
import { TOO_MANY_SIGN_INS } from '../../src/services/members/hashing-limiter.js';

describe('outcomeForStatus', () => {
  it('keeps HTTP 200 and the service message for business outcomes', () => {
    const business = [
      status.INVALID_ARGUMENT,
      status.NOT_FOUND,
      status.ALREADY_EXISTS,
      status.PERMISSION_DENIED,
      status.UNAUTHENTICATED,
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

  it('answers ABORTED (an Idempotency-Key whose writes keep rolling back) 409 with the service message and Retry-After', () => {
    expect(
      outcomeForStatus(status.ABORTED, 'Idempotency-Key is in use by a concurrent request; try again'),
    ).toEqual({
      httpStatus: 409,
      message: 'Idempotency-Key is in use by a concurrent request; try again',
      retryAfter: true,
    });
    expect(outcomeForStatus(status.ABORTED, '').message).toBe(
      'Conflict with a concurrent request, try again',
    );
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

  it("tells grpc-js's message size limits from an overload: 502, not 429, and no Retry-After", () => {
    for (const details of [
      'Received message larger than max (4194405 vs 4194304)',
      'Sent message larger than max (5242885 vs. 4194304)',
      'Received message that decompresses to a size larger than 4194304',
    ]) {
      expect(outcomeForStatus(status.RESOURCE_EXHAUSTED, details), details).toEqual({
        httpStatus: 502,
        message: 'The answer is too large',
        retryAfter: false,
      });
    }
    // A service's own RESOURCE_EXHAUSTED (members' full hashing queue) is still an overload.
    expect(outcomeForStatus(status.RESOURCE_EXHAUSTED, TOO_MANY_SIGN_INS)).toEqual({
      httpStatus: 429,
      message: 'Service overloaded',
      retryAfter: true,
    });
    expect(outcomeForStatus(status.RESOURCE_EXHAUSTED, undefined).httpStatus).toBe(429);
  });

  it('a RESOURCE_EXHAUSTED with a gRPC pushback is a limit the service explained: its message, its wait in whole seconds', () => {
    const message = 'Too many failed sign-ins for this account: try again in 3 s';
    expect(outcomeForStatus(status.RESOURCE_EXHAUSTED, message, 2_001)).toEqual({
      httpStatus: 429,
      message,
      retryAfter: 3,
    });
    expect(outcomeForStatus(status.RESOURCE_EXHAUSTED, message, 0).retryAfter).toBe(1);
    // A pushback on another status changes nothing.
    expect(outcomeForStatus(status.UNAVAILABLE, 'x', 5_000)).toEqual(
      outcomeForStatus(status.UNAVAILABLE, 'x'),
    );
  });

  it('reads the pushback trailer as gRFC A6 writes it, and nothing else', () => {
    const trailers = (value?: string) => {
      const metadata = new Metadata();
      if (value !== undefined) metadata.set('grpc-retry-pushback-ms', value);
      return metadata;
    };
    expect(retryPushbackOf(trailers('1500'))).toBe(1_500);
    expect(retryPushbackOf(trailers('0'))).toBe(0);
    for (const value of [undefined, '-1', '1.5', 'soon', '', '99999999999']) {
      expect(retryPushbackOf(trailers(value)), String(value)).toBeUndefined();
    }
    expect(retryPushbackOf(undefined)).toBeUndefined();
  });

  it('covers every gRPC status code', () => {
    for (const code of Object.values(status).filter((value): value is status => typeof value === 'number')) {
      expect(outcomeForStatus(code, '').httpStatus).toBeGreaterThanOrEqual(200);
    }
    expect(outcomeForStatus(99 as status, '').httpStatus).toBe(500);
  });
});

describe('upstreamStatus', () => {
  const later = Date.now() + 60_000;
  it('a call cut below gRPC is UNAVAILABLE, or DEADLINE_EXCEEDED once its deadline has passed', () => {
    for (const details of [
      'Received RST_STREAM with code 2 (Internal server error)',
      'Received RST_STREAM with code 1',
      'Received RST_STREAM with code 2 triggered by internal client error: Session closed with error code 2',
    ]) {
      expect(upstreamStatus(status.INTERNAL, details, later)).toBe(status.UNAVAILABLE);
      expect(upstreamStatus(status.INTERNAL, details, Date.now() - 1)).toBe(status.DEADLINE_EXCEEDED);
    }
  });

  it("keeps a service's own status as it is", () => {
    expect(upstreamStatus(status.INTERNAL, 'Internal error', later)).toBe(status.INTERNAL);
    expect(upstreamStatus(status.INTERNAL, undefined, later)).toBe(status.INTERNAL);
    expect(upstreamStatus(status.UNKNOWN, 'Received RST_STREAM with code 2', later)).toBe(status.UNKNOWN);
    expect(upstreamStatus(status.NOT_FOUND, 'no data', later)).toBe(status.NOT_FOUND);
  });
});

describe('cutAfterSent', () => {
  it('tells a call cut after it was sent from one refused before it was processed', () => {
    expect(cutAfterSent(status.UNAVAILABLE, 'Connection dropped')).toBe(true);
    expect(
      cutAfterSent(status.INTERNAL, 'Received RST_STREAM with code 2 triggered by internal client error'),
    ).toBe(true);
    expect(cutAfterSent(status.CANCELLED, 'Call cancelled')).toBe(true);
    // A stream of a connection that was reset or timed out under it (an instance killed mid-call).
    expect(cutAfterSent(status.UNAVAILABLE, 'read ECONNRESET')).toBe(true);
    expect(cutAfterSent(status.UNAVAILABLE, 'write ETIMEDOUT')).toBe(true);
    // A connection never made: nothing was sent.
    expect(cutAfterSent(status.UNAVAILABLE, 'No connection established. Last error: read ECONNRESET')).toBe(
      false,
    );
    expect(cutAfterSent(status.UNAVAILABLE, 'Stream refused by server')).toBe(false);
    expect(
      cutAfterSent(status.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED'),
    ).toBe(false);
    // The service's own UNAVAILABLE (its database down) says it did not write.
    expect(cutAfterSent(status.UNAVAILABLE, 'Service unavailable: database unreachable')).toBe(false);
  });
});
