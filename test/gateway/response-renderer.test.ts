import {
  create,
  createFileRegistry,
  type DescMessage,
  fromBinary,
  fromJson,
  type MessageInitShape,
  type Registry,
  toBinary,
} from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  type Any,
  AnySchema,
  anyPack,
  DurationSchema,
  EmptySchema,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  Int64ValueSchema,
  StructSchema,
  TimestampSchema,
} from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import {
  encodeDescriptorSet,
  filesForServices,
  loadShopDescriptorSet,
} from '../../src/common/descriptors.js';
import { registryOfDescriptorSet } from '../../src/common/http-routes.js';
import { anyTypesOf } from '../../src/gateway/any-types.js';
import { ENVELOPE_ROOM } from '../../src/gateway/envelope.js';
import { compileResponseRenderer } from '../../src/gateway/response-renderer.js';
import { MalformedMessageError } from '../../src/gateway/wire-reader.js';
import {
  anythingFile,
  descriptorSetOf,
  field,
  kitchenFile,
  message,
  registryOf,
  Type,
} from './support/descriptors.js';

/** The renderer, returning only the fields' JSON (without the envelope room and the closing brace). */
function compile(
  message: DescMessage,
  fields: readonly string[],
  types?: Registry,
): (bytes: Buffer) => Buffer {
  const render = compileResponseRenderer(message, fields, types);
  return (bytes) => {
    const out = render(bytes);
    expect(out[out.length - 1]).toBe(0x7d);
    return out.subarray(ENVELOPE_ROOM, out.length - 1);
  };
}

const registry = registryOf(kitchenFile());
const Everything = registry.getMessage('test.kitchen.v1.Everything')!;
const Nested = registry.getMessage('test.kitchen.v1.Nested')!;

type Init = MessageInitShape<DescMessage & { $type: Record<string, unknown> }>;

function encode(init: Record<string, unknown>): Buffer {
  return Buffer.from(toBinary(Everything, create(Everything, init as Init)));
}

/** Renders `self` (a nested Everything), so the output is the whole message in declaration order. */
function renderWhole(bytes: Buffer): string {
  const writer = new BinaryWriter();
  writer.tag(31, WireType.LengthDelimited).bytes(bytes);
  const outer = Buffer.from(writer.finish());
  const fields = compile(Everything, ['self'])(outer).toString('utf8');
  expect(fields.startsWith(',"self":')).toBe(true);
  return fields.slice(',"self":'.length);
}

/**
 * Renders 2,000 copies of `valid` with one to three bytes changed at random (a fixed seed): each
 * either renders as JSON that parses or is refused as a MalformedMessageError, never anything else.
 */
function expectFlippedBytesRenderedOrRefused(
  render: (bytes: Buffer) => Buffer,
  valid: Uint8Array,
  seed: number,
): void {
  let state = seed;
  const random = (): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  for (let round = 0; round < 2000; round++) {
    const bytes = Buffer.from(valid);
    for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) {
      bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    }
    try {
      const json = render(bytes).toString('utf8');
      expect(() => JSON.parse(`{${json.slice(1)}}`), json).not.toThrow();
    } catch (error) {
      expect(error).toBeInstanceOf(MalformedMessageError);
    }
  }
}

const DEFAULTS =
  '{"f_int32":0,"f_int64":0,"f_uint32":0,"f_uint64":0,"f_sint32":0,"f_sint64":0,"f_fixed32":0,' +
  '"f_fixed64":0,"f_sfixed32":0,"f_sfixed64":0,"f_float":0,"f_double":0,"f_bool":false,"f_string":"",' +
  '"f_bytes":"","f_enum":"COLOR_UNSPECIFIED","f_nested":null,"r_int32":[],"r_string":[],"r_nested":[],' +
  '"r_enum":[],"m_string_int32":{},"m_int64_nested":{},"o_int32":0,"when":null,"how_long":null,' +
  '"maybe_int32":null,"self":null,"late":""}';

describe('compileResponseRenderer', () => {
  it('renders the route fields in the route order, after the envelope', () => {
    const render = compile(Everything, ['f_string', 'f_int32']);
    expect(render(encode({ fInt32: 7, fString: 'x' })).toString()).toBe(',"f_string":"x","f_int32":7');
  });

  it('renders nothing for a route without response fields', () => {
    expect(compile(Everything, [])(encode({ fInt32: 7 })).length).toBe(0);
  });

  it('renders every field at its default when the message is empty (proto3 JSON would omit them)', () => {
    expect(renderWhole(Buffer.alloc(0))).toBe(DEFAULTS);
    expect(compile(Everything, ['f_int32', 'f_string', 'r_int32'])(Buffer.alloc(0)).toString()).toBe(
      ',"f_int32":0,"f_string":"","r_int32":[]',
    );
  });

  it('renders the seed run rows byte for byte', () => {
    const shop = createFileRegistry(
      fromBinary(
        FileDescriptorSetSchema,
        encodeDescriptorSet(
          filesForServices(loadShopDescriptorSet(), ['shop.v1.GoodsService', 'shop.v1.PurchasesService']),
        ),
      ),
    );
    const goods = shop.getMessage('shop.v1.ListGoodsResponse')!;
    const bytes = toBinary(
      goods,
      create(goods, {
        results: [{ id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' }],
      } as never),
    );
    expect(compile(goods, ['results'])(Buffer.from(bytes)).toString()).toBe(
      ',"results":[{"id":1,"name":"test Goods","category":"tests","price":1000,"description":"test"}]',
    );
    const purchases = shop.getMessage('shop.v1.ListPurchasesResponse')!;
    const purchaseBytes = toBinary(
      purchases,
      create(purchases, {
        results: [{ id: 1, goodsid: 1, date: { seconds: 1604503907n, nanos: 0 } }],
      } as never),
    );
    expect(compile(purchases, ['results'])(Buffer.from(purchaseBytes)).toString()).toBe(
      ',"results":[{"id":1,"goodsid":1,"date":"2020-11-04T15:31:47.000Z"}]',
    );
  });

  it('renders every kind of field', () => {
    const bytes = encode({
      fInt32: -5,
      fInt64: 42n,
      fUint32: 4294967295,
      fUint64: 7n,
      fSint32: -2147483648,
      fSint64: -3n,
      fFixed32: 4000000000,
      fFixed64: 9n,
      fSfixed32: -9,
      fSfixed64: -10n,
      fFloat: 0.1,
      fDouble: 2.5e-300,
      fBool: true,
      fString: 'a "quoted" \\ line\nand é😀',
      fBytes: new Uint8Array([0, 1, 254, 255]),
      fEnum: 2,
      fNested: { a: 1, b: 'x' },
      rInt32: [1, -2, 3],
      rString: ['a', ''],
      rNested: [{ a: 1 }, {}],
      rEnum: [1, 2, 99],
      mStringInt32: { k: 1 },
      mInt64Nested: { '12': { a: 2 } },
      choice: { case: 'choiceNumber', value: 0 },
      oInt32: 0,
      when: { seconds: 1604503907n, nanos: 123456789 },
      howLong: { seconds: 1n, nanos: 500000000 },
      maybeInt32: 0,
      late: 'last',
    });
    expect(JSON.parse(renderWhole(bytes))).toEqual({
      f_int32: -5,
      f_int64: 42,
      f_uint32: 4294967295,
      f_uint64: 7,
      f_sint32: -2147483648,
      f_sint64: -3,
      f_fixed32: 4000000000,
      f_fixed64: 9,
      f_sfixed32: -9,
      f_sfixed64: -10,
      f_float: 0.1,
      f_double: 2.5e-300,
      f_bool: true,
      f_string: 'a "quoted" \\ line\nand é😀',
      f_bytes: 'AAH+/w==',
      f_enum: 'COLOR_BLUE',
      f_nested: { a: 1, b: 'x' },
      r_int32: [1, -2, 3],
      r_string: ['a', ''],
      r_nested: [
        { a: 1, b: '' },
        { a: 0, b: '' },
      ],
      r_enum: ['COLOR_RED', 'COLOR_BLUE', 99],
      m_string_int32: { k: 1 },
      m_int64_nested: { '12': { a: 2, b: '' } },
      choice_number: 0,
      o_int32: 0,
      when: '2020-11-04T15:31:47.123Z',
      how_long: '1.500s',
      maybe_int32: 0,
      self: null,
      late: 'last',
    });
  });

  it('escapes strings exactly as JSON.stringify does', () => {
    const samples = [
      'plain',
      'a"b',
      'back\\slash',
      'tab\tnew\nline',
      '\u0000\u001f\u007f',
      'é',
      '😀',
      '\u2028',
    ];
    const render = compile(Everything, ['f_string']);
    for (const sample of samples) {
      expect(render(encode({ fString: sample })).toString('utf8')).toBe(
        `,"f_string":${JSON.stringify(sample)}`,
      );
    }
  });

  it('turns invalid UTF-8 into U+FFFD, keeping the JSON valid', () => {
    const writer = new BinaryWriter();
    writer.tag(15, WireType.LengthDelimited).bytes(new Uint8Array([0x61, 0xff, 0x62]));
    const json = compile(Everything, ['f_string'])(Buffer.from(writer.finish())).toString('utf8');
    expect(json).toBe(',"f_string":"a\uFFFDb"');
  });

  it('renders 64-bit integers as numbers when exact and as strings beyond 2^53', () => {
    const render = compile(Everything, ['f_int64', 'f_uint64', 'f_sint64', 'f_fixed64', 'f_sfixed64']);
    expect(
      render(
        encode({
          fInt64: 9007199254740991n,
          fUint64: 9007199254740992n,
          fSint64: -9007199254740991n,
          fFixed64: 18446744073709551615n,
          fSfixed64: -9223372036854775808n,
        }),
      ).toString(),
    ).toBe(
      ',"f_int64":9007199254740991,"f_uint64":"9007199254740992","f_sint64":-9007199254740991,' +
        '"f_fixed64":"18446744073709551615","f_sfixed64":"-9223372036854775808"',
    );
    expect(render(encode({ fInt64: -1n, fSint64: 9223372036854775807n })).toString()).toBe(
      ',"f_int64":-1,"f_uint64":0,"f_sint64":"9223372036854775807","f_fixed64":0,"f_sfixed64":0',
    );
    // Signed and past 2^53: a string too, as for the unsigned types (a number would lose its last digits).
    expect(render(encode({ fInt64: 9007199254740993n, fSfixed64: 9223372036854775807n })).toString()).toBe(
      ',"f_int64":"9007199254740993","f_uint64":0,"f_sint64":0,"f_fixed64":0,"f_sfixed64":"9223372036854775807"',
    );
  });

  it('renders floats by their shortest form and non-finite numbers as strings', () => {
    const render = compile(Everything, ['f_float', 'f_double']);
    expect(render(encode({ fFloat: 0.1, fDouble: 0.1 })).toString()).toBe(',"f_float":0.1,"f_double":0.1');
    expect(render(encode({ fFloat: 3.4028234663852886e38, fDouble: -0 })).toString()).toBe(
      ',"f_float":3.4028235e+38,"f_double":0',
    );
    expect(render(encode({ fFloat: Number.NaN, fDouble: Number.NEGATIVE_INFINITY })).toString()).toBe(
      ',"f_float":"NaN","f_double":"-Infinity"',
    );
  });

  it('renders timestamps as ISO 8601 UTC with milliseconds, before 1970 too', () => {
    const render = compile(Everything, ['when']);
    expect(render(encode({ when: { seconds: 0n, nanos: 999999 } })).toString()).toBe(
      ',"when":"1970-01-01T00:00:00.000Z"',
    );
    expect(render(encode({ when: { seconds: -1n, nanos: 500000000 } })).toString()).toBe(
      ',"when":"1969-12-31T23:59:59.500Z"',
    );
    expect(render(encode({ when: {} })).toString()).toBe(',"when":"1970-01-01T00:00:00.000Z"');
  });

  it('renders durations as proto3 JSON does', () => {
    const render = compile(Everything, ['how_long']);
    const cases: [bigint, number, string][] = [
      [3n, 0, '"3s"'],
      [0n, 1000, '"0.000001s"'],
      [-1n, -500000000, '"-1.500s"'],
      [0n, -1, '"-0.000000001s"'],
    ];
    for (const [seconds, nanos, expected] of cases) {
      expect(render(encode({ howLong: { seconds, nanos } })).toString()).toBe(`,"how_long":${expected}`);
    }
  });

  it('keeps declaration order for a field declared out of number order', () => {
    // `late` is number 3 but declared last: canonical encoders write it third.
    const json = renderWhole(encode({ late: 'z', fInt32: 1, fUint32: 2 }));
    expect(json.indexOf('"late"')).toBeGreaterThan(json.indexOf('"self"'));
    expect(JSON.parse(json)).toMatchObject({ f_int32: 1, f_uint32: 2, late: 'z' });
  });

  it('renders any valid encoding like its canonical form: reordered, repeated and merged fields', () => {
    const parts = [
      encode({ fString: 'first', fNested: { a: 1 }, rInt32: [1, 2], mStringInt32: { k: 1, j: 2 } }),
      encode({ fInt32: 5, fString: 'second', fNested: { b: 'x' }, rInt32: [3], rString: ['s'] }),
      encode({ mStringInt32: { k: 3 }, choice: { case: 'choiceText', value: 't' }, when: { seconds: 5n } }),
      encode({ choice: { case: 'choiceNumber', value: 4 }, when: { nanos: 7000000 }, rInt32: [4] }),
    ];
    const concatenated = Buffer.concat(parts);
    const canonical = Buffer.from(toBinary(Everything, fromBinary(Everything, concatenated)));
    const json = renderWhole(concatenated);
    expect(json).toBe(renderWhole(canonical));
    expect(JSON.parse(json)).toMatchObject({
      f_int32: 5,
      f_string: 'second',
      f_nested: { a: 1, b: 'x' },
      r_int32: [1, 2, 3, 4],
      r_string: ['s'],
      m_string_int32: { k: 3, j: 2 },
      choice_number: 4,
      when: '1970-01-01T00:00:05.007Z',
    });
    expect(json).not.toContain('choice_text');
  });

  it('renders fields in any wire order like the canonical order (randomised)', () => {
    let seed = 7;
    const random = (below: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return Math.floor((seed / 2 ** 31) * below);
    };
    const text = () => ['', 'a', 'é"\\', 'longer text 😀'][random(4)]!;
    const nested = () => ({ a: random(1000) - 500, b: text() });
    const makers: Record<string, () => unknown> = {
      fInt32: () => random(2 ** 31) - 2 ** 30,
      fInt64: () => BigInt(random(2 ** 31)) * BigInt(random(2 ** 31)) * (random(2) ? 1n : -1n),
      fUint64: () => BigInt(random(2 ** 31)) ** 2n,
      fSint32: () => random(2000) - 1000,
      fDouble: () => random(1000) / 7,
      fBool: () => random(2) === 1,
      fString: text,
      fBytes: () => new Uint8Array([random(256), random(256)]),
      fEnum: () => random(3),
      fNested: nested,
      rInt32: () => [random(100), random(100) - 50],
      rString: () => [text(), text()],
      rNested: () => [nested(), nested()],
      mStringInt32: () => ({ [text()]: random(10) }),
      choice: () => ({ case: 'choiceText', value: text() }),
      oInt32: () => random(10),
      when: () => ({ seconds: BigInt(random(2 ** 31)), nanos: random(1e9) }),
      maybeInt32: () => random(10),
      self: () => ({ fInt32: random(10), rNested: [nested()] }),
      late: text,
    };
    for (let round = 0; round < 200; round++) {
      const chunks: Buffer[] = [];
      for (const [name, make] of Object.entries(makers)) {
        if (random(3) > 0) chunks.push(encode({ [name]: make() }));
      }
      for (let index = chunks.length - 1; index > 0; index--) {
        const other = random(index + 1);
        [chunks[index], chunks[other]] = [chunks[other]!, chunks[index]!];
      }
      const shuffled = Buffer.concat(chunks);
      const canonical = Buffer.from(toBinary(Everything, fromBinary(Everything, shuffled)));
      expect(renderWhole(shuffled)).toBe(renderWhole(canonical));
      JSON.parse(renderWhole(shuffled));
    }
  });

  it('reads repeated numbers packed or not', () => {
    const writer = new BinaryWriter();
    for (const value of [1, 2]) writer.tag(19, WireType.Varint).int32(value);
    writer.tag(19, WireType.LengthDelimited).fork().int32(3).int32(-4).join();
    writer.tag(19, WireType.LengthDelimited).fork().join();
    writer.tag(19, WireType.Varint).int32(5);
    expect(compile(Everything, ['r_int32'])(Buffer.from(writer.finish())).toString()).toBe(
      ',"r_int32":[1,2,3,-4,5]',
    );
  });

  it('skips fields the descriptor does not know', () => {
    const writer = new BinaryWriter();
    writer.tag(1, WireType.Varint).int32(1);
    writer.tag(99, WireType.LengthDelimited).string('unknown');
    writer.tag(98, WireType.Bit64).fixed64(1n);
    writer.tag(97, WireType.StartGroup).tag(1, WireType.Varint).int32(1).tag(97, WireType.EndGroup);
    writer.tag(15, WireType.LengthDelimited).string('known');
    expect(compile(Everything, ['f_int32', 'f_string'])(Buffer.from(writer.finish())).toString()).toBe(
      ',"f_int32":1,"f_string":"known"',
    );
  });

  it('renders a map value missing from its entry as the default, and the last of a repeated key', () => {
    const writer = new BinaryWriter();
    writer.tag(24, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int64(7n).join();
    writer.tag(23, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string('k').join();
    writer
      .tag(23, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string('k')
      .tag(2, WireType.Varint)
      .int32(9)
      .join();
    expect(
      compile(Everything, ['m_string_int32', 'm_int64_nested'])(Buffer.from(writer.finish())).toString(),
    ).toBe(',"m_string_int32":{"k":9},"m_int64_nested":{"7":{"a":0,"b":""}}');
  });

  it('refuses bytes that are not a valid encoding', () => {
    const render = compile(Everything, ['f_string', 'f_nested']);
    const valid = encode({ fString: 'hello', fNested: { a: 1, b: 'x' } });
    // Cut anywhere but between the two fields (a shorter valid message), it is malformed.
    const boundary = encode({ fString: 'hello' }).length;
    for (let length = 1; length < valid.length; length++) {
      if (length !== boundary) expect(() => render(valid.subarray(0, length))).toThrow(MalformedMessageError);
    }
    expect(() => render(Buffer.from([0x78, 0x01]))).toThrow(MalformedMessageError); // string field as a varint
    expect(() => render(Buffer.from([0x00]))).toThrow(MalformedMessageError); // field number 0
  });

  it('never writes invalid JSON nor throws anything but MalformedMessageError on random bytes', () => {
    const render = compile(
      Everything,
      Everything.fields.map((candidate) => candidate.name),
    );
    const valid = encode({
      fString: 'seed',
      rNested: [{ a: 1 }],
      mStringInt32: { a: 1 },
      when: { seconds: 1n },
    });
    expectFlippedBytesRenderedOrRefused(render, valid, 42);
  });

  it('refuses response fields that are unknown or would repeat an envelope key', () => {
    expect(() => compile(Everything, ['nope'])).toThrow('has no field "nope"');
    expect(compile(Nested, ['a', 'a'])(Buffer.alloc(0)).toString()).toBe(',"a":0');
    const keyed = registryOf(
      create(FileDescriptorProtoSchema, {
        name: 'keyed.proto',
        package: 'keyed',
        syntax: 'proto3',
        messageType: [message('Keyed', [field('key', 1, Type.INT32)])],
      }),
    ).getMessage('keyed.Keyed')!;
    expect(() => compile(keyed, ['key'])).toThrow('would repeat an envelope key');
  });

  it('renders messages of no package named like Object.prototype members, and a field named __proto__', () => {
    // `constructor` was looked up among the wrapper types and found Object, which is no scalar.
    const odd = registryOf(
      create(FileDescriptorProtoSchema, {
        name: 'odd-names.proto',
        syntax: 'proto3',
        messageType: [
          message('constructor', [field('price', 1, Type.INT32)]),
          message('toString', [
            field('inner', 1, Type.MESSAGE, { typeName: '.constructor' }),
            field('__proto__', 2, Type.STRING),
          ]),
        ],
      }),
    );
    const outer = odd.getMessage('toString')!;
    const bytes = Buffer.from(
      toBinary(outer, create(outer, { inner: { price: 3 }, [outer.fields[1]!.localName]: 'p' } as Init)),
    );
    expect(compile(outer, ['inner', '__proto__'])(bytes).toString()).toBe(
      ',"inner":{"price":3},"__proto__":"p"',
    );
  });
});

describe('compileResponseRenderer: Struct, Value, ListValue, FieldMask and NullValue', () => {
  const file = create(FileDescriptorProtoSchema, {
    name: 'test/loose.proto',
    package: 'test.loose.v1',
    syntax: 'proto3',
    dependency: ['google/protobuf/struct.proto', 'google/protobuf/field_mask.proto'],
    messageType: [
      message('Loose', [
        field('st', 1, Type.MESSAGE, { typeName: '.google.protobuf.Struct' }),
        field('val', 2, Type.MESSAGE, { typeName: '.google.protobuf.Value' }),
        field('lv', 3, Type.MESSAGE, { typeName: '.google.protobuf.ListValue' }),
        field('mask', 4, Type.MESSAGE, { typeName: '.google.protobuf.FieldMask' }),
        field('nothing', 5, Type.ENUM, { typeName: '.google.protobuf.NullValue' }),
        field('vals', 6, Type.MESSAGE, { repeated: true, typeName: '.google.protobuf.Value' }),
        field('after', 7, Type.STRING),
      ]),
    ],
  });
  const looseRegistry = createFileRegistry(
    create(FileDescriptorSetSchema, {
      file: [file_google_protobuf_struct.proto, file_google_protobuf_field_mask.proto, file],
    }),
  );
  const Loose = looseRegistry.getMessage('test.loose.v1.Loose')!;
  const FIELDS = ['st', 'val', 'lv', 'mask', 'nothing', 'vals', 'after'];
  /** Encodes a message given in proto3 JSON, as a service would send it. */
  const encodeLoose = (json: Record<string, unknown>) =>
    Buffer.from(toBinary(Loose, fromJson(Loose, json as never)));

  it('renders them as proto3 JSON does, as the gateway reads them in a request', () => {
    // Parsed from text, so that "__proto__" is a key like the others.
    const sent = JSON.parse(
      '{"st":{"a":1,"b":[true,null,"x"],"c":{"d":{}},"__proto__":"p"},"val":{"x":[1.5]},"lv":[1,"a",null],' +
        '"mask":"fooBar,baz.quxQuux","vals":["s",2,false,null,{}],"after":"z"}',
    ) as Record<string, unknown>;
    const rendered = compile(Loose, FIELDS)(encodeLoose(sent)).toString();
    // Rendered as plain messages, st was {"fields":{"a":{"number_value":1},...}} and mask {"paths":[...]}.
    expect(JSON.parse(`{${rendered.slice(1)}}`)).toEqual({ ...sent, nothing: null });
    expect(rendered).toContain(',"nothing":null,');
    expect(rendered).toContain('"__proto__":"p"');
  });

  it('renders them unset as null, an empty list, and a Value list element after its neighbours', () => {
    expect(compile(Loose, FIELDS)(Buffer.alloc(0)).toString()).toBe(
      ',"st":null,"val":null,"lv":null,"mask":null,"nothing":null,"vals":[],"after":""',
    );
    expect(compile(Loose, ['vals', 'after'])(encodeLoose({ vals: [[1], 'x'], after: 'y' })).toString()).toBe(
      ',"vals":[[1],"x"],"after":"y"',
    );
  });

  it('merges a Struct sent in two parts, and writes a non-finite number as the gateway writes doubles', () => {
    const first = encodeLoose({ st: { a: 1 } });
    const second = encodeLoose({ st: { b: 2 } });
    expect(compile(Loose, ['st'])(Buffer.concat([first, second])).toString()).toBe(',"st":{"a":1,"b":2}');
    const nan = Buffer.from(
      toBinary(Loose, create(Loose, { val: { kind: { case: 'numberValue', value: Number.NaN } } } as never)),
    );
    expect(compile(Loose, ['val'])(nan).toString()).toBe(',"val":"NaN"');
  });

  it('refuses a Value nested past the depth limit, or bytes that do not decode, as MalformedMessageError', () => {
    let deep: unknown = { kind: { case: 'numberValue', value: 1 } };
    for (let level = 0; level < 200; level++)
      deep = { kind: { case: 'listValue', value: { values: [deep] } } };
    const bytes = Buffer.from(toBinary(Loose, create(Loose, { val: deep } as never)));
    expect(() => compile(Loose, ['val'])(bytes)).toThrow(MalformedMessageError);
    // st: a Struct whose field 1 (a map entry) is a truncated varint.
    expect(() => compile(Loose, ['st'])(Buffer.from([0x0a, 0x02, 0x08, 0xff]))).toThrow(
      MalformedMessageError,
    );
  });
});

describe('compileResponseRenderer: google.protobuf.Any', () => {
  // What a node registers: test.anything.v1 with any.proto and timestamp.proto, nothing more.
  const anyRegistry = registryOfDescriptorSet(descriptorSetOf(anythingFile()));
  const types = anyTypesOf(anyRegistry);
  const Holder = anyRegistry.getMessage('test.anything.v1.Holder')!;
  const Payload = anyRegistry.getMessage('test.anything.v1.Payload')!;
  const FIELDS = ['item', 'items', 'by_name'];
  const PAYLOAD = 'type.googleapis.com/test.anything.v1.Payload';
  const pack = (desc: DescMessage, init: Record<string, unknown>): Any =>
    anyPack(desc, create(desc, init as Init));
  const payload = (init: Record<string, unknown>) => pack(Payload, init);
  const encodeHolder = (init: Record<string, unknown>) =>
    Buffer.from(toBinary(Holder, create(Holder, init as Init)));
  const render = (init: Record<string, unknown>, fields = ['item']) =>
    compile(Holder, fields, types)(encodeHolder(init)).toString();

  it('renders a message of the descriptor set as "@type" then its fields, as the rest of the answer', () => {
    expect(
      render({ item: payload({ count: 5, big: 2n ** 60n, data: new Uint8Array([1, 2]), label: 'x' }) }),
    ).toBe(
      `,"item":{"@type":"${PAYLOAD}","count":5,"big":"1152921504606846976","data":"AQI=","label":"x",` +
        '"inner":null,"when":null}',
    );
    // An Any in the payload, a Timestamp in that; an empty message of the set.
    const inner = payload({ count: 7, when: { seconds: 1604503907n, nanos: 123000000 } });
    expect(render({ item: payload({ inner }) })).toBe(
      `,"item":{"@type":"${PAYLOAD}","count":0,"big":0,"data":"","label":"",` +
        `"inner":{"@type":"${PAYLOAD}","count":7,"big":0,"data":"","label":"","inner":null,` +
        '"when":"2020-11-04T15:31:47.123Z"},"when":null}',
    );
    expect(render({ item: pack(EmptySchema, {}) })).toBe(
      ',"item":{"@type":"type.googleapis.com/google.protobuf.Empty"}',
    );
  });

  it('renders a well-known type under "value", those the set does not import included', () => {
    const cases: [Any, string][] = [
      [pack(TimestampSchema, { seconds: 1604503907n, nanos: 123000000 }), '"2020-11-04T15:31:47.123Z"'],
      [pack(DurationSchema, { seconds: 1n, nanos: 500000000 }), '"1.500s"'],
      [pack(Int64ValueSchema, { value: 12n }), '12'],
      [pack(Int64ValueSchema, {}), '0'],
      [anyPack(StructSchema, fromJson(StructSchema, { a: [1, 'b'] })), '{"a":[1,"b"]}'],
      [
        pack(AnySchema, payload({ count: 3 })),
        `{"@type":"${PAYLOAD}","count":3,"big":0,"data":"","label":"","inner":null,"when":null}`,
      ],
    ];
    for (const [any, value] of cases) {
      expect(render({ item: any }), any.typeUrl).toBe(`,"item":{"@type":"${any.typeUrl}","value":${value}}`);
    }
  });

  it('renders Anys in lists and maps, an empty Any as {}, an unset one as null', () => {
    expect(
      render(
        {
          items: [payload({ count: 1 }), create(AnySchema), pack(Int64ValueSchema, { value: 2n })],
          byName: { a: payload({ label: 'z' }) },
        },
        FIELDS,
      ),
    ).toBe(
      `,"item":null,"items":[{"@type":"${PAYLOAD}","count":1,"big":0,"data":"","label":"","inner":null,` +
        '"when":null},{},{"@type":"type.googleapis.com/google.protobuf.Int64Value","value":2}],' +
        `"by_name":{"a":{"@type":"${PAYLOAD}","count":0,"big":0,"data":"","label":"z","inner":null,"when":null}}`,
    );
  });

  it('renders a type the descriptor set does not define as its URL and its bytes in base64', () => {
    const secret = create(AnySchema, {
      typeUrl: 'type.googleapis.com/other.v1.Secret',
      value: new Uint8Array([1, 2]),
    });
    expect(render({ item: secret, items: [secret] }, ['item', 'items'])).toBe(
      ',"item":{"@type":"type.googleapis.com/other.v1.Secret","value":"AQI="},' +
        '"items":[{"@type":"type.googleapis.com/other.v1.Secret","value":"AQI="}]',
    );
    // A value without a type, and a route compiled without the node's types.
    expect(render({ item: create(AnySchema, { value: new Uint8Array([3]) }) })).toBe(
      ',"item":{"@type":"","value":"Aw=="}',
    );
    expect(compile(Holder, ['item'])(encodeHolder({ item: payload({ count: 1 }) })).toString()).toBe(
      `,"item":{"@type":"${PAYLOAD}","value":"CAE="}`,
    );
  });

  it('merges an Any sent in two parts as protobuf does: the last type URL and value win', () => {
    const first = encodeHolder({ item: payload({ count: 1 }) });
    const second = encodeHolder({ item: pack(Int64ValueSchema, { value: 9n }) });
    expect(compile(Holder, ['item'], types)(Buffer.concat([first, second])).toString()).toBe(
      ',"item":{"@type":"type.googleapis.com/google.protobuf.Int64Value","value":9}',
    );
  });

  it('never writes invalid JSON nor throws anything but MalformedMessageError on random bytes', () => {
    const renderHolder = compile(Holder, FIELDS, types);
    const valid = encodeHolder({
      item: payload({ count: 1, label: 'x', inner: pack(Int64ValueSchema, { value: 2n }) }),
      items: [
        pack(TimestampSchema, { seconds: 1n }),
        create(AnySchema, { typeUrl: 'x/y', value: new Uint8Array([1]) }),
      ],
      byName: { a: pack(EmptySchema, {}) },
    });
    expectFlippedBytesRenderedOrRefused(renderHolder, valid, 7);
  });

  it('refuses a payload that does not decode, and Anys nested past the depth limit', () => {
    const broken = create(AnySchema, { typeUrl: PAYLOAD, value: new Uint8Array([0x08]) });
    expect(() => render({ item: broken })).toThrow(MalformedMessageError);
    let any = payload({ count: 1 });
    for (let level = 0; level < 120; level++)
      any = pack(AnySchema, any as unknown as Record<string, unknown>);
    expect(() => render({ item: any })).toThrow(MalformedMessageError);
  });
});
