import { create, createFileRegistry, fromBinary, type JsonObject } from '@bufbuild/protobuf';
import {
  type Any,
  anyUnpack,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_field_mask,
  file_google_protobuf_timestamp,
} from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { readHttpRoutes, registryOfDescriptorSet } from '../../src/common/http-routes.js';
import { anyTypesOf } from '../../src/gateway/any-types.js';
import { gatewayErrors } from '../../src/gateway/gateway-error.js';
import { fieldMaskOfBody } from '../../src/gateway/patch-field-mask.js';
import {
  compileRequestDecoder,
  InvalidParameterError,
  type RequestDecoder,
} from '../../src/gateway/request-decoder.js';
import { NO_INPUT } from '../../src/gateway/request-input.js';
import {
  anythingFile,
  descriptorSetOf,
  field,
  httpOptions,
  kitchenFile,
  mapEntry,
  message,
  registryOf,
  Type,
} from './support/descriptors.js';

const registry = registryOf(kitchenFile());
const Everything = registry.getMessage('test.kitchen.v1.Everything')!;
const [post, get, patch] = readHttpRoutes(registry).routes;
/** POST /kitchen, body "*": the JSON or form body is the message. */
const fromBody = compileRequestDecoder(post!);
/** GET /kitchen: the query string is the message. */
const fromQueryString = compileRequestDecoder(get!);

const transcoder = {
  fromJson: (object: Record<string, unknown>) =>
    fromBody({ pathValues: [], query: '', body: { kind: 'json', object } }),
  fromText: (params: URLSearchParams) =>
    fromQueryString({ pathValues: [], query: params.toString(), body: NO_INPUT }),
};

/** Decodes a JSON body and parses the result, as the service would see it. */
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

function rejectsQuery(query: string): void {
  expect(() => transcoder.fromText(new URLSearchParams(query)), query).toThrow(InvalidParameterError);
}

describe('compileRequestDecoder: 32-bit integers', () => {
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
    for (const value of ['abc', '1.9', '', ' 1', '1 ', 1.5, 2 ** 31, -(2 ** 31) - 1, true, {}, [], [1]]) {
      rejectsJson({ f_int32: value });
    }
    for (const value of [-1, '-1', 2 ** 32, '4294967296']) rejectsJson({ f_uint32: value });
    for (const value of [-1, 2 ** 32]) rejectsJson({ f_fixed32: value });
    for (const value of [2 ** 31]) rejectsJson({ f_sint32: value });
    for (const text of ['abc', '', '1.9', '+1', '1e3', '0x10', ' 1', '2147483648'])
      rejectsQuery(`f_int32=${text}`);
  });

  it('reads numeric strings in a JSON body as proto3 JSON does: decimal, an exponent allowed (a query string takes digits only)', () => {
    expect(fromJson({ f_int32: '1e3' }).fInt32).toBe(1000);
    expect(fromJson({ f_int32: '1.0' }).fInt32).toBe(1);
    expect(fromJson({ f_int32: '-12' }).fInt32).toBe(-12);
    // Number() would take each of these: hexadecimal, binary and octal, a sign, a bare point, spaces.
    const notDecimal = ['0x10', '0b101', '0o17', '+5', '5.', '\t5', '5\n', 'Infinity'];
    for (const value of notDecimal) {
      rejectsJson({ f_int32: value });
      rejectsJson({ f_uint64: value });
      rejectsJson({ r_int32: ['1', value] });
      rejectsJson({ m_string_int32: { a: value } });
      rejectsJson({ maybe_int32: value });
    }
    for (const value of ['0x1', '+1.5', ' 2', '0b1']) rejectsJson({ f_double: value });
  });

  it("reads an integer string's digits, not the double they round to: a fraction anywhere is refused", () => {
    expect(fromJson({ f_int32: '250e-1' }).fInt32).toBe(25);
    expect(fromJson({ f_int32: '1.500e3' }).fInt32).toBe(1500);
    expect(fromJson({ f_int32: '0.0' }).fInt32).toBe(0);
    // Number() makes each of these a whole double.
    for (const value of ['2.0000000000000001', '4.9999999999999999', '15e-1', '1.0000000000000000001e3']) {
      rejectsJson({ f_int32: value });
      rejectsJson({ f_uint64: value });
      rejectsJson({ r_int32: [value] });
    }
  });
});

describe('compileRequestDecoder: 64-bit integers', () => {
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

  it('refuses out-of-range values and non-integers', () => {
    for (const value of [
      1e20,
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

  it('refuses a JSON number of 2^53 or more, which JSON.parse may have rounded, and takes its string', () => {
    // "9007199254740993" as a JSON number reads as 2^53: nothing after parsing can tell them apart.
    const parsed = JSON.parse('{"f_int64": 9007199254740993}') as Record<string, unknown>;
    expect(parsed.f_int64).toBe(2 ** 53);
    rejectsJson(parsed);
    for (const value of [2 ** 53, -(2 ** 53), 2 ** 60]) rejectsJson({ f_int64: value });
    for (const field of ['f_uint64', 'f_sint64', 'f_fixed64', 'f_sfixed64'])
      rejectsJson({ [field]: 2 ** 53 });
    expect(fromJson({ f_int64: '9007199254740993' }).fInt64).toBe(9007199254740993n);
    expect(fromJson({ f_int64: -(2 ** 53 - 1) }).fInt64).toBe(-9007199254740991n);
  });

  it('takes a 64-bit string with a fraction of zeros or an exponent, as a 32-bit one (proto3 JSON allows both)', () => {
    // The parser reads 64-bit strings with BigInt: "1e3" was out of range, where f_int32 took it.
    expect(fromJson({ f_int32: '1e3' }).fInt32).toBe(1000);
    expect(fromJson({ f_int64: '1e3' }).fInt64).toBe(1000n);
    expect(fromJson({ f_int64: '-1.5e1' }).fInt64).toBe(-15n);
    expect(fromJson({ f_int64: '9223372036854775807.000' }).fInt64).toBe(9223372036854775807n);
    expect(fromJson({ f_sint64: '-0.0' }).fSint64).toBe(0n);
    expect(fromJson({ f_fixed64: '00012e2' }).fFixed64).toBe(1200n);
    expect(fromJson({ f_uint64: '1.8e19' }).fUint64).toBe(18000000000000000000n);
    expect(fromJson({ f_sfixed64: '100e-2' }).fSfixed64).toBe(1n);
    for (const value of ['1e-5', '1.5', '1e20', '9223372036854775808.0', '1e999999999', '-1e999999999']) {
      rejectsJson({ f_int64: value });
    }
    rejectsJson({ f_uint64: '-1e0' });
  });
});

describe('compileRequestDecoder: other scalars', () => {
  it('refuses a long string of digits that is no number in time linear in its length', () => {
    const digits = '1'.repeat(100_000);
    const started = performance.now();
    rejectsJson({ f_double: `${digits}x` });
    rejectsQuery(`f_double=${digits}x`);
    expect(fromJson({ f_double: `${digits.slice(0, 300)}.5` }).fDouble).toBe(
      Number(`${digits.slice(0, 300)}.5`),
    );
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('takes numbers, numeric strings and the special values for float and double', () => {
    expect(fromJson({ f_double: 2.5 }).fDouble).toBe(2.5);
    expect(fromJson({ f_double: '-1e-3' }).fDouble).toBe(-0.001);
    expect(fromJson({ f_double: '.5' }).fDouble).toBe(0.5);
    expect(fromJson({ f_float: '1.5' }).fFloat).toBe(1.5);
    // proto3 JSON spells the special values as strings.
    expect(fromJson({ f_double: 'NaN' }).fDouble).toBeNaN();
    expect(fromJson({ f_double: '-Infinity' }).fDouble).toBe(Number.NEGATIVE_INFINITY);
    for (const value of ['abc', '', '1e400', true, {}]) rejectsJson({ f_double: value });
    rejectsJson({ f_float: 1e39 });
    expect(fromQuery('f_double=-1.5e2').fDouble).toBe(-150);
    // Spelled as in JSON, as the gateway answers them and openapi.json lists them.
    expect(fromQuery('f_double=NaN').fDouble).toBeNaN();
    expect(fromQuery('f_float=-Infinity').fFloat).toBe(Number.NEGATIVE_INFINITY);
    expect(fromQuery('f_double=Infinity').fDouble).toBe(Number.POSITIVE_INFINITY);
    for (const text of ['nan', 'Inf', '+Infinity', '0x1', 'abc']) rejectsQuery(`f_double=${text}`);
  });

  it('takes JSON booleans for a bool, and in a query what grpc-gateway (strconv.ParseBool) takes', () => {
    expect(fromJson({ f_bool: true }).fBool).toBe(true);
    expect(fromJson({ f_bool: false }).fBool).toBe(false);
    for (const text of ['true', '1', 't', 'T', 'TRUE', 'True'])
      expect(fromQuery(`f_bool=${text}`).fBool).toBe(true);
    for (const text of ['false', '0', 'f', 'F', 'FALSE', 'False']) {
      expect(fromQuery(`f_bool=${text}`).fBool).toBe(false);
    }
    for (const value of [1, 0, '1', 'yes', 'True', '', 'true']) rejectsJson({ f_bool: value });
    for (const text of ['yes', 'tRUE', 'on', '2', ' true', '']) rejectsQuery(`f_bool=${text}`);
    expect(() => fromQuery('f_bool=yes')).toThrow(
      'f_bool must be true or false (or 1, 0, t, f, TRUE, FALSE)',
    );
  });

  it('takes only strings for a string field', () => {
    expect(fromJson({ f_string: 'é😀' }).fString).toBe('é😀');
    expect(fromJson({ f_string: '' }).fString).toBe('');
    for (const value of [1234, true, {}, ['a']]) rejectsJson({ f_string: value });
  });

  it('takes standard and URL-safe base64 for bytes', () => {
    expect([...(fromJson({ f_bytes: 'AAH+/w==' }).fBytes as Uint8Array)]).toEqual([0, 1, 254, 255]);
    expect([...(fromJson({ f_bytes: 'AAH-_w' }).fBytes as Uint8Array)]).toEqual([0, 1, 254, 255]);
    for (const value of ['A', 'not base64!', 12]) rejectsJson({ f_bytes: value });
  });

  it('refuses bytes with characters base64 lacks, rather than skipping them', () => {
    // The parser's decoder skipped them: a query's unescaped "+" is a space, and "+/8=" gave ff, not fb ff.
    rejectsQuery('f_bytes=+/8=');
    expect([...(fromQuery('f_bytes=%2B%2F8%3D').fBytes as Uint8Array)]).toEqual([0xfb, 0xff]);
    expect([...(fromQuery('f_bytes=-_8').fBytes as Uint8Array)]).toEqual([0xfb, 0xff]);
    for (const value of [' /8=', 'A Q I D', 'AQ==ID', 'AQ=D', '+/8_', 'AQID===', 'AQI==']) {
      rejectsJson({ f_bytes: value });
    }
    // Unpadded, padded, and MIME's line breaks, as Go's decoder (grpc-gateway's) takes them.
    for (const value of ['AQI', 'AQI=', 'AQ\r\nID', ''])
      expect(() => fromJson({ f_bytes: value })).not.toThrow();
  });

  it('takes an enum value by name or by number, never an unknown name', () => {
    expect(fromJson({ f_enum: 'COLOR_BLUE' }).fEnum).toBe(2);
    expect(fromJson({ f_enum: 1 }).fEnum).toBe(1);
    // A proto3 enum is open: JSON may carry a number it does not name.
    expect(fromJson({ f_enum: 7 }).fEnum).toBe(7);
    expect(fromQuery('f_enum=2').fEnum).toBe(2);
    expect(fromQuery('f_enum=COLOR_RED').fEnum).toBe(1);
    for (const value of ['COLOR_GREEN', 'color_blue', '7', 1.5, true]) rejectsJson({ f_enum: value });
    for (const text of ['COLOR_GREEN', '7', '']) rejectsQuery(`f_enum=${text}`);
  });
});

describe('compileRequestDecoder: wrapper types inside lists and maps', () => {
  // test.wrapped.v1: Wrapped { repeated Int32Value r = 1; map<string, Int32Value> m = 2 }, POST /wrapped.
  const W = '.test.wrapped.v1';
  const wrappedFile = create(FileDescriptorProtoSchema, {
    name: 'test/wrapped.proto',
    package: 'test.wrapped.v1',
    syntax: 'proto3',
    dependency: ['google/protobuf/wrappers.proto'],
    messageType: [
      message(
        'Wrapped',
        [
          field('r', 1, Type.MESSAGE, { repeated: true, typeName: '.google.protobuf.Int32Value' }),
          field('m', 2, Type.MESSAGE, { repeated: true, typeName: `${W}.Wrapped.MEntry` }),
        ],
        { nestedType: [mapEntry('MEntry', Type.STRING, Type.MESSAGE, '.google.protobuf.Int32Value')] },
      ),
    ],
    service: [
      {
        name: 'WrappedService',
        method: [
          {
            name: 'Put',
            inputType: `${W}.Wrapped`,
            outputType: `${W}.Wrapped`,
            options: httpOptions('POST /wrapped', { body: '*' }),
          },
        ],
      } as never,
    ],
  });
  const wrappedRegistry = registryOf(wrappedFile);
  const Wrapped = wrappedRegistry.getMessage('test.wrapped.v1.Wrapped')!;
  const decode = compileRequestDecoder(readHttpRoutes(wrappedRegistry).routes[0]!);
  const put = (object: Record<string, unknown>) =>
    fromBinary(Wrapped, decode({ pathValues: [], query: '', body: { kind: 'json', object } }));

  it('reads decimal strings and refuses what only Number() would take, in lists and maps alike', () => {
    expect(put({ r: ['1', 2, '3e1'], m: { a: '4' } })).toMatchObject({
      r: [{ value: 1 }, { value: 2 }, { value: 30 }],
      m: { a: { value: 4 } },
    });
    for (const value of ['0x10', '+5', ' 5']) {
      expect(() => put({ r: ['1', value] }), value).toThrow(InvalidParameterError);
      expect(() => put({ m: { a: value } }), value).toThrow(InvalidParameterError);
    }
  });
});

describe('compileRequestDecoder: the query string as sent', () => {
  const decode = (query: string) => fromQueryString({ pathValues: [], query, body: NO_INPUT });

  it('refuses percent-escapes that are not UTF-8 as malformed (400), instead of reading them as U+FFFD', () => {
    for (const query of ['f_string=%FF%FE', 'f_string=a%ED%A0%80', 'r_string=ok&r_string=%C3']) {
      expect(() => decode(query), query).toThrow(gatewayErrors.queryNotUtf8());
      expect(() => decode(query), query).toThrow(expect.objectContaining({ httpStatus: 400 }));
    }
    const decoded = fromBinary(Everything, decode('f_string=%E2%82%AC%EF%BF%BD%zz')) as unknown as Record<
      string,
      unknown
    >;
    expect(decoded.fString).toBe('€\uFFFD%zz');
  });
});

describe('compileRequestDecoder: names, structure, unknown parameters', () => {
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

  it('takes map entries from a query as name[key]=value, as grpc-gateway does', () => {
    // They were names of no field, ignored: the client's entries were lost without a word.
    expect(fromQuery('m_string_int32[a]=1&m_string_int32%5Bb%5D=2&m_string_int32[]=3').mStringInt32).toEqual({
      a: 1,
      b: 2,
      '': 3,
    });
    expect(fromQuery('mStringInt32[__proto__]=4').mStringInt32).toEqual({ ['__proto__']: 4 });
    expect(fromQuery('self.m_string_int32[x]=5').self).toMatchObject({ mStringInt32: { x: 5 } });
    for (const query of [
      'm_string_int32[a]=x',
      'm_string_int32[a]=1&m_string_int32[a]=2',
      'm_int64_nested[1]=1',
      'f_int32[a]=1',
      'r_int32[0]=1',
    ]) {
      rejectsQuery(query);
    }
  });
});

describe('compileRequestDecoder: well-known types', () => {
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
    for (const value of [
      { seconds: '5', nanos: 6 },
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
    for (const value of ['1.5', '1.5 s', 's', '1h30m']) rejectsJson({ how_long: value });
    rejectsJson({ maybe_int32: 'x' });
  });

  it("takes a Duration in a query as grpc-gateway does there: Go's form, proto3 JSON's among it", () => {
    const howLong = (text: string) => fromQuery(`how_long=${encodeURIComponent(text)}`).howLong;
    expect(howLong('1.5s')).toMatchObject({ seconds: 1n, nanos: 500000000 });
    expect(howLong('1h30m')).toMatchObject({ seconds: 5400n, nanos: 0 });
    expect(howLong('250ms')).toMatchObject({ seconds: 0n, nanos: 250000000 });
    expect(howLong('-1.5h')).toMatchObject({ seconds: -5400n, nanos: 0 });
    expect(howLong('1µs2ns')).toMatchObject({ seconds: 0n, nanos: 1002 });
    expect(howLong('.5s')).toMatchObject({ seconds: 0n, nanos: 500000000 });
    expect(howLong('0')).toMatchObject({ seconds: 0n, nanos: 0 });
    // Finer than a nanosecond is cut, as Go cuts it.
    expect(howLong('1.0000000019s')).toMatchObject({ seconds: 1n, nanos: 1 });
    for (const text of [
      '5',
      '1x',
      '1hconstructor',
      '.s',
      '1 s',
      '',
      '-',
      '1e3s',
      '315576000001s',
      '87660000h1ns',
    ]) {
      expect(() => howLong(text), text).toThrow('how_long must be a duration, such as 1.5s, 250ms or 1h30m');
    }
    expect(howLong('315576000000s')).toMatchObject({ seconds: 315576000000n });
  });
});

describe('compileRequestDecoder: a map with bool keys in a query', () => {
  const F = '.test.flags.v1';
  const flagsRegistry = registryOf(
    create(FileDescriptorProtoSchema, {
      name: 'test/flags.proto',
      package: 'test.flags.v1',
      syntax: 'proto3',
      messageType: [
        message(
          'Flags',
          [field('by_bool', 1, Type.MESSAGE, { repeated: true, typeName: `${F}.Flags.ByBoolEntry` })],
          {
            nestedType: [mapEntry('ByBoolEntry', Type.BOOL, Type.STRING)],
          },
        ),
      ],
      service: [
        {
          name: 'FlagsService',
          method: [
            {
              name: 'Get',
              inputType: `${F}.Flags`,
              outputType: `${F}.Flags`,
              options: httpOptions('GET /flags'),
            },
          ],
        } as never,
      ],
    }),
  );
  const Flags = flagsRegistry.getMessage('test.flags.v1.Flags')!;
  const decode = compileRequestDecoder(readHttpRoutes(flagsRegistry).routes[0]!);
  const byBool = (query: string) =>
    (fromBinary(Flags, decode({ pathValues: [], query, body: NO_INPUT })) as unknown as { byBool: unknown })
      .byBool;

  it('takes a key as a bool field takes its value, and one key under two spellings as one key given twice', () => {
    expect(byBool('by_bool[1]=yes&by_bool[F]=no')).toEqual({ true: 'yes', false: 'no' });
    expect(() => byBool('by_bool[true]=a&by_bool[1]=b')).toThrow('by_bool[1] is given twice');
    expect(() => byBool('by_bool[yes]=a')).toThrow(InvalidParameterError);
  });
});

describe('compileRequestDecoder: path variables, a body field, the query', () => {
  const update = compileRequestDecoder(patch!);
  const decode = (pathValues: string[], query: string, object?: Record<string, unknown>) =>
    fromBinary(
      Everything,
      update({ pathValues, query, body: object ? { kind: 'json', object } : NO_INPUT }),
    ) as unknown as Record<string, unknown>;

  it('sets fields from the path, nested ones too, converted by the field type', () => {
    const decoded = decode(['7', 'shelves/1'], '');
    expect(decoded.fInt32).toBe(7);
    expect(decoded.fNested).toMatchObject({ b: 'shelves/1' });
    expect(() => update({ pathValues: ['seven', 'x'], query: '', body: NO_INPUT })).toThrow(
      InvalidParameterError,
    );
  });

  it('puts the body in its field and takes the other fields from the query, by dotted names too', () => {
    const decoded = decode(['7', 'b'], 'f_string=x&f_nested.a=5&r_int32=1&r_int32=2&unknown=1', {
      f_int32: 3,
      fString: 'inner',
    });
    expect(decoded.self).toMatchObject({ fInt32: 3, fString: 'inner' });
    expect(decoded.fString).toBe('x');
    expect(decoded.fNested).toMatchObject({ a: 5, b: 'b' });
    expect(decoded.rInt32).toEqual([1, 2]);
  });

  it('lets the path win: the query cannot set a field the path binds, nor the body', () => {
    expect(decode(['7', 'b'], 'f_int32=99&self.f_int32=5').fInt32).toBe(7);
    expect(decode(['7', 'b'], 'self.f_int32=5').self).toBeUndefined();
    // A body of "*" route: query parameters are not read at all.
    const bodyOnly = fromBinary(Everything, fromBody({ pathValues: [], query: 'f_int32=5', body: NO_INPUT }));
    expect((bodyOnly as unknown as Record<string, unknown>).fInt32).toBe(0);
  });
});

describe('compileRequestDecoder: a path variable inside the body field (AIP-134 update)', () => {
  // `patch: "/v1/{book.name=...}" body: "book"`, as AIP-134 and grpc-gateway's examples write an
  // update: the HttpRule rules allow it, and it was refused at registration ("body is also bound by
  // the path"), found by registering such a service with a real distributor.
  const file = kitchenFile();
  const service = file.service[0]!;
  const withUpdate = create(FileDescriptorProtoSchema, {
    ...file,
    service: [
      {
        ...service,
        method: [
          {
            ...service.method[0]!,
            name: 'UpdateNested',
            options: httpOptions('PATCH /nested/{f_nested.b}', { body: 'f_nested' }),
          },
        ],
      },
    ],
  });
  const { routes, problems } = readHttpRoutes(registryOf(withUpdate));

  it('is a route, its other fields from the query, and the path wins inside the body', () => {
    expect(problems).toEqual([]);
    const [route] = routes;
    expect(route!.queryFields.map((each) => each.name)).not.toContain('f_nested');
    const decoded = fromBinary(
      Everything,
      compileRequestDecoder(route!)({
        pathValues: ['from-path'],
        query: 'f_string=q',
        body: { kind: 'json', object: { a: 5, b: 'from-body' } },
      }),
    ) as unknown as Record<string, unknown>;
    expect(decoded.fNested).toMatchObject({ a: 5, b: 'from-path' });
    expect(decoded.fString).toBe('q');
  });
});

describe('compileRequestDecoder: what a refusal says, for the log', () => {
  /** The refusal's message for a JSON body. */
  function refusalOf(object: Record<string, unknown>): string {
    try {
      transcoder.fromJson(object);
    } catch (error) {
      if (error instanceof InvalidParameterError) return error.message;
      throw error;
    }
    throw new Error(`accepted: ${JSON.stringify(object)}`);
  }

  // The gateway logs it at debug: a password sent as a number was written there whole.
  it.each([
    ['a number for a string', { f_string: 87654321 }, 'f_string from JSON: expected string'],
    ['true for a string', { f_string: true }, 'f_string from JSON: expected string'],
    ['a string for a bool', { f_bool: 's3cretvalue' }, 'f_bool from JSON: expected bool'],
    ['a list item of the wrong type', { r_string: ['ok', 87654321] }, 'r_string from JSON: expected string'],
    ['an enum name that does not exist', { f_enum: 's3cretvalue' }, 'Color from JSON'],
    ['a map value of the wrong type', { m_string_int32: { s3cretvalue: true } }, 'm_string_int32 from JSON'],
    ['a number for a message', { f_nested: 87654321 }, 'Nested from JSON'],
    ['a timestamp that is no time', { when: 's3cretvalue' }, 'Timestamp from JSON'],
  ])('names the field, not the value: %s', (_label, object, says) => {
    const message = refusalOf(object);
    expect(message).toContain(says);
    expect(message).not.toMatch(/87654321|s3cretvalue/);
  });
});

describe('compileRequestDecoder: descriptor sets a node may register (proto2, odd field names)', () => {
  // Found by registering fuzzed descriptor sets with a real distributor and gateway: a request that
  // left out a proto2 `required` field was the gateway's own 500 ("cannot encode field ... required
  // field not set"), and a repeated field named like an Object.prototype member in a query string
  // threw a TypeError, also a 500. Both are the client's input the message cannot take.
  const file = create(FileDescriptorProtoSchema, {
    name: 'test/odd/v1/odd.proto',
    package: 'test.odd.v1',
    syntax: 'proto2',
    messageType: [
      message('Odd', [
        { ...field('must', 1, Type.STRING), label: 2 },
        field('constructor', 2, Type.STRING, { repeated: true }),
        field('toString', 3, Type.INT32, { repeated: true }),
        field('valueOf', 4, Type.INT32),
      ]),
    ],
    service: [
      {
        name: 'OddService',
        method: [
          {
            name: 'Get',
            inputType: '.test.odd.v1.Odd',
            outputType: '.test.odd.v1.Odd',
            options: httpOptions('GET /odd'),
          },
        ],
      },
    ],
  });
  const registry = registryOf(file);
  const Odd = registry.getMessage('test.odd.v1.Odd')!;
  const [route] = readHttpRoutes(registry).routes;
  const decode = compileRequestDecoder(route!);
  const fromQuery = (query: string) =>
    fromBinary(Odd, decode({ pathValues: [], query, body: NO_INPUT })) as unknown as Record<string, unknown>;

  it('refuses a request without a required field as invalid parameters, not as its own fault', () => {
    expect(() => decode({ pathValues: [], query: 'valueOf=1', body: NO_INPUT })).toThrow(
      InvalidParameterError,
    );
    expect(fromQuery('must=x').must).toBe('x');
  });

  it('takes repeated fields named like Object.prototype members from a query string', () => {
    const decoded = fromQuery('must=x&constructor=a&constructor=b&toString=1&valueOf=2');
    // protobuf-es names such fields with a "$" after them in its objects.
    const value = (name: string) => decoded[Odd.fields.find((each) => each.name === name)!.localName];
    expect(value('constructor')).toEqual(['a', 'b']);
    expect(value('toString')).toEqual([1]);
    expect(value('valueOf')).toBe(2);
  });
});

describe('compileRequestDecoder: a field named __proto__', () => {
  // Legal in proto; on a plain object, assigning it sets the prototype instead of a key.
  const file = create(FileDescriptorProtoSchema, {
    name: 'test/proto-field.proto',
    package: 'test.protofield.v1',
    syntax: 'proto3',
    messageType: [
      message('Inner', [field('price', 1, Type.INT32)]),
      message('Named', [field('__proto__', 1, Type.STRING), field('price', 2, Type.INT32)]),
      message('Held', [
        field('__proto__', 1, Type.MESSAGE, { typeName: '.test.protofield.v1.Inner' }),
        field('price', 2, Type.INT32),
      ]),
    ],
    service: [
      {
        name: 'ProtoFieldService',
        method: [
          {
            name: 'Named',
            inputType: '.test.protofield.v1.Named',
            outputType: '.test.protofield.v1.Named',
            options: httpOptions('POST /named', { body: '*', additional: ['GET /named'] }),
          },
          {
            name: 'Held',
            inputType: '.test.protofield.v1.Held',
            outputType: '.test.protofield.v1.Held',
            options: httpOptions('POST /held/{__proto__.price}', { body: '*' }),
          },
        ],
      },
    ],
  });
  const registry = registryOf(file);
  const Named = registry.getMessage('test.protofield.v1.Named')!;
  const Held = registry.getMessage('test.protofield.v1.Held')!;
  const [postNamed, getNamed, postHeld] = readHttpRoutes(registry).routes;
  const named = (route: typeof postNamed, request: Partial<Parameters<RequestDecoder>[0]>) =>
    fromBinary(
      Named,
      compileRequestDecoder(route!)({ pathValues: [], query: '', body: NO_INPUT, ...request }),
    ) as unknown as Record<string, unknown>;
  // protobuf-es's own name of the field.
  const local = Named.fields[0]!.localName;

  it('reads it from a JSON body, a form and a query string, and leaves Object.prototype alone', () => {
    const body = JSON.parse('{"__proto__":"x","price":1}') as JsonObject;
    expect(named(postNamed, { body: { kind: 'json', object: body } })).toMatchObject({
      [local]: 'x',
      price: 1,
    });
    const form = new URLSearchParams('__proto__=y&price=2');
    expect(named(postNamed, { body: { kind: 'text', params: form } })).toMatchObject({
      [local]: 'y',
      price: 2,
    });
    expect(named(getNamed, { query: '__proto__=z&price=3' })).toMatchObject({ [local]: 'z', price: 3 });
    expect(() => named(getNamed, { query: '__proto__=z&__proto__=w' })).toThrow(InvalidParameterError);
    // An object under the key is a value of the field, not a prototype whose keys become fields.
    expect(() =>
      named(postNamed, { body: { kind: 'json', object: JSON.parse('{"__proto__":{"price":7}}') } }),
    ).toThrow(InvalidParameterError);
    expect(({} as Record<string, unknown>).price).toBeUndefined();
  });

  it('reads a message under it, from the body and from a path variable into it', () => {
    const decode = compileRequestDecoder(postHeld!);
    const held = fromBinary(
      Held,
      decode({
        pathValues: ['5'],
        query: '',
        body: { kind: 'json', object: JSON.parse('{"__proto__":{"price":7},"price":1}') },
      }),
    ) as unknown as Record<string, { price: number } | number>;
    const local = Held.fields[0]!.localName;
    // The path wins over the body, and the body's other fields stay.
    expect(held[local]).toMatchObject({ price: 5 });
    expect(held.price).toBe(1);
    const bare = fromBinary(
      Held,
      decode({ pathValues: ['6'], query: '', body: { kind: 'json', object: {} } }),
    ) as unknown as Record<string, { price: number }>;
    expect(bare[local]).toMatchObject({ price: 6 });
    expect(({} as Record<string, unknown>).price).toBeUndefined();
  });
});

describe('compileRequestDecoder: the update mask of a PATCH, as grpc-gateway fills it', () => {
  // test.books.v1: UpdateBookRequest { Book book = 1; FieldMask update_mask = 2; }, routed as
  // PATCH /books/{book.name} (body "book"), PUT /books/{book.name} (body "book") and PATCH /books (body "*").
  const B = '.test.books.v1';
  const booksFile = create(FileDescriptorProtoSchema, {
    name: 'test/books.proto',
    package: 'test.books.v1',
    syntax: 'proto3',
    dependency: ['google/protobuf/field_mask.proto', 'google/protobuf/timestamp.proto'],
    messageType: [
      message('Book', [
        field('name', 1, Type.STRING),
        field('page_count', 2, Type.INT32),
        field('author', 3, Type.MESSAGE, { typeName: `${B}.Author` }),
        field('tags', 4, Type.STRING, { repeated: true }),
        field('published', 5, Type.MESSAGE, { typeName: '.google.protobuf.Timestamp' }),
      ]),
      message('Author', [field('first_name', 1, Type.STRING), field('last_name', 2, Type.STRING)]),
      message('UpdateBookRequest', [
        field('book', 1, Type.MESSAGE, { typeName: `${B}.Book` }),
        field('update_mask', 2, Type.MESSAGE, { typeName: '.google.protobuf.FieldMask' }),
      ]),
    ],
    service: [
      {
        name: 'BookService',
        method: [
          {
            name: 'UpdateBook',
            inputType: `${B}.UpdateBookRequest`,
            outputType: `${B}.Book`,
            options: httpOptions('PATCH /books/{book.name}', {
              body: 'book',
              additional: [
                ['PUT /books/{book.name}', 'book'],
                ['PATCH /books', '*'],
              ],
            }),
          },
        ],
      } as never,
    ],
  });
  const books = createFileRegistry(
    create(FileDescriptorSetSchema, {
      file: [file_google_protobuf_field_mask.proto, file_google_protobuf_timestamp.proto, booksFile],
    }),
  );
  const UpdateBookRequest = books.getMessage('test.books.v1.UpdateBookRequest')!;
  const [patchRoute, putRoute, patchAllRoute] = readHttpRoutes(books).routes;
  const maskOf = (route: typeof patchRoute, object: Record<string, unknown>, query = '') =>
    (
      fromBinary(
        UpdateBookRequest,
        compileRequestDecoder(route!)({ pathValues: ['b1'], query, body: { kind: 'json', object } }),
      ) as unknown as { updateMask?: { paths: string[] } }
    ).updateMask?.paths;

  it('fills the mask with the paths the body sets, by proto name, entering non-empty messages', () => {
    // Unfilled, a service taking an empty mask as "update every field" wiped what the body left out.
    expect(
      maskOf(patchRoute, {
        pageCount: 3,
        author: { firstName: 'A', last_name: 'B' },
        tags: ['x'],
        published: '2020-01-01T00:00:00Z',
        unknown: 1,
      }),
    ).toEqual(['page_count', 'tags', 'published', 'author.first_name', 'author.last_name']);
    expect(maskOf(patchRoute, { author: {}, page_count: null })).toEqual(['author', 'page_count']);
  });

  it('finds each key of the body by a lookup, not a search of the fields per key', () => {
    // A body of 100,000 keys on a registered message of 5,000 fields searched the fields once per
    // key (6 s of the event loop for 1 MiB of unknown keys, 49 s for 1 MiB of known ones nested);
    // counted here as reads of the message's field list.
    const Book = books.getMessage('test.books.v1.Book')!;
    let fieldListReads = 0;
    const counted = new Proxy(Book, {
      get(target, property, receiver) {
        if (property === 'fields') fieldListReads++;
        return Reflect.get(target, property, receiver);
      },
    });
    const body: JsonObject = { page_count: 3, pageCount: 4 };
    for (let index = 0; index < 1000; index++) body[`unknown_${index}`] = index;
    expect(fieldMaskOfBody(counted, body)).toEqual(['page_count']);
    expect(fieldListReads).toBeLessThan(10);
  });

  it('leaves a mask the query sets, and the routes grpc-gateway leaves: another method, or body "*"', () => {
    expect(maskOf(patchRoute, { page_count: 3 }, 'update_mask=name')).toEqual(['name']);
    expect(maskOf(putRoute, { page_count: 3 })).toBeUndefined();
    expect(maskOf(patchAllRoute, { book: { page_count: 3 } })).toBeUndefined();
  });
});

describe('compileRequestDecoder: google.protobuf.Any', () => {
  // What a node registers: test.anything.v1 with any.proto and timestamp.proto, nothing more.
  const anyRegistry = registryOfDescriptorSet(descriptorSetOf(anythingFile()));
  const Holder = anyRegistry.getMessage('test.anything.v1.Holder')!;
  const decode = compileRequestDecoder(readHttpRoutes(anyRegistry).routes[0]!, anyTypesOf(anyRegistry));
  const PAYLOAD = 'type.googleapis.com/test.anything.v1.Payload';
  const send = (object: Record<string, unknown>) =>
    decode({ pathValues: [], query: '', body: { kind: 'json', object } });
  type HolderShape = { item?: Any; items: Any[]; byName: Record<string, Any> };
  const parse = (object: Record<string, unknown>) =>
    fromBinary(Holder, send(object)) as unknown as HolderShape;
  /** Decodes a body and parses it as the service would, its Any unpacked. */
  const received = (object: Record<string, unknown>) => {
    const holder = parse(object);
    return { holder, item: holder.item && unpackAny(holder.item) };
  };
  const unpackAny = (any: Any): Record<string, unknown> | undefined =>
    anyUnpack(any, anyTypesOf(anyRegistry)) as Record<string, unknown> | undefined;
  const rejects = (object: Record<string, unknown>) => {
    let thrown: unknown;
    try {
      send(object);
    } catch (error) {
      thrown = error;
    }
    expect(thrown, JSON.stringify(object)).toBeInstanceOf(InvalidParameterError);
    return (thrown as Error).message;
  };

  it('takes a message of the descriptor set as "@type" and its fields, checked as any message is', () => {
    const { item, holder } = received({
      item: {
        '@type': PAYLOAD,
        count: '5',
        big: '9007199254740993',
        data: 'AQI=',
        label: 'x',
        notAField: 1,
      },
    });
    expect(holder.item?.typeUrl).toBe(PAYLOAD);
    expect(item).toMatchObject({ count: 5, big: 9007199254740993n, label: 'x' });
    expect([...(item!.data as Uint8Array)]).toEqual([1, 2]);
    // An Any in the payload, and a Timestamp in that.
    const nested = received({
      item: {
        '@type': PAYLOAD,
        inner: { '@type': PAYLOAD, count: 7, when: '2020-11-04T15:31:47.123Z' },
      },
    }).item as { inner: Any };
    expect(unpackAny(nested.inner)).toMatchObject({ count: 7, when: { seconds: 1604503907n } });
  });

  it('takes a well-known type under "value", those the set does not import included', () => {
    const wellKnown = {
      'google.protobuf.Timestamp': ['2020-11-04T15:31:47.123Z', { seconds: 1604503907n, nanos: 123000000 }],
      'google.protobuf.Duration': ['1.5s', { seconds: 1n, nanos: 500000000 }],
      'google.protobuf.Int64Value': ['12', { value: 12n }],
      'google.protobuf.Struct': [{ a: [1, 'b'] }, { fields: { a: {} } }],
      'google.protobuf.Empty': [{}, {}],
    } as const;
    for (const [name, [value, expected]] of Object.entries(wellKnown)) {
      const { item } = received({ item: { '@type': `type.googleapis.com/${name}`, value } });
      expect(item, name).toMatchObject(expected);
    }
    // An Any in an Any, whose own JSON goes under "value".
    const { item } = received({
      item: {
        '@type': 'type.googleapis.com/google.protobuf.Any',
        value: { '@type': PAYLOAD, count: 3 },
      },
    });
    expect(unpackAny(item as unknown as Any)).toMatchObject({ count: 3 });
  });

  it('takes Anys in lists and maps, and an empty object as an empty Any', () => {
    const holder = parse({
      items: [{ '@type': PAYLOAD, count: 1 }, {}],
      by_name: { a: { '@type': PAYLOAD, label: 'z' } },
    });
    expect(holder.items).toHaveLength(2);
    expect(unpackAny(holder.items[0]!)).toMatchObject({ count: 1 });
    expect(holder.items[1]!.typeUrl).toBe('');
    expect(unpackAny(holder.byName.a!)).toMatchObject({ label: 'z' });
  });

  it('refuses a type the descriptor set does not define, without naming it (the message is logged)', () => {
    for (const typeUrl of [
      'type.googleapis.com/other.v1.Secret',
      'type.googleapis.com/',
      'test.anything.v1.Nope',
    ]) {
      const message = rejects({ item: { '@type': typeUrl, count: 1 } });
      expect(message).not.toContain(typeUrl);
      expect(message).toContain('item');
    }
    for (const any of [{ count: 1 }, { '@type': 5 }, { '@type': '' }]) rejects({ item: any });
    rejects({ items: [{ '@type': 'type.googleapis.com/other.v1.Secret' }] });
    rejects({ by_name: { a: { '@type': 'type.googleapis.com/other.v1.Secret' } } });
    rejects({ item: { '@type': PAYLOAD, inner: { '@type': 'type.googleapis.com/other.v1.Secret' } } });
  });

  it('keeps the strictness of numbers and base64 inside the payload', () => {
    for (const count of ['0x10', '+5', ' 5', '1.5']) rejects({ item: { '@type': PAYLOAD, count } });
    rejects({ item: { '@type': PAYLOAD, big: 2 ** 53 } });
    rejects({ item: { '@type': PAYLOAD, data: 'AQ==ID' } });
    rejects({ item: { '@type': 'type.googleapis.com/google.protobuf.Int32Value', value: '0x10' } });
    rejects({
      item: { '@type': 'type.googleapis.com/google.protobuf.Any', value: { '@type': PAYLOAD, count: '+5' } },
    });
  });

  it('refuses Anys nested past the depth limit with Invalid Parameters, not a crash', () => {
    let any: Record<string, unknown> = { '@type': PAYLOAD, count: 1 };
    for (let level = 0; level < 40; level++) any = { '@type': PAYLOAD, inner: any };
    rejects({ item: any });
    let wrapped: Record<string, unknown> = { '@type': PAYLOAD };
    for (let level = 0; level < 40; level++) {
      wrapped = { '@type': 'type.googleapis.com/google.protobuf.Any', value: wrapped };
    }
    rejects({ item: wrapped });
  });
});
