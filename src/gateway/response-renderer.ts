import {
  type DescEnum,
  type DescField,
  type DescMessage,
  type Registry,
  ScalarType,
} from '@bufbuild/protobuf';
import { hasCustomJsonRepresentation } from '@bufbuild/protobuf/wkt';
import { ANY_TYPE, anyMessageType, WELL_KNOWN_ANY_TYPES } from './any-types.js';
import { ENVELOPE_ROOM } from './envelope.js';
import { JsonWriter } from './json-writer.js';
import { STRUCT_TYPES, structJson } from './struct-json.js';
import {
  int64Json,
  int64Number,
  MalformedMessageError,
  sint64Json,
  uint64Json,
  Wire,
  WireReader,
} from './wire-reader.js';
import { WRAPPER_SCALARS } from './wrapper-types.js';

/**
 * Turns the protobuf bytes of a response into the JSON text that follows the book's envelope:
 * `,"results":[{"id":1,...}]` for a route whose response fields are `["results"]`, or nothing for a
 * route with none, then the closing `}`. The result starts with {@link ENVELOPE_ROOM} free bytes where
 * successBody() writes `{"key":N,"errorcode":0,"errormessage":"success"`: one buffer per response.
 */
export type ResponseRenderer = (bytes: Buffer) => Buffer;

/**
 * Compiles, once per route, a renderer from a response message descriptor and the fields the route
 * shows, in the route's order. The JSON is the book's shape rather than canonical proto3 JSON:
 *
 * - every field appears, even at its default (proto3 JSON would omit a 0 or an empty string; the
 *   book's rows always carry every column), named by its proto field name, nested message fields in
 *   declaration order; an unset message field is `null`; of a oneof, only the member that is set;
 * - 32-bit integers and floats are JSON numbers; 64-bit integers are numbers when exact (|n| < 2^53)
 *   and decimal strings otherwise; NaN and infinities are the strings "NaN", "Infinity", "-Infinity";
 * - enums by value name (a number the descriptor does not know stays a number), bytes as base64,
 *   repeated fields as arrays, maps as objects;
 * - google.protobuf.Timestamp as ISO 8601 UTC with milliseconds (Date#toISOString, e.g.
 *   "2020-11-04T15:31:47.000Z"; sub-millisecond digits are dropped, a value Date cannot hold is null),
 *   Duration as proto3 JSON ("1.5s"), the wrapper types as their bare value (null when unset),
 *   Struct, Value, ListValue and FieldMask in their proto3 JSON forms (see struct-json.ts),
 *   NullValue as null;
 * - google.protobuf.Any as proto3 JSON writes it: `{"@type":"<its type URL>",...}` with the fields
 *   of the message it holds, rendered as above, or `{"@type":...,"value":<JSON>}` for a well-known
 *   type with a JSON form of its own (those above, and Any); `{}` for an empty one. Its type is
 *   looked up in `types` (the node's descriptor set and the well-known types, see any-types.ts) and
 *   its renderer compiled the first time the route meets it. One it does not know (or cannot
 *   render: a proto2 group) is `{"@type":"<URL>","value":"<the bytes in base64>"}`, as a plain
 *   Any's fields would be, so that the rest of the answer still arrives (grpc-gateway fails the
 *   whole answer with a 500 there, its JSON marshaler refusing the type);
 *
 * It reads the wire format and writes JSON bytes directly, without building message objects. A
 * message whose fields arrive in declaration order (what every common encoder writes when the fields
 * are declared in number order) is rendered in one pass; any other order, a repeated singular field
 * to merge, a oneof or a map takes a second path that first notes where each field is. Bytes that are
 * not a valid encoding throw {@link MalformedMessageError}.
 */
export function compileResponseRenderer(
  message: DescMessage,
  responseFields: readonly string[],
  types: Registry = WELL_KNOWN_ANY_TYPES,
): ResponseRenderer {
  const fields: DescField[] = [];
  for (const name of responseFields) {
    const field = message.fields.find((candidate) => candidate.name === name);
    if (!field) throw new Error(`${message.typeName} has no field "${name}"`);
    if (ENVELOPE_KEYS.has(name)) throw new Error(`response field "${name}" would repeat an envelope key`);
    if (!fields.includes(field)) fields.push(field);
  }
  if (fields.length === 0) {
    return () => {
      const out = Buffer.allocUnsafe(ENVELOPE_ROOM + 1);
      out[ENVELOPE_ROOM] = 0x7d;
      return out;
    };
  }
  const compiler = new RendererCompiler(types);
  const projection = new MessageRenderer(message.typeName);
  projection.init(
    fields.map((field) => compiler.field(field, message)),
    true,
  );
  return (bytes) => {
    const out = new JsonWriter(ENVELOPE_ROOM + bytes.length * 2 + 64);
    out.skip(ENVELOPE_ROOM);
    projection.renderProjection(new WireReader(bytes), out);
    out.byte(0x7d);
    return out.finish();
  };
}

const ENVELOPE_KEYS = new Set(['key', 'errorcode', 'errormessage']);
/** Deeper nesting than this in a response is refused rather than risking the stack. */
const MAX_DEPTH = 100;

/** What a value is; scalar kinds are the ScalarType numbers. */
const ENUM = 100;
const MESSAGE = 101;

enum Shape {
  Single,
  Message,
  List,
  Map,
}

/** How to render one value: of a field, a list element or a map value. */
interface ValuePlan {
  readonly kind: number;
  /** The wire type of one value. */
  readonly wire: number;
  /** For an enum: each known number's JSON. */
  readonly enumNames: Map<number, string> | undefined;
  /** For a message. */
  readonly message: Renderer | undefined;
  /** JSON of an absent value. */
  readonly absent: Uint8Array;
}

interface FieldPlan extends ValuePlan {
  readonly number: number;
  /** `"name":`, encoded. */
  readonly key: Uint8Array;
  readonly shape: Shape;
  /** A list of varint or fixed-size values may come packed (one length-delimited run). */
  readonly packable: boolean;
  /** The index of its oneof in the message, or -1. */
  readonly oneof: number;
  readonly mapKey: ScalarType | undefined;
  readonly mapValue: ValuePlan | undefined;
}

/** Renders one message type, the reader at its length prefix. */
interface Renderer {
  render(reader: WireReader, out: JsonWriter, depth: number): void;
  /** Renders the merge of several occurrences (length-prefix positions) of a singular field. */
  renderMerged(reader: WireReader, out: JsonWriter, positions: readonly number[], depth: number): void;
}

/** Builds renderers for one route; message renderers are shared so that recursive types work. */
class RendererCompiler {
  readonly #messages = new Map<string, Renderer>();

  /** `types`: the messages an Any may hold (see AnyRenderer). */
  constructor(readonly types: Registry) {}

  message(desc: DescMessage): Renderer {
    const cached = this.#messages.get(desc.typeName);
    if (cached) return cached;
    const special = desc.typeName === ANY_TYPE ? new AnyRenderer(this) : wellKnownRenderer(desc);
    if (special) {
      this.#messages.set(desc.typeName, special);
      return special;
    }
    const renderer = new MessageRenderer(desc.typeName);
    // Registered before its fields are compiled, so a recursive type finds itself.
    this.#messages.set(desc.typeName, renderer);
    renderer.init(
      desc.fields.map((field) => this.field(field, desc)),
      false,
    );
    return renderer;
  }

  field(field: DescField, parent: DescMessage): FieldPlan {
    const base = {
      number: field.number,
      key: Buffer.from(`${JSON.stringify(field.name)}:`),
      oneof: field.oneof ? parent.oneofs.indexOf(field.oneof) : -1,
    };
    switch (field.fieldKind) {
      case 'scalar':
        return fieldPlan(base, Shape.Single, scalarPlan(field.scalar, field.getDefaultValue()));
      case 'enum':
        return fieldPlan(base, Shape.Single, enumPlan(field.enum, field.getDefaultValue()));
      case 'message':
        refuseGroups(field);
        return fieldPlan(base, Shape.Message, this.#messagePlan(field.message, 'null'));
      case 'list':
        if (field.listKind === 'message') {
          refuseGroups(field);
          return fieldPlan(base, Shape.List, this.#messagePlan(field.message, '[]'));
        }
        return fieldPlan(
          base,
          Shape.List,
          field.listKind === 'enum'
            ? enumPlan(field.enum, undefined, '[]')
            : scalarPlan(field.scalar, [], '[]'),
        );
      case 'map': {
        let value: ValuePlan;
        if (field.mapKind === 'message') value = this.#messagePlan(field.message, '{}');
        else if (field.mapKind === 'enum') value = enumPlan(field.enum, undefined);
        else value = scalarPlan(field.scalar, undefined);
        const plan = fieldPlan(base, Shape.Map, { ...value, absent: json('{}') }, field.mapKey, value);
        return plan;
      }
    }
  }

  #messagePlan(desc: DescMessage, absent: string): ValuePlan {
    return valuePlan(MESSAGE, Wire.LengthDelimited, undefined, this.message(desc), absent);
  }
}

function refuseGroups(field: { name: string; delimitedEncoding: boolean }): void {
  // Proto2 groups (and editions' DELIMITED encoding) are outside this gateway's scope.
  if (field.delimitedEncoding) throw new Error(`field "${field.name}" uses group encoding, not supported`);
}

function json(text: string): Uint8Array {
  return Buffer.from(text);
}

/** Every plan is made here, with the same properties in the same order, so V8 sees one shape. */
function valuePlan(
  kind: number,
  wire: number,
  enumNames: Map<number, string> | undefined,
  message: Renderer | undefined,
  absent: string,
): ValuePlan {
  return { kind, wire, enumNames, message, absent: json(absent) };
}

function fieldPlan(
  base: { number: number; key: Uint8Array; oneof: number },
  shape: Shape,
  value: ValuePlan,
  mapKey?: ScalarType,
  mapValue?: ValuePlan,
): FieldPlan {
  return {
    kind: value.kind,
    wire: shape === Shape.Map ? Wire.LengthDelimited : value.wire,
    enumNames: value.enumNames,
    message: value.message,
    absent: value.absent,
    number: base.number,
    key: base.key,
    shape,
    packable: shape === Shape.List && value.wire !== Wire.LengthDelimited,
    oneof: base.oneof,
    mapKey,
    mapValue,
  };
}

function scalarPlan(type: ScalarType, defaultValue: unknown, absent?: string): ValuePlan {
  return valuePlan(
    type,
    scalarWire(type),
    undefined,
    undefined,
    absent ?? scalarDefaultJson(type, defaultValue),
  );
}

function enumPlan(desc: DescEnum, defaultNumber: number | undefined, absent?: string): ValuePlan {
  // proto3 JSON writes google.protobuf.NullValue as null, whatever it holds, as a Value's null_value.
  if (desc.typeName === 'google.protobuf.NullValue') {
    return valuePlan(
      ENUM,
      Wire.Varint,
      new Map(desc.values.map((value) => [value.number, 'null'])),
      undefined,
      absent ?? 'null',
    );
  }
  const names = new Map(desc.values.map((value) => [value.number, JSON.stringify(value.name)]));
  // Without a declared default: 0 (proto3's rule), or the first value of an enum that lacks 0 (proto2's).
  const fallback =
    defaultNumber ?? (desc.values.some((value) => value.number === 0) ? 0 : (desc.values[0]?.number ?? 0));
  return valuePlan(ENUM, Wire.Varint, names, undefined, absent ?? names.get(fallback) ?? String(fallback));
}

/** Renders an ordinary message: all its fields in declaration order. */
class MessageRenderer implements Renderer {
  #fields: readonly FieldPlan[] = [];
  /** Field index by field number; numbers are small in practice, so an array beats a Map. */
  #byNumber: Int16Array | Map<number, number> = new Int16Array(0);
  #oneofCount = 0;
  /** Whether the one-pass path can ever apply (no oneofs, no maps, not a projection). */
  #onePass = false;

  constructor(readonly typeName: string) {}

  init(fields: readonly FieldPlan[], projection: boolean): void {
    this.#fields = fields;
    const highest = fields.reduce((max, field) => Math.max(max, field.number), 0);
    if (highest < 4096) {
      const byNumber = new Int16Array(highest + 1).fill(-1);
      fields.forEach((field, index) => {
        byNumber[field.number] = index;
      });
      this.#byNumber = byNumber;
    } else {
      this.#byNumber = new Map(fields.map((field, index) => [field.number, index]));
    }
    this.#oneofCount = fields.reduce((count, field) => Math.max(count, field.oneof + 1), 0);
    this.#onePass =
      !projection && this.#oneofCount === 0 && fields.every((field) => field.shape !== Shape.Map);
  }

  render(reader: WireReader, out: JsonWriter, depth: number): void {
    if (depth > MAX_DEPTH) throw new MalformedMessageError('message nested too deeply');
    const end = reader.delimitedEnd();
    if (this.#onePass) {
      const start = reader.pos;
      const mark = out.position;
      if (this.#renderInOrder(reader, out, end, depth)) return;
      out.rewind(mark);
      reader.pos = start;
    }
    const scan = new Scan(this.#fields.length);
    this.#scan(reader, scan, reader.pos, end);
    out.byte(0x7b);
    this.#emit(reader, out, scan, false, depth);
    out.byte(0x7d);
    // A caller reading on (the next list element) expects the reader after this message.
    reader.pos = end;
  }

  renderMerged(reader: WireReader, out: JsonWriter, positions: readonly number[], depth: number): void {
    if (depth > MAX_DEPTH) throw new MalformedMessageError('message nested too deeply');
    const scan = new Scan(this.#fields.length);
    for (const position of positions) {
      reader.pos = position;
      const end = reader.delimitedEnd();
      this.#scan(reader, scan, reader.pos, end);
    }
    out.byte(0x7b);
    this.#emit(reader, out, scan, false, depth);
    out.byte(0x7d);
  }

  /** Writes the fields of the whole buffer each as `,"name":value` (the route's projection). */
  renderProjection(reader: WireReader, out: JsonWriter): void {
    const scan = new Scan(this.#fields.length);
    this.#scan(reader, scan, 0, reader.buf.length);
    this.#emit(reader, out, scan, true, 0);
  }

  /**
   * The one-pass path: writes each field as it comes, defaults for the fields it skipped. Returns
   * false, having written garbage the caller rewinds, as soon as a field comes out of declaration
   * order or with an unexpected wire type; the scanning path then handles (or refuses) the message.
   */
  #renderInOrder(reader: WireReader, out: JsonWriter, end: number, depth: number): boolean {
    const fields = this.#fields;
    const byNumber = this.#byNumber;
    let next = 0;
    let openList = -1;
    out.byte(0x7b);
    while (reader.pos < end) {
      const tag = reader.varint32();
      const number = tag >>> 3;
      const wire = tag & 7;
      const index = byNumber instanceof Map ? (byNumber.get(number) ?? -1) : (byNumber[number] ?? -1);
      if (index < 0) {
        if (number === 0) return false;
        reader.skip(wire, number);
        continue;
      }
      const field = fields[index]!;
      if (index === openList) {
        if (wire !== field.wire) return false;
        out.byte(0x2c);
        writeValue(reader, out, field, depth);
        continue;
      }
      if (index < next || (wire !== field.wire && !(field.packable && wire === Wire.LengthDelimited))) {
        return false;
      }
      if (openList >= 0) {
        out.byte(0x5d);
        openList = -1;
      }
      this.#writeAbsent(out, next, index);
      if (index > 0) out.byte(0x2c);
      out.raw(field.key);
      next = index + 1;
      if (field.shape !== Shape.List) {
        writeValue(reader, out, field, depth);
      } else if (wire === field.wire) {
        out.byte(0x5b);
        writeValue(reader, out, field, depth);
        openList = index;
      } else {
        // A packed run; more elements of the same list after it take the other path.
        out.byte(0x5b);
        writePacked(reader, out, field, depth, false);
        out.byte(0x5d);
      }
      if (reader.pos > end) return false;
    }
    if (openList >= 0) out.byte(0x5d);
    this.#writeAbsent(out, next, fields.length);
    out.byte(0x7d);
    return reader.pos === end;
  }

  /** Writes fields `[from, to)` at their absent value, each with its leading comma but the first. */
  #writeAbsent(out: JsonWriter, from: number, to: number): void {
    const fields = this.#fields;
    for (let index = from; index < to; index++) {
      if (index > 0) out.byte(0x2c);
      out.raw(fields[index]!.key);
      out.raw(fields[index]!.absent);
    }
  }

  /** Records where each known field's value is; unknown fields are skipped. */
  #scan(reader: WireReader, scan: Scan, start: number, end: number): void {
    const fields = this.#fields;
    const byNumber = this.#byNumber;
    reader.pos = start;
    while (reader.pos < end) {
      const tag = reader.varint32();
      const number = tag >>> 3;
      const wire = tag & 7;
      if (number === 0) throw new MalformedMessageError('field number 0');
      const index = byNumber instanceof Map ? (byNumber.get(number) ?? -1) : (byNumber[number] ?? -1);
      if (index < 0) {
        reader.skip(wire, number);
      } else {
        const field = fields[index]!;
        const position = reader.pos;
        if (wire === field.wire) {
          reader.skip(wire, number);
          scan.last[index] = position;
          // Every occurrence counts for a list element, a map entry and a message part to merge.
          if (field.shape !== Shape.Single) scan.add(index, position);
        } else if (field.packable && wire === Wire.LengthDelimited) {
          reader.pos = reader.delimitedEnd();
          // A packed run is recorded as the bitwise complement of its position.
          scan.add(index, ~position);
        } else {
          throw new MalformedMessageError(`field ${number} has wire type ${wire}, expected ${field.wire}`);
        }
      }
      if (reader.pos > end) throw new MalformedMessageError('field runs past the end of its message');
    }
  }

  #emit(reader: WireReader, out: JsonWriter, scan: Scan, projection: boolean, depth: number): void {
    const fields = this.#fields;
    const winners = this.#oneofCount > 0 ? this.#oneofWinners(scan) : undefined;
    let first = !projection;
    for (let index = 0; index < fields.length; index++) {
      const field = fields[index]!;
      if (field.oneof >= 0 && winners![field.oneof] !== index) continue;
      if (first) first = false;
      else out.byte(0x2c);
      out.raw(field.key);
      const all = scan.all[index];
      switch (field.shape) {
        case Shape.Single: {
          const position = scan.last[index]!;
          if (position < 0) out.raw(field.absent);
          else {
            reader.pos = position;
            writeValue(reader, out, field, depth);
          }
          break;
        }
        case Shape.Message:
          // The occurrences of a singular message field merge, as protobuf parsing does.
          if (!all) out.raw(field.absent);
          else if (all.length === 1) {
            reader.pos = all[0]!;
            field.message!.render(reader, out, depth + 1);
          } else field.message!.renderMerged(reader, out, all, depth + 1);
          break;
        case Shape.List:
          writeList(reader, out, field, all, depth);
          break;
        case Shape.Map:
          writeMap(reader, out, field, all, depth);
          break;
      }
    }
  }

  /** For each oneof, the index of the member seen last on the wire (it wins, as in protobuf parsing). */
  #oneofWinners(scan: Scan): Int32Array {
    const winners = new Int32Array(this.#oneofCount).fill(-1);
    const positions = new Int32Array(this.#oneofCount).fill(-1);
    this.#fields.forEach((field, index) => {
      const position = scan.last[index]!;
      if (field.oneof >= 0 && position > positions[field.oneof]!) {
        positions[field.oneof] = position;
        winners[field.oneof] = index;
      }
    });
    return winners;
  }
}

/** Where the fields of one message are: positions just after their tags. */
class Scan {
  /** The last occurrence of each field, or -1. */
  readonly last: Int32Array;
  /** Every occurrence of each list, map or message field (packed runs as their complement). */
  readonly all: (number[] | undefined)[];

  constructor(fieldCount: number) {
    this.last = new Int32Array(fieldCount).fill(-1);
    this.all = new Array(fieldCount);
  }

  add(index: number, entry: number): void {
    const list = this.all[index];
    if (list) list.push(entry);
    else this.all[index] = [entry];
  }
}

function writeList(
  reader: WireReader,
  out: JsonWriter,
  field: FieldPlan,
  all: number[] | undefined,
  depth: number,
): void {
  out.byte(0x5b);
  let first = true;
  for (const entry of all ?? []) {
    if (entry >= 0) {
      if (first) first = false;
      else out.byte(0x2c);
      reader.pos = entry;
      writeValue(reader, out, field, depth);
    } else {
      reader.pos = ~entry;
      if (writePacked(reader, out, field, depth, !first)) first = false;
    }
  }
  out.byte(0x5d);
}

/** Writes the elements of a packed run, comma-separated (and after a comma if asked); returns whether there was any. */
function writePacked(
  reader: WireReader,
  out: JsonWriter,
  field: FieldPlan,
  depth: number,
  commaFirst: boolean,
): boolean {
  const end = reader.delimitedEnd();
  let wrote = false;
  while (reader.pos < end) {
    if (wrote || commaFirst) out.byte(0x2c);
    writeValue(reader, out, field, depth);
    wrote = true;
  }
  if (reader.pos !== end) throw new MalformedMessageError('packed field runs past its end');
  return wrote;
}

function writeMap(
  reader: WireReader,
  out: JsonWriter,
  field: FieldPlan,
  all: number[] | undefined,
  depth: number,
): void {
  const keyType = field.mapKey!;
  const value = field.mapValue!;
  const keyWire = scalarWire(keyType);
  // The last entry of a key wins, at the place the key first appeared.
  const entries = new Map<string, number>();
  for (const position of all ?? []) {
    reader.pos = position;
    const end = reader.delimitedEnd();
    let keyJson: string | undefined;
    let valuePosition = -1;
    while (reader.pos < end) {
      const tag = reader.varint32();
      const number = tag >>> 3;
      const wire = tag & 7;
      if (number === 1 && wire === keyWire) {
        keyJson = mapKeyJson(keyType, reader);
      } else {
        if (number === 2 && wire === value.wire) valuePosition = reader.pos;
        reader.skip(wire, number);
      }
    }
    if (reader.pos !== end) throw new MalformedMessageError('map entry runs past its end');
    entries.set(keyJson ?? mapKeyJson(keyType, undefined), valuePosition);
  }
  out.byte(0x7b);
  let first = true;
  for (const [keyJson, valuePosition] of entries) {
    if (first) first = false;
    else out.byte(0x2c);
    out.utf8(keyJson);
    out.byte(0x3a);
    if (valuePosition >= 0) {
      reader.pos = valuePosition;
      writeValue(reader, out, value, depth);
    } else if (value.message) {
      // A message value missing from its entry is an empty message, not null.
      value.message.render(new WireReader(EMPTY_MESSAGE), out, depth + 1);
    } else {
      out.raw(value.absent);
    }
  }
  out.byte(0x7d);
}

/** The encoding of an empty message behind its length prefix. */
const EMPTY_MESSAGE = Buffer.from([0]);

/** Reads one value at the reader's position and writes it as JSON. One function, one switch: V8 keeps it fast. */
function writeValue(reader: WireReader, out: JsonWriter, plan: ValuePlan, depth: number): void {
  switch (plan.kind) {
    case ScalarType.INT32:
      out.integer(reader.varint32() | 0);
      return;
    case ScalarType.UINT32:
      out.integer(reader.varint32());
      return;
    case ScalarType.SINT32: {
      const value = reader.varint32();
      out.integer((value >>> 1) ^ -(value & 1));
      return;
    }
    case ScalarType.FIXED32:
      out.integer(reader.fixed32());
      return;
    case ScalarType.SFIXED32:
      out.integer(reader.fixed32() | 0);
      return;
    case ScalarType.INT64:
      reader.varint64();
      out.ascii(int64Json(reader.lo, reader.hi));
      return;
    case ScalarType.UINT64:
      reader.varint64();
      out.ascii(uint64Json(reader.lo, reader.hi));
      return;
    case ScalarType.SINT64:
      reader.varint64();
      out.ascii(sint64Json(reader.lo, reader.hi));
      return;
    case ScalarType.FIXED64:
      reader.fixed64();
      out.ascii(uint64Json(reader.lo, reader.hi));
      return;
    case ScalarType.SFIXED64:
      reader.fixed64();
      out.ascii(int64Json(reader.lo, reader.hi));
      return;
    case ScalarType.FLOAT:
      out.ascii(floatJson(reader.float()));
      return;
    case ScalarType.DOUBLE:
      out.ascii(doubleJson(reader.double()));
      return;
    case ScalarType.BOOL:
      reader.varint64();
      out.ascii(reader.lo !== 0 || reader.hi !== 0 ? 'true' : 'false');
      return;
    case ScalarType.STRING: {
      const end = reader.delimitedEnd();
      out.stringFromUtf8(reader.buf, reader.pos, end);
      reader.pos = end;
      return;
    }
    case ScalarType.BYTES: {
      const end = reader.delimitedEnd();
      out.ascii(`"${reader.buf.toString('base64', reader.pos, end)}"`);
      reader.pos = end;
      return;
    }
    case ENUM: {
      const number = reader.varint32() | 0;
      out.ascii(plan.enumNames!.get(number) ?? String(number));
      return;
    }
    case MESSAGE:
      plan.message!.render(reader, out, depth + 1);
      return;
    default:
      throw new Error(`unknown value kind ${plan.kind}`);
  }
}

function scalarWire(type: ScalarType): number {
  switch (type) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return Wire.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return Wire.Bit32;
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return Wire.LengthDelimited;
    case ScalarType.INT32:
    case ScalarType.INT64:
    case ScalarType.UINT32:
    case ScalarType.UINT64:
    case ScalarType.SINT32:
    case ScalarType.SINT64:
    case ScalarType.BOOL:
      return Wire.Varint;
  }
}

function scalarDefaultJson(type: ScalarType, value: unknown): string {
  if (value === undefined) {
    switch (type) {
      case ScalarType.STRING:
      case ScalarType.BYTES:
        return '""';
      case ScalarType.BOOL:
        return 'false';
      default:
        return '0';
    }
  }
  if (value instanceof Uint8Array) return `"${Buffer.from(value).toString('base64')}"`;
  if (typeof value === 'bigint') {
    return value >= -9007199254740991n && value <= 9007199254740991n ? value.toString() : `"${value}"`;
  }
  if (typeof value === 'number') return type === ScalarType.FLOAT ? floatJson(value) : doubleJson(value);
  return JSON.stringify(value);
}

/** A map key as a JSON object key; `reader` undefined means the entry had no key (the default). */
function mapKeyJson(type: ScalarType, reader: WireReader | undefined): string {
  if (type === ScalarType.STRING) {
    if (!reader) return '""';
    const end = reader.delimitedEnd();
    const text = JSON.stringify(reader.buf.toString('utf8', reader.pos, end));
    reader.pos = end;
    return text;
  }
  if (type === ScalarType.BOOL) {
    if (!reader) return '"false"';
    reader.varint64();
    return reader.lo !== 0 || reader.hi !== 0 ? '"true"' : '"false"';
  }
  if (!reader) return '"0"';
  const out = new JsonWriter(24);
  writeValue(reader, out, scalarPlan(type, undefined), 0);
  const text = out.finish().toString('latin1');
  return text.startsWith('"') ? text : `"${text}"`;
}

/** The shortest decimal that reads back as the same float32 (what proto3 JSON prints for a float). */
function floatJson(value: number): string {
  if (!Number.isFinite(value)) return nonFiniteJson(value);
  for (let precision = 1; precision < 9; precision++) {
    const candidate = Number(value.toPrecision(precision));
    if (Math.fround(candidate) === value) return String(candidate);
  }
  return String(Number(value.toPrecision(9)));
}

function doubleJson(value: number): string {
  return Number.isFinite(value) ? String(value) : nonFiniteJson(value);
}

function nonFiniteJson(value: number): string {
  if (Number.isNaN(value)) return '"NaN"';
  return value > 0 ? '"Infinity"' : '"-Infinity"';
}

function wellKnownRenderer(desc: DescMessage): Renderer | undefined {
  if (desc.typeName === 'google.protobuf.Timestamp') return new SecondsNanosRenderer(timestampJson);
  if (desc.typeName === 'google.protobuf.Duration') return new SecondsNanosRenderer(durationJson);
  const wrapped = WRAPPER_SCALARS[desc.typeName];
  if (wrapped !== undefined) return new WrapperRenderer(wrapped);
  if (STRUCT_TYPES.has(desc.typeName)) return new StructRenderer(desc);
  return undefined;
}

/** Struct, Value, ListValue and FieldMask: their proto3 JSON forms (see struct-json.ts). */
class StructRenderer implements Renderer {
  constructor(readonly desc: DescMessage) {}

  render(reader: WireReader, out: JsonWriter, depth: number): void {
    this.renderMerged(reader, out, [reader.pos], depth);
  }

  renderMerged(reader: WireReader, out: JsonWriter, positions: readonly number[], depth: number): void {
    const parts: Buffer[] = [];
    for (const position of positions) {
      reader.pos = position;
      const end = reader.delimitedEnd();
      parts.push(reader.buf.subarray(reader.pos, end));
      // A caller reading on (the next list element) expects the reader after this message.
      reader.pos = end;
    }
    const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    out.utf8(structJson(this.desc, bytes, MAX_DEPTH - depth));
  }
}

/** Timestamp and Duration: `int64 seconds = 1; int32 nanos = 2;`, the last occurrence of each winning. */
class SecondsNanosRenderer implements Renderer {
  constructor(readonly format: (seconds: number, nanos: number) => string) {}

  render(reader: WireReader, out: JsonWriter): void {
    this.renderMerged(reader, out, [reader.pos]);
  }

  renderMerged(reader: WireReader, out: JsonWriter, positions: readonly number[]): void {
    let seconds = 0;
    let nanos = 0;
    for (const position of positions) {
      reader.pos = position;
      const end = reader.delimitedEnd();
      while (reader.pos < end) {
        const tag = reader.varint32();
        if (tag === ((1 << 3) | Wire.Varint)) {
          reader.varint64();
          seconds = int64Number(reader.lo, reader.hi);
        } else if (tag === ((2 << 3) | Wire.Varint)) {
          nanos = reader.varint32() | 0;
        } else {
          reader.skip(tag & 7, tag >>> 3);
        }
      }
      if (reader.pos !== end) throw new MalformedMessageError('field runs past the end of its message');
    }
    out.ascii(this.format(seconds, nanos));
  }
}

function timestampJson(seconds: number, nanos: number): string {
  const date = new Date(seconds * 1000 + Math.floor(nanos / 1_000_000));
  return Number.isNaN(date.getTime()) ? 'null' : `"${date.toISOString()}"`;
}

function durationJson(seconds: number, nanos: number): string {
  const negative = seconds < 0 || nanos < 0;
  let digits = '';
  if (nanos !== 0) {
    digits = String(Math.abs(nanos)).padStart(9, '0');
    if (digits.endsWith('000000')) digits = digits.slice(0, 3);
    else if (digits.endsWith('000')) digits = digits.slice(0, 6);
    digits = `.${digits}`;
  }
  return `"${negative ? '-' : ''}${Math.abs(seconds)}${digits}s"`;
}

/** google.protobuf.*Value: the bare value (the default when the wrapper is set but empty). */
class WrapperRenderer implements Renderer {
  readonly #value: ValuePlan;

  constructor(type: ScalarType) {
    this.#value = scalarPlan(type, undefined);
  }

  render(reader: WireReader, out: JsonWriter): void {
    this.renderMerged(reader, out, [reader.pos]);
  }

  renderMerged(reader: WireReader, out: JsonWriter, positions: readonly number[]): void {
    let valuePosition = -1;
    for (const position of positions) {
      reader.pos = position;
      const end = reader.delimitedEnd();
      while (reader.pos < end) {
        const tag = reader.varint32();
        if (tag === ((1 << 3) | this.#value.wire)) valuePosition = reader.pos;
        reader.skip(tag & 7, tag >>> 3);
      }
      if (reader.pos !== end) throw new MalformedMessageError('field runs past the end of its message');
    }
    if (valuePosition < 0) out.raw(this.#value.absent);
    else {
      reader.pos = valuePosition;
      writeValue(reader, out, this.#value, 0);
    }
  }
}

/** `"@type":`, encoded. */
const TYPE_KEY = json('"@type":');
/** `,"value":`, encoded. */
const VALUE_KEY = json(',"value":');

/** How an Any of one type is rendered, found once per type a route meets. */
interface AnyPlan {
  readonly renderer: Renderer | undefined;
  /** Whether the JSON goes under "value" (a well-known type with a JSON form of its own). */
  readonly underValue: boolean;
}

/** An Any whose type could not be rendered: its bytes as base64, as a plain Any's fields would be. */
const AS_BYTES: AnyPlan = { renderer: undefined, underValue: true };

/** google.protobuf.Any: `{"@type":..., ...}` as proto3 JSON writes it (see compileResponseRenderer). */
class AnyRenderer implements Renderer {
  /** By type name: at most one per message type `types` holds, so bounded by the descriptor set. */
  readonly #plans = new Map<string, AnyPlan>();

  constructor(readonly compiler: RendererCompiler) {}

  render(reader: WireReader, out: JsonWriter, depth: number): void {
    this.renderMerged(reader, out, [reader.pos], depth);
  }

  renderMerged(reader: WireReader, out: JsonWriter, positions: readonly number[], depth: number): void {
    if (depth > MAX_DEPTH) throw new MalformedMessageError('message nested too deeply');
    // `string type_url = 1; bytes value = 2;`: of several occurrences, the last of each wins.
    let urlStart = -1;
    let urlEnd = -1;
    let valuePosition = -1;
    let end = reader.pos;
    for (const position of positions) {
      reader.pos = position;
      end = reader.delimitedEnd();
      while (reader.pos < end) {
        const tag = reader.varint32();
        if (tag === ((1 << 3) | Wire.LengthDelimited)) {
          urlEnd = reader.delimitedEnd();
          urlStart = reader.pos;
          reader.pos = urlEnd;
        } else if (tag === ((2 << 3) | Wire.LengthDelimited)) {
          valuePosition = reader.pos;
          reader.pos = reader.delimitedEnd();
        } else {
          reader.skip(tag & 7, tag >>> 3);
        }
      }
      if (reader.pos !== end) throw new MalformedMessageError('field runs past the end of its message');
    }
    if (urlStart < 0 || urlStart === urlEnd) {
      if (valuePosition < 0) out.ascii('{}');
      else this.#renderBytes(reader, out, urlStart, urlEnd, valuePosition);
      reader.pos = end;
      return;
    }
    const plan = this.#planOf(reader.buf.toString('utf8', urlStart, urlEnd));
    if (!plan.renderer) {
      this.#renderBytes(reader, out, urlStart, urlEnd, valuePosition);
      reader.pos = end;
      return;
    }
    const inner = valuePosition < 0 ? new WireReader(EMPTY_MESSAGE) : reader;
    inner.pos = valuePosition < 0 ? 0 : valuePosition;
    out.byte(0x7b);
    out.raw(TYPE_KEY);
    out.stringFromUtf8(reader.buf, urlStart, urlEnd);
    if (plan.underValue) {
      out.raw(VALUE_KEY);
      plan.renderer.render(inner, out, depth + 1);
      out.byte(0x7d);
    } else {
      // The message's own object, its "{" made the "," after "@type" (or its "{}" the Any's "}").
      const mark = out.position;
      plan.renderer.render(inner, out, depth + 1);
      if (out.position === mark + 2) {
        out.rewind(mark);
        out.byte(0x7d);
      } else {
        out.put(mark, 0x2c);
      }
    }
    reader.pos = end;
  }

  #planOf(typeUrl: string): AnyPlan {
    const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    const known = this.#plans.get(name);
    if (known) return known;
    const type = anyMessageType(this.compiler.types, typeUrl);
    if (!type) return AS_BYTES;
    let plan: AnyPlan;
    try {
      plan = { renderer: this.compiler.message(type), underValue: hasCustomJsonRepresentation(type) };
    } catch {
      // A type the renderer refuses (proto2 groups): its bytes, as for a type it does not know.
      plan = AS_BYTES;
    }
    this.#plans.set(name, plan);
    return plan;
  }

  /** `{"@type":"<URL>","value":"<base64>"}`: an Any of a type that cannot be rendered. */
  #renderBytes(
    reader: WireReader,
    out: JsonWriter,
    urlStart: number,
    urlEnd: number,
    valuePosition: number,
  ): void {
    out.byte(0x7b);
    out.raw(TYPE_KEY);
    if (urlStart < 0) out.ascii('""');
    else out.stringFromUtf8(reader.buf, urlStart, urlEnd);
    out.raw(VALUE_KEY);
    if (valuePosition < 0) out.ascii('""');
    else {
      reader.pos = valuePosition;
      writeValue(reader, out, BYTES_VALUE, 0);
    }
    out.byte(0x7d);
  }
}

const BYTES_VALUE = scalarPlan(ScalarType.BYTES, undefined);
