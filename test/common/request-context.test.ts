import { Metadata } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  attachCallContext,
  callContextOf,
  isValidRequestId,
  isValidTraceparent,
  requestIdFrom,
  requestLogFields,
  traceCarrierFrom,
  traceParentOf,
  traceparentToPass,
  tracestateToPass,
} from '../../src/common/request-context.js';
import { RequestIdGenerator } from '../../src/common/request-id-generator.js';
import type { TraceSpan } from '../../src/common/trace-span.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request ids', () => {
  const ids = new RequestIdGenerator();

  it.each(['a', 'req-1', 'A.b:c_d-E', 'x'.repeat(128), '0af7651916cd43dd8448eb211c80319c'])(
    'keeps %s',
    (id) => {
      expect(isValidRequestId(id)).toBe(true);
      expect(requestIdFrom(id, ids)).toBe(id);
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
    expect(requestIdFrom(id, ids)).toMatch(UUID_V4);
  });

  it('replaces a header sent twice (Node hands it over as a list or joined with a comma and space)', () => {
    expect(requestIdFrom(['a', 'b'], ids)).toMatch(UUID_V4);
    expect(requestIdFrom('a, b', ids)).toMatch(UUID_V4);
    expect(requestIdFrom(undefined, ids)).not.toBe(requestIdFrom(undefined, ids));
  });

  it('makes version 4 UUIDs, all different, past the first draw of random bytes', () => {
    const made = Array.from({ length: 1_000 }, () => ids.next());
    for (const id of made) expect(id).toMatch(UUID_V4);
    expect(new Set(made).size).toBe(made.length);
  });

  it('spreads each random digit evenly over its 16 values', () => {
    // 32,000 ids: each of the 30 random digits (the version digit is fixed, the variant digit has 4
    // values) takes each value about 2,000 times; a stuck or biased digit would be far outside.
    const counts = Array.from({ length: 36 }, () => new Map<string, number>());
    for (let index = 0; index < 32_000; index++) {
      const id = ids.next();
      for (let at = 0; at < 36; at++) {
        const digit = id[at]!;
        counts[at]!.set(digit, (counts[at]!.get(digit) ?? 0) + 1);
      }
    }
    for (const at of [0, 7, 9, 12, 15, 17, 20, 22, 24, 35]) {
      expect(counts[at]!.size).toBe(16);
      for (const count of counts[at]!.values()) expect(count).toBeGreaterThan(1_700);
    }
    expect([...counts[14]!.keys()]).toEqual(['4']);
    expect([...counts[19]!.keys()].sort()).toEqual(['8', '9', 'a', 'b']);
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
    // grpc-js refuses metadata values outside printable ASCII: passed on, it threw in the gateway.
    ['a later version whose extra fields are not ASCII', `01${valid.slice(2)}-\u00e9`],
    ['a later version whose extra fields hold a control character', `01${valid.slice(2)}-a\u0001`],
  ])('refuses one with %s', (_label, value) => {
    expect(isValidTraceparent(value)).toBe(false);
  });

  it('refuses a later version joined with a second traceparent, as HTTP joins a header sent twice', () => {
    expect(isValidTraceparent(`01${valid.slice(2)}-x, ${valid}`)).toBe(false);
  });

  it.each([
    ['two members', 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'],
    ['spaces around the commas, and empty members', ' a=1 ,, b=2 ,', 'a=1,b=2'],
    // W3C's test suite (test_tracestate_ows_handling): tabs are whitespace too.
    ['spaces and tabs around the commas', 'foo=1 \t , \t bar=2, \t baz=3', 'foo=1,bar=2,baz=3'],
    ['a tenant@system key', 'tenant-1@vendor=x', 'tenant-1@vendor=x'],
    ['keys with _ - * /', 'a_b-c*d/e=1', 'a_b-c*d/e=1'],
    ['a space inside a value', 'a=b c', 'a=b c'],
    [
      '32 members',
      Array.from({ length: 32 }, (_, index) => `k${index}=v`).join(', '),
      Array.from({ length: 32 }, (_, index) => `k${index}=v`).join(','),
    ],
  ])('passes on a tracestate of %s, its members joined by commas alone', (_label, value, passed) => {
    expect(tracestateToPass(value)).toBe(passed);
  });

  it('takes the spaces around a member off in time linear in their number', () => {
    // A regex's trailing-space branch, tried at every space of the run, took 2 s on this.
    const started = performance.now();
    expect(tracestateToPass(`a=1${' '.repeat(60_000)}x, b=2`)).toBeUndefined();
    expect(tracestateToPass(`a=1${' \t'.repeat(30_000)}, b=2`)).toBe('a=1,b=2');
    expect(performance.now() - started).toBeLessThan(500);
  });

  it.each([
    ['no key=value', '!!! not, a=tracestate ==='],
    ['an upper-case key', 'Congo=1'],
    ['"=" in a value', 'a=b=c'],
    ['an empty value', 'a='],
    ['a key twice', 'a=1,a=2'],
    ['33 members', Array.from({ length: 33 }, (_, index) => `k${index}=v`).join(',')],
    ['only empty members', ' , ,'],
    ['a value over 256 characters', `a=${'b'.repeat(257)}`],
    ['a control character', 'a=\u0001'],
  ])('drops a tracestate with %s', (_label, value) => {
    expect(tracestateToPass(value)).toBeUndefined();
  });

  it('cuts a tracestate over 512 characters as W3C says: members over 128 characters first, the last first, then from the end', () => {
    const member = (key: string, length: number) => `${key}=${'v'.repeat(length - key.length - 1)}`;
    // 4 members of 100 and 2 of 200: 803 characters with the commas.
    const short = ['a', 'b', 'c', 'd'].map((key) => member(key, 100));
    const long = ['l1', 'l2'].map((key) => member(key, 200));
    const value = [short[0], long[0], short[1], short[2], long[1], short[3]].join(' , ');
    // Without the last long member: 602; without both: 403.
    expect(tracestateToPass(value)).toBe(short.join(','));
    // Short members alone past 512: the last ones go.
    const many = Array.from({ length: 8 }, (_, index) => member(`k${index}`, 100));
    expect(tracestateToPass(many.join(','))).toBe(many.slice(0, 5).join(','));
    // Exactly 512 is kept whole; one long member that alone brings it under 512 is the only one cut.
    const exact = [member('a', 255), member('b', 256)];
    expect(tracestateToPass(exact.join(','))).toBe(exact.join(','));
    expect(tracestateToPass([member('a', 255), member('b', 256), 'c=1'].join(','))).toBe(
      [member('a', 255), 'c=1'].join(','),
    );
  });

  it('passes a version 00 traceparent with flags 00 or 01 on as it came, any other as version 00 with the sampled flag', () => {
    expect(traceparentToPass(valid)).toBe(valid);
    const unsampled = `${valid.slice(0, 53)}00`;
    expect(traceparentToPass(unsampled)).toBe(unsampled);
    expect(traceparentToPass(`${valid.slice(0, 53)}ff`)).toBe(valid);
    expect(traceparentToPass(`${valid.slice(0, 53)}fe`)).toBe(unsampled);
    expect(traceparentToPass(`01${valid.slice(2)}-more`)).toBe(valid);
  });

  it('reads a carrier from metadata values: a traceparent sent twice is none, tracestates are one list', () => {
    expect(traceCarrierFrom([valid], ['a=1', 'b=2'])).toEqual({ traceparent: valid, tracestate: 'a=1,b=2' });
    expect(traceCarrierFrom([valid], ['a=1'])).toEqual({ traceparent: valid, tracestate: 'a=1' });
    expect(traceCarrierFrom([valid, valid], [])).toBeUndefined();
    expect(traceCarrierFrom([], ['a=1'])).toBeUndefined();
    expect(traceCarrierFrom(valid, 'Bad')).toEqual({ traceparent: valid });
    expect(traceCarrierFrom(undefined, undefined)).toBeUndefined();
  });
});

describe('the call context', () => {
  it("is found by the call's metadata object, and names its request in log fields", () => {
    const metadata = new Metadata();
    const other = new Metadata();
    attachCallContext(metadata, { requestId: 'r-1', method: 'ListGoods' });
    attachCallContext(other, { requestId: undefined, method: 'ListGoods' });
    expect(callContextOf(metadata)).toEqual({ requestId: 'r-1', method: 'ListGoods' });
    expect(requestLogFields(metadata)).toEqual({ requestId: 'r-1' });
    // Ids off, or a server that keeps no context: nothing is added to a line.
    expect(requestLogFields(other)).toEqual({});
    expect(requestLogFields(new Metadata())).toEqual({});
  });

  it("hands a store the call's span only when its trace is sampled", () => {
    const span = (sampled: boolean): TraceSpan => ({
      setName() {},
      setAttribute() {},
      fail() {},
      end() {},
      carrier: () => ({}),
      isSampled: () => sampled,
    });
    const sampled = span(true);
    const traced = new Metadata();
    const unsampled = new Metadata();
    attachCallContext(traced, { requestId: 'r-2', method: 'ListGoods', span: sampled });
    attachCallContext(unsampled, { requestId: 'r-3', method: 'ListGoods', span: span(false) });
    expect(traceParentOf(traced)).toBe(sampled);
    // Below an unsampled span nothing is made: the store is given no parent at all.
    expect(traceParentOf(unsampled)).toBeUndefined();
    expect(traceParentOf(new Metadata())).toBeUndefined();
  });
});
