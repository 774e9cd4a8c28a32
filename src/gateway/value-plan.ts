import { type DescEnum, ScalarType } from '@bufbuild/protobuf';
import type { JsonWriter } from './json-writer.js';
import { scalarDefaultJson } from './scalar-json.js';
import { Wire, type WireReader } from './wire-reader.js';

/** Deeper nesting than this in a response is refused rather than risking the stack. */
export const MAX_DEPTH = 100;

/** What a value is; scalar kinds are the ScalarType numbers. */
export const ENUM = 100;
export const MESSAGE = 101;

/** How a field holds its values: one, a message, a repeated list or a map. */
export enum Shape {
  Single,
  Message,
  List,
  Map,
}

/** How to render one value: of a field, a list element or a map value. */
export interface ValuePlan {
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

/** How to render one field of a message: its value's plan, its number, key and shape. */
export interface FieldPlan extends ValuePlan {
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
export interface Renderer {
  render(reader: WireReader, out: JsonWriter, depth: number): void;
  /** Renders the merge of several occurrences (length-prefix positions) of a singular field. */
  renderMerged(reader: WireReader, out: JsonWriter, positions: readonly number[], depth: number): void;
}

/** JSON text as the bytes the writer copies. */
export function json(text: string): Uint8Array {
  return Buffer.from(text);
}

/** Every plan is made here, with the same properties in the same order, so V8 sees one shape. */
export function valuePlan(
  kind: number,
  wire: number,
  enumNames: Map<number, string> | undefined,
  message: Renderer | undefined,
  absent: string,
): ValuePlan {
  return { kind, wire, enumNames, message, absent: json(absent) };
}

/** A field's plan, made from its value's (the same property order as valuePlan's, then the field's). */
export function fieldPlan(
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

/** The plan of a scalar value; `absent` overrides the JSON of its default. */
export function scalarPlan(type: ScalarType, defaultValue: unknown, absent?: string): ValuePlan {
  return valuePlan(
    type,
    scalarWire(type),
    undefined,
    undefined,
    absent ?? scalarDefaultJson(type, defaultValue),
  );
}

/** The plan of an enum value: each known number's name, and the JSON of its default. */
export function enumPlan(desc: DescEnum, defaultNumber: number | undefined, absent?: string): ValuePlan {
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

/** The wire type a scalar of this type is written with (unpacked). */
export function scalarWire(type: ScalarType): number {
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
