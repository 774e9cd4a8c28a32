import { type DescEnum, type DescField, type DescMessage, ScalarType } from '@bufbuild/protobuf';
import { protoCamelCase } from '@bufbuild/protobuf/reflect';
import { BinaryWriter, FLOAT32_MAX, WireType } from '@bufbuild/protobuf/wire';
import { WRAPPER_SCALARS } from './wrapper-types.js';

/**
 * A parameter that cannot become its field's value. The gateway answers it as the book does, with
 * "Invalid Parameters"; `detail` (which field, what was expected) is for logs.
 */
export class InvalidParameterError extends Error {
  override readonly name = 'InvalidParameterError';
}

/** Parameters as a query string or a form body gives them: every value a string, keys may repeat. */
export type TextParams = Iterable<[key: string, value: string]>;

/** Builds the protobuf bytes of one route's request message from REST input. */
export interface RequestTranscoder {
  /** From a query string or a form body; throws {@link InvalidParameterError}. */
  fromText(params: TextParams): Buffer;
  /** From a parsed JSON object; throws {@link InvalidParameterError}. */
  fromJson(object: Record<string, unknown>): Buffer;
}

/**
 * Compiles, once per route, the conversion of REST parameters into a request message, field by
 * field from the descriptor. Why not a generic JSON-to-message library: protobufjs `fromObject`
 * coerces ("abc" becomes 0, "1.9" becomes 1), and REST input must instead be checked value by value.
 *
 * A parameter is matched to a field by its proto name or its JSON name; other parameters are
 * ignored (the book ignores `passwordConfirm`). JSON `null` leaves a field unset. Per field type:
 *
 * - int32, sint32, sfixed32, uint32, fixed32: a JSON integer or a decimal integer string within the
 *   type's range ("1000" is 1000; "abc", "1.9", "", 1.5, 2^31 for int32, true, objects are invalid);
 * - 64-bit integers: the same, as exact integers: JSON numbers only up to 2^53, larger as strings;
 * - float, double: a finite JSON number or numeric string (float also within float32's range);
 * - bool: true, false, "true", "false";
 * - string: a string only (a JSON number for a string field is invalid, as in proto3 JSON);
 * - bytes: standard or URL-safe base64, padded or not;
 * - enum: the value's name, or a number the enum defines;
 * - message: a JSON object, converted by the same rules; google.protobuf.Timestamp also takes an
 *   RFC 3339 string, Duration "1.5s", the wrapper types their bare value. A query string or form
 *   cannot carry other messages (no dotted keys): such a parameter is invalid;
 * - repeated: a JSON array, or a query/form key given once or more;
 * - map: a JSON object (its keys converted by the key type); not from a query string or form.
 *
 * A key that names a field twice (its proto name and its JSON name, or a singular field repeated in
 * a query) or two members of one oneof is invalid too: guessing which one was meant is not safe.
 */
export function compileRequestTranscoder(message: DescMessage): RequestTranscoder {
  const root = new MessageTranscoder(message, new Map());
  return {
    fromText(params) {
      const values = root.fromText(params);
      return values ? root.encodeRoot(values) : EMPTY;
    },
    fromJson(object) {
      const values = root.fromObject(object, 0);
      return values ? root.encodeRoot(values) : EMPTY;
    },
  };
}

const EMPTY = Buffer.alloc(0);
/** Deeper JSON nesting than this is refused, so a recursive message cannot exhaust the stack. */
const MAX_DEPTH = 32;

/** A message's converted fields, by field index; undefined: not given. */
type Values = unknown[];

/** Converts one JSON or text value to a field's value (an element's, for a list). */
type Converter = (value: unknown, depth: number) => unknown;

enum Shape {
  Single,
  List,
  Map,
}

interface InputField {
  readonly index: number;
  readonly name: string;
  readonly number: number;
  readonly shape: Shape;
  readonly oneof: number;
  /** Converts a value, or a list element, or a map value. */
  readonly convert: Converter;
  /** Whether a query or form string can be converted (not for a message or a map). */
  readonly textual: boolean;
  /** Writes one converted value (without its tag). */
  readonly write: (writer: BinaryWriter, value: unknown) => void;
  readonly wire: WireType;
  readonly packed: boolean;
  /** For a map: the key's type. */
  readonly mapKey?: {
    convert: Converter;
    write: (writer: BinaryWriter, value: unknown) => void;
    wire: WireType;
  };
}

class MessageTranscoder {
  readonly #fields: InputField[];
  readonly #byNumberOrder: InputField[];
  readonly #byKey = new Map<string, InputField>();
  readonly #typeName: string;

  constructor(desc: DescMessage, cache: Map<string, MessageTranscoder>) {
    this.#typeName = desc.typeName;
    // Registered before its fields are compiled, so a recursive type finds itself.
    cache.set(desc.typeName, this);
    this.#fields = desc.fields.map((field, index) => inputField(field, index, desc, cache));
    this.#byNumberOrder = [...this.#fields].sort((a, b) => a.number - b.number);
    desc.fields.forEach((field, index) => {
      const input = this.#fields[index]!;
      this.#byKey.set(field.name, input);
      // protoc always writes json_name; a descriptor built by hand may not, and then it is derived.
      this.#byKey.set(field.jsonName || protoCamelCase(field.name), input);
    });
  }

  /** Converts a JSON object; undefined when no known field was given. */
  fromObject(object: Record<string, unknown>, depth: number): Values | undefined {
    if (depth > MAX_DEPTH) throw new InvalidParameterError(`${this.#typeName}: nested too deeply`);
    let values: Values | undefined;
    for (const key in object) {
      const field = this.#byKey.get(key);
      const value = object[key];
      if (!field || value === null) continue;
      values ??= new Array(this.#fields.length);
      if (values[field.index] !== undefined) throw invalid(field, 'is given twice');
      this.#claimOneof(values, field);
      values[field.index] = this.#convertJson(field, value, depth);
    }
    return values;
  }

  /** Converts query or form parameters; undefined when no known field was given. */
  fromText(params: TextParams): Values | undefined {
    let values: Values | undefined;
    for (const [key, text] of params) {
      const field = this.#byKey.get(key);
      if (!field) continue;
      if (!field.textual) throw invalid(field, 'cannot be given in a query string or a form');
      values ??= new Array(this.#fields.length);
      const converted = field.convert(text, 0);
      if (field.shape === Shape.List) {
        const list = values[field.index] as unknown[] | undefined;
        if (list) list.push(converted);
        else values[field.index] = [converted];
      } else {
        if (values[field.index] !== undefined) throw invalid(field, 'is given twice');
        this.#claimOneof(values, field);
        values[field.index] = converted;
      }
    }
    return values;
  }

  encodeRoot(values: Values): Buffer {
    const writer = new BinaryWriter();
    this.encode(values, writer);
    const bytes = writer.finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Writes the given fields in field-number order, the canonical order. */
  encode(values: Values, writer: BinaryWriter): void {
    for (const field of this.#byNumberOrder) {
      const value = values[field.index];
      if (value === undefined) continue;
      switch (field.shape) {
        case Shape.Single:
          field.write(writer.tag(field.number, field.wire), value);
          break;
        case Shape.List:
          if (field.packed) {
            writer.tag(field.number, WireType.LengthDelimited).fork();
            for (const element of value as unknown[]) field.write(writer, element);
            writer.join();
          } else {
            for (const element of value as unknown[])
              field.write(writer.tag(field.number, field.wire), element);
          }
          break;
        case Shape.Map: {
          const key = field.mapKey!;
          for (const [entryKey, entryValue] of value as [unknown, unknown][]) {
            writer.tag(field.number, WireType.LengthDelimited).fork();
            key.write(writer.tag(1, key.wire), entryKey);
            field.write(writer.tag(2, field.wire), entryValue);
            writer.join();
          }
          break;
        }
      }
    }
  }

  #convertJson(field: InputField, value: unknown, depth: number): unknown {
    switch (field.shape) {
      case Shape.Single:
        return field.convert(value, depth);
      case Shape.List:
        if (!Array.isArray(value)) throw invalid(field, 'must be an array');
        return value.map((element) => {
          if (element === null) throw invalid(field, 'must not hold null');
          return field.convert(element, depth);
        });
      case Shape.Map: {
        if (!isObject(value)) throw invalid(field, 'must be an object');
        const entries: [unknown, unknown][] = [];
        for (const key in value) {
          const entryValue = value[key];
          if (entryValue === null) throw invalid(field, 'must not hold null');
          entries.push([field.mapKey!.convert(key, depth), field.convert(entryValue, depth)]);
        }
        return entries;
      }
    }
  }

  #claimOneof(values: Values, field: InputField): void {
    if (field.oneof < 0) return;
    for (const other of this.#fields) {
      if (other !== field && other.oneof === field.oneof && values[other.index] !== undefined) {
        throw invalid(field, `and ${other.name} are members of one oneof`);
      }
    }
  }
}

function inputField(
  field: DescField,
  index: number,
  parent: DescMessage,
  cache: Map<string, MessageTranscoder>,
): InputField {
  const base = {
    index,
    name: field.name,
    number: field.number,
    oneof: field.oneof ? parent.oneofs.indexOf(field.oneof) : -1,
  };
  const label = `${parent.typeName}.${field.name}`;
  switch (field.fieldKind) {
    case 'scalar':
      return { ...base, shape: Shape.Single, packed: false, ...scalarCodec(field.scalar, label) };
    case 'enum':
      return { ...base, shape: Shape.Single, packed: false, ...enumCodec(field.enum, label) };
    case 'message':
      return { ...base, shape: Shape.Single, packed: false, ...messageCodec(field.message, label, cache) };
    case 'list': {
      const codec =
        field.listKind === 'scalar'
          ? scalarCodec(field.scalar, label)
          : field.listKind === 'enum'
            ? enumCodec(field.enum, label)
            : messageCodec(field.message, label, cache);
      return { ...base, shape: Shape.List, packed: field.packed, ...codec };
    }
    case 'map': {
      const codec =
        field.mapKind === 'scalar'
          ? scalarCodec(field.scalar, label)
          : field.mapKind === 'enum'
            ? enumCodec(field.enum, label)
            : messageCodec(field.message, label, cache);
      const key = scalarCodec(field.mapKey, `${label} key`);
      return {
        ...base,
        shape: Shape.Map,
        packed: false,
        ...codec,
        textual: false,
        mapKey: { convert: key.convert, write: key.write, wire: key.wire },
      };
    }
  }
}

interface Codec {
  convert: Converter;
  textual: boolean;
  write: (writer: BinaryWriter, value: unknown) => void;
  wire: WireType;
}

function invalid(field: { name: string }, problem: string): InvalidParameterError {
  return new InvalidParameterError(`${field.name} ${problem}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const INTEGER = /^-?[0-9]+$/;
const DECIMAL = /^-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function scalarCodec(type: ScalarType, label: string): Codec {
  const fail = (expected: string) => new InvalidParameterError(`${label} must be ${expected}`);
  switch (type) {
    case ScalarType.INT32:
      return numeric(int32Converter(-0x80000000, 0x7fffffff, fail), WireType.Varint, (w, v) =>
        w.int32(v as number),
      );
    case ScalarType.SINT32:
      return numeric(int32Converter(-0x80000000, 0x7fffffff, fail), WireType.Varint, (w, v) =>
        w.sint32(v as number),
      );
    case ScalarType.SFIXED32:
      return numeric(int32Converter(-0x80000000, 0x7fffffff, fail), WireType.Bit32, (w, v) =>
        w.sfixed32(v as number),
      );
    case ScalarType.UINT32:
      return numeric(int32Converter(0, 0xffffffff, fail), WireType.Varint, (w, v) => w.uint32(v as number));
    case ScalarType.FIXED32:
      return numeric(int32Converter(0, 0xffffffff, fail), WireType.Bit32, (w, v) => w.fixed32(v as number));
    case ScalarType.INT64:
      return numeric(int64Converter(INT64_MIN, INT64_MAX, fail), WireType.Varint, (w, v) =>
        w.int64(v as bigint),
      );
    case ScalarType.SINT64:
      return numeric(int64Converter(INT64_MIN, INT64_MAX, fail), WireType.Varint, (w, v) =>
        w.sint64(v as bigint),
      );
    case ScalarType.SFIXED64:
      return numeric(int64Converter(INT64_MIN, INT64_MAX, fail), WireType.Bit64, (w, v) =>
        w.sfixed64(v as bigint),
      );
    case ScalarType.UINT64:
      return numeric(int64Converter(0n, UINT64_MAX, fail), WireType.Varint, (w, v) => w.uint64(v as bigint));
    case ScalarType.FIXED64:
      return numeric(int64Converter(0n, UINT64_MAX, fail), WireType.Bit64, (w, v) => w.fixed64(v as bigint));
    case ScalarType.FLOAT:
      return numeric(floatConverter(FLOAT32_MAX, fail), WireType.Bit32, (w, v) => w.float(v as number));
    case ScalarType.DOUBLE:
      return numeric(floatConverter(Number.MAX_VALUE, fail), WireType.Bit64, (w, v) => w.double(v as number));
    case ScalarType.BOOL:
      return numeric(
        (value) => {
          if (value === true || value === 'true') return true;
          if (value === false || value === 'false') return false;
          throw fail('true or false');
        },
        WireType.Varint,
        (w, v) => w.bool(v as boolean),
      );
    case ScalarType.STRING:
      return numeric(
        (value) => {
          if (typeof value === 'string') return value;
          throw fail('a string');
        },
        WireType.LengthDelimited,
        (w, v) => w.string(v as string),
      );
    case ScalarType.BYTES:
      return numeric(
        (value) => {
          if (typeof value === 'string' && BASE64.test(value)) {
            const unpadded = value.replace(/=+$/, '');
            if (unpadded.length % 4 !== 1 && (unpadded.length === value.length || value.length % 4 === 0)) {
              return Buffer.from(value, 'base64');
            }
          }
          throw fail('base64');
        },
        WireType.LengthDelimited,
        (w, v) => w.bytes(v as Uint8Array),
      );
  }
}

function numeric(convert: Converter, wire: WireType, write: Codec['write']): Codec {
  return { convert, textual: true, write, wire };
}

function int32Converter(min: number, max: number, fail: (expected: string) => Error): Converter {
  const expected = `an integer from ${min} to ${max}`;
  return (value) => {
    let number: number;
    if (typeof value === 'number') number = value;
    else if (typeof value === 'string' && INTEGER.test(value)) number = Number(value);
    else throw fail(expected);
    if (!Number.isInteger(number) || number < min || number > max) throw fail(expected);
    // Normalises -0.
    return number + 0;
  };
}

function int64Converter(min: bigint, max: bigint, fail: (expected: string) => Error): Converter {
  const expected = `an integer from ${min} to ${max} (a string beyond 2^53)`;
  return (value) => {
    let number: bigint;
    if (typeof value === 'number') {
      // Beyond 2^53 a JSON number may already have been rounded: only a string is exact there.
      if (!Number.isSafeInteger(value)) throw fail(expected);
      number = BigInt(value);
    } else if (typeof value === 'string' && INTEGER.test(value)) {
      // Leading zeros dropped, 20 digits at most: a long string cannot make BigInt work hard.
      const digits = value.replace(/^(-?)0+(?=[0-9])/, '$1');
      if (digits.length > 21) throw fail(expected);
      number = BigInt(digits);
    } else {
      throw fail(expected);
    }
    if (number < min || number > max) throw fail(expected);
    return number;
  };
}

function floatConverter(limit: number, fail: (expected: string) => Error): Converter {
  const expected = 'a finite number';
  return (value) => {
    let number: number;
    if (typeof value === 'number') number = value;
    else if (typeof value === 'string' && DECIMAL.test(value)) number = Number(value);
    else throw fail(expected);
    if (!Number.isFinite(number) || Math.abs(number) > limit) throw fail(expected);
    return number;
  };
}

function enumCodec(desc: DescEnum, label: string): Codec {
  const byName = new Map(desc.values.map((value) => [value.name, value.number]));
  const numbers = new Set(desc.values.map((value) => value.number));
  const fail = () => new InvalidParameterError(`${label} must be one of ${[...byName.keys()].join(', ')}`);
  return numeric(
    (value) => {
      if (typeof value === 'string') {
        const number = byName.get(value) ?? (INTEGER.test(value) ? Number(value) : Number.NaN);
        if (numbers.has(number)) return number;
      } else if (typeof value === 'number' && numbers.has(value)) {
        return value;
      }
      throw fail();
    },
    WireType.Varint,
    (w, v) => w.int32(v as number),
  );
}

function messageCodec(desc: DescMessage, label: string, cache: Map<string, MessageTranscoder>): Codec {
  const transcoder = cache.get(desc.typeName) ?? new MessageTranscoder(desc, cache);
  const fromString = wellKnownFromString(desc, label);
  return {
    convert: (value, depth) => {
      if (fromString && !isObject(value)) return fromString(value);
      if (!isObject(value)) throw new InvalidParameterError(`${label} must be an object`);
      return transcoder.fromObject(value, depth + 1) ?? [];
    },
    textual: fromString !== undefined,
    write: (writer, value) => {
      writer.fork();
      transcoder.encode(value as Values, writer);
      writer.join();
    },
    wire: WireType.LengthDelimited,
  };
}

const RFC3339 =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?([Zz]|([+-])([0-9]{2}):([0-9]{2}))$/;
const DURATION = /^(-)?([0-9]+)(?:\.([0-9]{1,9}))?s$/;
/** Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. */
const TIMESTAMP_SECONDS = { min: -62135596800, max: 253402300799 };
const DURATION_SECONDS_MAX = 315576000000;

/**
 * The value forms of well-known types, as proto3 JSON writes them; the result is the message's
 * field values, so that it encodes like any message.
 */
function wellKnownFromString(desc: DescMessage, label: string): ((value: unknown) => Values) | undefined {
  const wrapped = WRAPPER_SCALARS[desc.typeName];
  if (wrapped !== undefined) {
    const convert = scalarCodec(wrapped, label).convert;
    return (value) => [convert(value, 0)];
  }
  if (desc.typeName === 'google.protobuf.Timestamp') {
    return (value) => {
      const match = typeof value === 'string' ? RFC3339.exec(value) : null;
      if (match) {
        const [
          ,
          year,
          month,
          day,
          hour,
          minute,
          second,
          fraction = '',
          zone,
          sign,
          offsetHours,
          offsetMinutes,
        ] = match;
        const millis = Date.UTC(
          Number(year),
          Number(month) - 1,
          Number(day),
          Number(hour),
          Number(minute),
          0,
        );
        const date = new Date(millis);
        const offset =
          zone!.toUpperCase() === 'Z'
            ? 0
            : (sign === '-' ? -1 : 1) * (Number(offsetHours) * 3600 + Number(offsetMinutes) * 60);
        // Date.UTC rolls 2021-02-31 over to March: a date that changed was not a real date.
        const real =
          date.getUTCDate() === Number(day) &&
          date.getUTCMonth() === Number(month) - 1 &&
          Number(hour) < 24 &&
          Number(minute) < 60 &&
          Number(second) < 60 &&
          Number(offsetHours ?? 0) < 24 &&
          Number(offsetMinutes ?? 0) < 60;
        // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear puts them back.
        date.setUTCFullYear(Number(year));
        const seconds = date.getTime() / 1000 + Number(second) - offset;
        if (real && seconds >= TIMESTAMP_SECONDS.min && seconds <= TIMESTAMP_SECONDS.max) {
          return [BigInt(seconds), Number(fraction.padEnd(9, '0'))];
        }
      }
      throw new InvalidParameterError(`${label} must be an RFC 3339 date-time, e.g. 2020-11-04T15:31:47Z`);
    };
  }
  if (desc.typeName === 'google.protobuf.Duration') {
    return (value) => {
      const match = typeof value === 'string' ? DURATION.exec(value) : null;
      if (match) {
        const [, minus, whole, fraction = ''] = match;
        const seconds = Number(whole);
        if (seconds <= DURATION_SECONDS_MAX) {
          const sign = minus ? -1 : 1;
          const nanos = Number(fraction.padEnd(9, '0'));
          return [BigInt(sign * seconds), sign * nanos + 0];
        }
      }
      throw new InvalidParameterError(`${label} must be a duration such as "1.5s"`);
    };
  }
  return undefined;
}
