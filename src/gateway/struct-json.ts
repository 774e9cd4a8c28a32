import { type DescMessage, fromBinary } from '@bufbuild/protobuf';
import {
  type FieldMask,
  FieldMaskSchema,
  type ListValue,
  ListValueSchema,
  type Struct,
  StructSchema,
  type Value,
  ValueSchema,
} from '@bufbuild/protobuf/wkt';
import { MalformedMessageError } from './wire-reader.js';

/**
 * The JSON forms proto3 JSON gives google.protobuf.Struct, Value, ListValue and FieldMask (what
 * grpc-gateway writes, and what the gateway reads in a request): an object, any JSON value, an
 * array, and the paths in lowerCamelCase joined by commas. Rendered as plain messages, a Struct
 * came back as `{"fields":{"a":{"number_value":1}}}` for the `{"a":1}` a client had sent.
 */
export const STRUCT_TYPES: ReadonlySet<string> = new Set([
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.FieldMask',
]);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * The JSON text of one of {@link STRUCT_TYPES}, from its encoding (the occurrences of a field to
 * merge, concatenated, as protobuf merges them). `depthLeft`: how many more levels of Struct,
 * Value and ListValue may nest. Throws {@link MalformedMessageError} for bytes that do not decode
 * or nest deeper than that.
 */
export function structJson(message: DescMessage, bytes: Uint8Array, depthLeft: number): string {
  try {
    switch (message.typeName) {
      case 'google.protobuf.Struct':
        return JSON.stringify(structValue(fromBinary(StructSchema, bytes), depthLeft));
      case 'google.protobuf.Value':
        return JSON.stringify(valueJson(fromBinary(ValueSchema, bytes), depthLeft));
      case 'google.protobuf.ListValue':
        return JSON.stringify(listValue(fromBinary(ListValueSchema, bytes), depthLeft));
      default:
        return JSON.stringify(fieldMaskText(fromBinary(FieldMaskSchema, bytes)));
    }
  } catch (error) {
    if (error instanceof MalformedMessageError) throw error;
    // Not a valid encoding, or nested past the stack (a RangeError).
    throw new MalformedMessageError(`${message.typeName} does not decode`);
  }
}

function valueJson(value: Value, depthLeft: number): Json {
  if (depthLeft <= 0) throw new MalformedMessageError('google.protobuf.Value nested too deeply');
  const { kind } = value;
  switch (kind.case) {
    case 'numberValue':
      // As the gateway writes a double: proto3 JSON has no number for these.
      if (Number.isNaN(kind.value)) return 'NaN';
      if (!Number.isFinite(kind.value)) return kind.value > 0 ? 'Infinity' : '-Infinity';
      return kind.value;
    case 'stringValue':
    case 'boolValue':
      return kind.value;
    case 'structValue':
      return structValue(kind.value, depthLeft - 1);
    case 'listValue':
      return listValue(kind.value, depthLeft - 1);
    default:
      // null_value, or no kind set (which Go's protojson refuses to write at all).
      return null;
  }
}

function structValue(struct: Struct, depthLeft: number): Json {
  if (depthLeft <= 0) throw new MalformedMessageError('google.protobuf.Struct nested too deeply');
  // Without a prototype: a key "__proto__" is a key like any other.
  const object = Object.create(null) as { [key: string]: Json };
  for (const [key, value] of Object.entries(struct.fields)) object[key] = valueJson(value, depthLeft - 1);
  return object;
}

function listValue(list: ListValue, depthLeft: number): Json {
  if (depthLeft <= 0) throw new MalformedMessageError('google.protobuf.ListValue nested too deeply');
  return list.values.map((value) => valueJson(value, depthLeft - 1));
}

/** "foo_bar.baz" → "fooBar.baz": the paths as proto3 JSON writes them, joined by commas. */
function fieldMaskText(mask: FieldMask): string {
  return mask.paths
    .map((path) => path.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase()))
    .join(',');
}
