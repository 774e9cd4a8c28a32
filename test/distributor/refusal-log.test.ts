import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/common/service-error.js';
import { RefusalLog } from '../../src/distributor/refusal-log.js';
import { captureLog } from '../helpers/log-capture.js';

describe('RefusalLog', () => {
  it('warns of a kind of refusal from a peer once per interval, and at debug in between', () => {
    const { log, lines } = captureLog('distributor');
    let now = 0;
    const refusals = new RefusalLog(log, 16, { intervalMs: 1000, now: () => now });
    const missing = new ServiceError(status.UNAUTHENTICATED, 'missing credentials');
    const wrong = new ServiceError(status.UNAUTHENTICATED, 'invalid credentials');
    refusals.refused('10.0.0.66', missing);
    now = 500;
    refusals.refused('10.0.0.66', wrong);
    refusals.refused('10.0.0.67', wrong);
    // Long after the first: the peer that came back (with a guessed token, say) is told again.
    now = 5000;
    refusals.refused('10.0.0.66', wrong);
    expect(lines.map((line) => [line.level, line.peer, line.msg])).toEqual([
      [40, '10.0.0.66', 'missing credentials (refusals of this kind from 10.0.0.66 are now logged at debug)'],
      [20, '10.0.0.66', 'invalid credentials'],
      [40, '10.0.0.67', 'invalid credentials (refusals of this kind from 10.0.0.67 are now logged at debug)'],
      [40, '10.0.0.66', 'invalid credentials (refusals of this kind from 10.0.0.66 are now logged at debug)'],
    ]);
  });
});
