import { describe, expect, it } from 'vitest';
import {
  isValidRequestId,
  isValidTraceparent,
  isValidTracestate,
  requestIdFrom,
  runInCallContext,
} from '../../src/common/request-context.js';
import { captureLog } from '../helpers/log-capture.js';

describe('request ids', () => {
  it.each(['a', 'req-1', 'A.b:c_d-E', 'x'.repeat(128), '0af7651916cd43dd8448eb211c80319c'])(
    'keeps %s',
    (id) => {
      expect(isValidRequestId(id)).toBe(true);
      expect(requestIdFrom(id)).toBe(id);
    },
  );

  it.each([
    ['empty', ''],
    ['129 characters', 'x'.repeat(129)],
    ['a space', 'a b'],
    ['a newline', 'a\nb'],
    ['a slash', 'a/b'],
    ['a quote', 'a"b'],
    ['non-ASCII', 'é'],
  ])('replaces one with %s', (_label, id) => {
    expect(isValidRequestId(id)).toBe(false);
    expect(requestIdFrom(id)).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('replaces a header sent twice (Node hands it over as a list or joined with a comma and space)', () => {
    expect(requestIdFrom(['a', 'b'])).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestIdFrom('a, b')).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestIdFrom(undefined)).not.toBe(requestIdFrom(undefined));
  });
});

describe('W3C trace context', () => {
  const valid = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('accepts a version 00 traceparent, and a later version with more fields', () => {
    expect(isValidTraceparent(valid)).toBe(true);
    expect(isValidTraceparent(`01${valid.slice(2)}-more`)).toBe(true);
  });

  it.each([
    ['version ff', `ff${valid.slice(2)}`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    ['an all-zero parent id', `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`],
    ['upper case', valid.toUpperCase()],
    ['extra fields on version 00', `${valid}-extra`],
    ['a short trace id', '00-4bf92f35-00f067aa0ba902b7-01'],
  ])('refuses one with %s', (_label, value) => {
    expect(isValidTraceparent(value)).toBe(false);
  });

  it('passes on a printable tracestate of at most 512 characters', () => {
    expect(isValidTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')).toBe(true);
    expect(isValidTracestate('a'.repeat(513))).toBe(false);
    expect(isValidTracestate('a=\u0001')).toBe(false);
  });
});

describe('the call context in log lines', () => {
  it('adds requestId to lines written inside a call, and nothing to lines outside one', async () => {
    const { log, lines } = captureLog('goods', 'info');
    log.info({ event: 'before' }, 'outside');
    await runInCallContext({ requestId: 'r-1', method: 'ListGoods' }, async () => {
      await Promise.resolve();
      log.info('inside, after an await');
      setImmediate(() => log.info({ event: 'later' }, 'inside, in a callback started by the call'));
      await new Promise((resolve) => setImmediate(resolve));
    });
    log.info('outside again');
    expect(lines.map((line) => [line.msg, line.requestId, line.event])).toEqual([
      ['outside', undefined, 'before'],
      ['inside, after an await', 'r-1', undefined],
      ['inside, in a callback started by the call', 'r-1', 'later'],
      // Fields of earlier lines never stick to later ones.
      ['outside again', undefined, undefined],
    ]);
  });
});
