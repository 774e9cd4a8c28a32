import type { DescField, DescMessage, Registry } from '@bufbuild/protobuf';
import { WELL_KNOWN_ANY_TYPES } from './any-types.js';
import { ENVELOPE_ROOM } from './envelope.js';
import { JsonWriter } from './json-writer.js';
import { MessageRenderer } from './message-renderer.js';
import { RendererCompiler } from './renderer-compiler.js';
import { type MalformedMessageError, WireReader } from './wire-reader.js';

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
