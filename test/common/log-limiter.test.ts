import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { detailsCause, errorCause, LogLimiter, limiterOf } from '../../src/common/log-limiter.js';
import { capturingLogger } from '../distributor/support/capturing-logger.js';

describe('LogLimiter', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('writes the first line of a cause whole, then one line per interval with the count left out', () => {
    const { log, lines } = capturingLogger();
    const limiter = new LogLimiter(log, { intervalMs: 1_000 });
    const failure = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    for (let count = 0; count < 500; count++) {
      limiter.error(
        'ListGoods 14 ECONNREFUSED',
        { err: failure, method: 'ListGoods', requestId: `r-${count}`, key: count },
        'Database unavailable',
      );
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 50,
      method: 'ListGoods',
      requestId: 'r-0',
      key: 0,
      msg: 'Database unavailable',
    });
    expect((lines[0]!.err as { stack: string }).stack).toContain('ECONNREFUSED');

    vi.advanceTimersByTime(1_000);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      level: 50,
      method: 'ListGoods',
      repeated: 499,
      msg: 'Database unavailable (repeated 499 times in 1 s)',
    });
    expect(lines[1]!.err).toBeUndefined();
    // The summary is about 499 requests: it names none of them as its own, by id or by the gateway's key.
    expect(lines[1]).not.toHaveProperty('requestId');
    expect(lines[1]).not.toHaveProperty('key');
    // But it says which requests it left out, so that an operator can follow them: the first ten
    // (bounded, as it may stand for thousands) and the last.
    expect(lines[1]!.requestIds).toEqual(Array.from({ length: 10 }, (_, index) => `r-${index + 1}`));
    expect(lines[1]!.lastRequestId).toBe('r-499');

    // Still failing: one summary per interval; then quiet; then the next line goes through at once.
    for (let count = 0; count < 30; count++)
      limiter.error('ListGoods 14 ECONNREFUSED', {}, 'Database unavailable');
    vi.advanceTimersByTime(1_000);
    expect(lines.map((line) => line.repeated)).toEqual([undefined, 499, 30]);
    // Lines without an id name none; each interval names its own.
    expect(lines[2]).not.toHaveProperty('requestIds');
    expect(lines[2]).not.toHaveProperty('lastRequestId');
    vi.advanceTimersByTime(5_000);
    expect(lines).toHaveLength(3);
    limiter.error('ListGoods 14 ECONNREFUSED', { method: 'ListGoods' }, 'Database unavailable');
    expect(lines).toHaveLength(4);
  });

  it('limits each cause on its own, forgets the oldest past maxCauses, and flushes', () => {
    const { log, lines } = capturingLogger();
    const limiter = new LogLimiter(log, { intervalMs: 1_000, maxCauses: 2 });
    for (const cause of ['a', 'b', 'a', 'b', 'a']) limiter.warn(cause, { cause }, `failed: ${cause}`);
    expect(lines.map((line) => line.msg)).toEqual(['failed: a', 'failed: b']);
    limiter.warn('c', { cause: 'c' }, 'failed: c');
    expect(lines.map((line) => line.msg)).toEqual([
      'failed: a',
      'failed: b',
      'failed: a (repeated 2 times in 1 s)',
      'failed: c',
    ]);
    limiter.flush();
    expect(lines.at(-1)!.msg).toBe('failed: b (repeated 1 times in 1 s)');
  });

  it('names every request id left out when there are few, and no last one apart', () => {
    const { log, lines } = capturingLogger();
    const limiter = new LogLimiter(log, { intervalMs: 1_000 });
    for (const requestId of ['a', 'b', 'c']) limiter.warn('cause', { requestId }, 'failed');
    limiter.warn('cause', {}, 'failed');
    limiter.flush();
    expect(lines[1]).toMatchObject({ repeated: 3, requestIds: ['b', 'c'] });
    expect(lines[1]).not.toHaveProperty('lastRequestId');
  });

  it('counts nothing below the logger level, and is one per logger', () => {
    const { log, lines } = capturingLogger();
    log.level = 'error';
    limiterOf(log).info('up', {}, 'up');
    expect(lines).toEqual([]);
    expect(limiterOf(log)).toBe(limiterOf(log));
  });

  it('names a cause by its code, else by its class and message', () => {
    expect(errorCause(Object.assign(new Error('x'), { code: 'ER_LOCK_DEADLOCK' }))).toBe('ER_LOCK_DEADLOCK');
    expect(errorCause(new TypeError('bad thing'))).toBe('TypeError: bad thing');
    expect(errorCause('text')).toBe('string: text');
  });
});

describe('detailsCause', () => {
  it('leaves out what grpc-js writes into its details from one call to the next, and keeps what tells causes apart', () => {
    const deadlines = [
      'Deadline exceeded after 5.001s,LB pick: 0.001s,remote_addr=127.0.0.1:36513',
      'Deadline exceeded after 4.999s,time to current attempt start: 0.001s,remote_addr=127.0.0.1:40001',
      // The server's own deadline timer, when its status reaches the client before the client's fires.
      'Deadline exceeded',
    ];
    expect(new Set(deadlines.map(detailsCause)).size).toBe(1);
    const refused = [
      'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:9000 (2026-12-04T02:22:01.123Z)',
      'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:9000 (2026-12-04T02:22:03.456Z)',
    ];
    expect(new Set(refused.map(detailsCause)).size).toBe(1);
    // Same status code, another reason: a new cause, said at once.
    expect(detailsCause(refused[0])).not.toBe(detailsCause('the distributor is shutting down'));
    expect(detailsCause(undefined)).toBe('');
  });
});
