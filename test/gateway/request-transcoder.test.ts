import { fromBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { compileRequestTranscoder, InvalidParameterError } from '../../src/gateway/request-transcoder.js';
import { kitchenFile, registryOf } from './support/descriptors.js';

const registry = registryOf(kitchenFile());
const Everything = registry.getMessage('test.kitchen.v1.Everything')!;
const transcoder = compileRequestTranscoder(Everything);

/** Transcodes JSON and decodes the result, as the service would see it. */
function fromJson(object: Record<string, unknown>): Record<string, unknown> {
  return fromBinary(Everything, transcoder.fromJson(object)) as unknown as Record<string, unknown>;
}

function fromQuery(query: string): Record<string, unknown> {
  return fromBinary(Everything, transcoder.fromText(new URLSearchParams(query))) as unknown as Record<
    string,
    unknown
  >;
}

function rejectsJson(object: Record<string, unknown>): void {
  expect(
    () => transcoder.fromJson(object),
    JSON.stringify(object, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)),
  ).toThrow(InvalidParameterError);
}

describe('compileRequestTranscoder: 32-bit integers', () => {
  it('takes JSON integers and decimal integer strings within range', () => {
    expect(fromJson({ f_int32: 1000 }).fInt32).toBe(1000);
    expect(fromJson({ f_int32: '1000' }).fInt32).toBe(1000);
    expect(fromJson({ f_int32: '-2147483648' }).fInt32).toBe(-2147483648);
    expect(fromJson({ f_int32: 2147483647 }).fInt32).toBe(2147483647);
    expect(fromJson({ f_int32: '007' }).fInt32).toBe(7);
    expect(fromJson({ f_int32: 1.0 }).fInt32).toBe(1);
    expect(fromJson({ f_uint32: '4294967295' }).fUint32).toBe(4294967295);
    expect(fromJson({ f_sint32: -5 }).fSint32).toBe(-5);
    expect(fromJson({ f_fixed32: 4000000000 }).fFixed32).toBe(4000000000);
    expect(fromJson({ f_sfixed32: '-9' }).fSfixed32).toBe(-9);
    expect(fromQuery('f_int32=1000').fInt32).toBe(1000);
  });

  it('refuses anything else, never a silent 0 or a truncation', () => {
    for (const value of [
      'abc',
      '1.9',
      '',
      ' 1',
      '1 ',
      '+1',
      '1e3',
      '0x10',
      1.5,
      2 ** 31,
      -(2 ** 31) - 1,
      true,
      {},
      [],
      [1],
    ]) {
      rejectsJson({ f_int32: value });
    }
    for (const value of [-1, '-1', 2 ** 32, '4294967296']) rejectsJson({ f_uint32: value });
    for (const value of [-1, 2 ** 32]) rejectsJson({ f_fixed32: value });
    for (const value of [2 ** 31]) rejectsJson({ f_sint32: value });
    expect(() => transcoder.fromText(new URLSearchParams('f_int32=abc'))).toThrow(InvalidParameterError);
    expect(() => transcoder.fromText(new URLSearchParams('f_int32='))).toThrow(InvalidParameterError);
  });
});

describe('compileRequestTranscoder: 64-bit integers', () => {
  it('takes exact integers: numbers up to 2^53, strings up to the type range', () => {
    expect(fromJson({ f_int64: 9007199254740991 }).fInt64).toBe(9007199254740991n);
    expect(fromJson({ f_int64: '-9223372036854775808' }).fInt64).toBe(-9223372036854775808n);
    expect(fromJson({ f_int64: '9223372036854775807' }).fInt64).toBe(9223372036854775807n);
    expect(fromJson({ f_uint64: '18446744073709551615' }).fUint64).toBe(18446744073709551615n);
    expect(fromJson({ f_sint64: '-3' }).fSint64).toBe(-3n);
    expect(fromJson({ f_fixed64: 9 }).fFixed64).toBe(9n);
    expect(fromJson({ f_sfixed64: '-10' }).fSfixed64).toBe(-10n);
    expect(fromJson({ f_int64: '000000000000000000000000000042' }).fInt64).toBe(42n);
  });

  it('refuses rounded numbers, out-of-range values and non-integers', () => {
    for (const value of [
      2 ** 53,
      1.5,
      '1.5',
      'abc',
      '',
      '9223372036854775808',
      '-9223372036854775809',
      true,
      '1'.repeat(400),
    ]) {
      rejectsJson({ f_int64: value });
    }
    for (const value of ['-1', -1, '18446744073709551616']) rejectsJson({ f_uint64: value });
  });
});

describe('compileRequestTranscoder: other scalars', () => {
  it('takes finite numbers and numeric strings for float and double', () => {
    expect(fromJson({ f_double: 2.5 }).fDouble).toBe(2.5);
    expect(fromJson({ f_double: '-1e-3' }).fDouble).toBe(-0.001);
    expect(fromJson({ f_double: '.5' }).fDouble).toBe(0.5);
    expect(fromJson({ f_float: '1.5' }).fFloat).toBe(1.5);
    for (const value of ['abc', '', 'NaN', 'Infinity', '1e400', true, {}, '0x1'])
      rejectsJson({ f_double: value });
    rejectsJson({ f_float: 1e39 });
  });

  it('takes true, false, "true" and "false" for a bool', () => {
    expect(fromJson({ f_bool: true }).fBool).toBe(true);
    expect(fromJson({ f_bool: 'false' }).fBool).toBe(false);
    expect(fromQuery('f_bool=true').fBool).toBe(true);
    for (const value of [1, 0, '1', 'yes', 'True', '']) rejectsJson({ f_bool: value });
  });

  it('takes only strings for a string field', () => {
    expect(fromJson({ f_string: 'é😀' }).fString).toBe('é😀');
    expect(fromJson({ f_string: '' }).fString).toBe('');
    for (const value of [1234, true, {}, ['a']]) rejectsJson({ f_string: value });
  });

  it('takes standard and URL-safe base64 for bytes', () => {
    expect([...(fromJson({ f_bytes: 'AAH+/w==' }).fBytes as Uint8Array)]).toEqual([0, 1, 254, 255]);
    expect([...(fromJson({ f_bytes: 'AAH-_w' }).fBytes as Uint8Array)]).toEqual([0, 1, 254, 255]);
    for (const value of ['A', 'AAH+/w=', 'not base64!', 12]) rejectsJson({ f_bytes: value });
  });

  it('takes an enum value by name or by a number the enum defines', () => {
    expect(fromJson({ f_enum: 'COLOR_BLUE' }).fEnum).toBe(2);
    expect(fromJson({ f_enum: 1 }).fEnum).toBe(1);
    expect(fromQuery('f_enum=2').fEnum).toBe(2);
    for (const value of ['COLOR_GREEN', 'color_blue', 7, '7', 1.5, true]) rejectsJson({ f_enum: value });
  });
});

describe('compileRequestTranscoder: names, structure, unknown parameters', () => {
  it('matches a field by its proto name or its JSON name and ignores unknown parameters', () => {
    expect(fromJson({ fInt32: 3, passwordConfirm: 'x', other: { deep: [1] } }).fInt32).toBe(3);
    expect(fromQuery('fString=a&passwordConfirm=b').fString).toBe('a');
  });

  it('encodes nothing at all when no known field is given', () => {
    expect(transcoder.fromJson({ unknown: 1 }).length).toBe(0);
    expect(transcoder.fromText(new URLSearchParams('')).length).toBe(0);
  });

  it('leaves a field unset for JSON null', () => {
    const decoded = fromJson({ o_int32: null, f_nested: null });
    expect(decoded.oInt32).toBeUndefined();
    expect(decoded.fNested).toBeUndefined();
  });

  it('keeps explicit presence: an optional field given as 0 is set', () => {
    expect(fromJson({ o_int32: 0 }).oInt32).toBe(0);
  });

  it('refuses a field given twice, under both names or twice in a query', () => {
    rejectsJson({ f_int32: 1, fInt32: 2 });
    expect(() => transcoder.fromText(new URLSearchParams('f_int32=1&f_int32=2'))).toThrow(
      InvalidParameterError,
    );
    expect(() => transcoder.fromText(new URLSearchParams('f_int32=1&fInt32=1'))).toThrow(
      InvalidParameterError,
    );
  });

  it('refuses two members of one oneof', () => {
    expect(fromJson({ choice_text: 't' }).choice).toEqual({ case: 'choiceText', value: 't' });
    rejectsJson({ choice_text: 't', choice_number: 1 });
  });

  it('takes repeated fields as JSON arrays or repeated query keys', () => {
    expect(fromJson({ r_int32: [1, '2', -3] }).rInt32).toEqual([1, 2, -3]);
    expect(fromJson({ r_string: [] }).rString).toEqual([]);
    expect(fromQuery('r_int32=1&r_int32=2&rInt32=3').rInt32).toEqual([1, 2, 3]);
    expect(fromQuery('r_string=only').rString).toEqual(['only']);
    expect(fromQuery('r_enum=COLOR_RED&r_enum=2').rEnum).toEqual([1, 2]);
    for (const value of [1, '1', [1, 'x'], [null], { 0: 1 }]) rejectsJson({ r_int32: value });
  });

  it('takes nested messages as JSON objects, converted by the same rules', () => {
    const decoded = fromJson({ f_nested: { a: '5', b: 'x', unknown: 1 }, r_nested: [{ a: 1 }, {}] });
    expect(decoded.fNested).toMatchObject({ a: 5, b: 'x' });
    expect((decoded.rNested as unknown[]).length).toBe(2);
    expect(fromJson({ self: { self: { f_int32: 3 } } }).self).toMatchObject({ self: { fInt32: 3 } });
    for (const value of ['x', 1, [], { a: 'abc' }]) rejectsJson({ f_nested: value });
    expect(() => transcoder.fromText(new URLSearchParams('f_nested=1'))).toThrow(InvalidParameterError);
    expect(() => transcoder.fromText(new URLSearchParams('r_nested=1'))).toThrow(InvalidParameterError);
  });

  it('refuses nesting deeper than 32 levels', () => {
    let deep: Record<string, unknown> = { f_int32: 1 };
    for (let level = 0; level < 40; level++) deep = { self: deep };
    rejectsJson(deep);
  });

  it('takes maps as JSON objects, converting keys by the key type', () => {
    const decoded = fromJson({ m_string_int32: { a: 1, b: '2' }, m_int64_nested: { '-7': { a: 1 } } });
    expect(decoded.mStringInt32).toEqual({ a: 1, b: 2 });
    expect(Object.keys(decoded.mInt64Nested as object)).toEqual(['-7']);
    for (const value of [[1], 'x', { a: 'x' }, { a: null }]) rejectsJson({ m_string_int32: value });
    rejectsJson({ m_int64_nested: { x: {} } });
    expect(() => transcoder.fromText(new URLSearchParams('m_string_int32=1'))).toThrow(InvalidParameterError);
  });
});

describe('compileRequestTranscoder: well-known types', () => {
  it('takes an RFC 3339 string for a Timestamp, from JSON and from a query', () => {
    expect(fromJson({ when: '2020-11-04T15:31:47.123Z' }).when).toMatchObject({
      seconds: 1604503907n,
      nanos: 123000000,
    });
    expect(fromJson({ when: '2020-11-05T00:31:47.000000001+09:00' }).when).toMatchObject({
      seconds: 1604503907n,
      nanos: 1,
    });
    expect(fromQuery('when=0001-01-01T00:00:00Z').when).toMatchObject({ seconds: -62135596800n });
    expect(fromJson({ when: { seconds: '5', nanos: 6 } }).when).toMatchObject({ seconds: 5n, nanos: 6 });
    for (const value of [
      '2020-02-30T00:00:00Z',
      '2020-11-04',
      '2020-11-04T25:00:00Z',
      'yesterday',
      1604503907,
    ]) {
      rejectsJson({ when: value });
    }
  });

  it('takes "1.5s" for a Duration and the bare value for a wrapper', () => {
    expect(fromJson({ how_long: '-1.5s' }).howLong).toMatchObject({ seconds: -1n, nanos: -500000000 });
    expect(fromJson({ maybe_int32: '7' }).maybeInt32).toBe(7);
    expect(fromQuery('maybe_int32=0').maybeInt32).toBe(0);
    for (const value of ['1.5', '1.5 s', 's']) rejectsJson({ how_long: value });
    rejectsJson({ maybe_int32: 'x' });
  });
});
