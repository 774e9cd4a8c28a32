import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { retryClassOf } from '../../src/common/retry-policy.js';

describe('retryClassOf', () => {
  it('gives up on what only a person can fix, retries with a warning what may clear, quietly the rest', () => {
    const classes = Object.fromEntries(
      Object.values(status)
        .filter((code): code is status => typeof code === 'number')
        .map((code) => [status[code], retryClassOf(code)]),
    );
    expect(classes).toEqual({
      OK: 'transient',
      CANCELLED: 'transient',
      UNKNOWN: 'transient',
      INVALID_ARGUMENT: 'permanent',
      DEADLINE_EXCEEDED: 'transient',
      NOT_FOUND: 'refused',
      ALREADY_EXISTS: 'refused',
      PERMISSION_DENIED: 'permanent',
      RESOURCE_EXHAUSTED: 'refused',
      FAILED_PRECONDITION: 'refused',
      ABORTED: 'transient',
      OUT_OF_RANGE: 'refused',
      UNIMPLEMENTED: 'permanent',
      INTERNAL: 'transient',
      UNAVAILABLE: 'transient',
      DATA_LOSS: 'transient',
      UNAUTHENTICATED: 'permanent',
    });
  });
});
