import { ScalarType } from '@bufbuild/protobuf';
import type { JsonWriter } from './json-writer.js';
import { doubleJson, floatJson } from './scalar-json.js';
import { ENUM, MESSAGE, type ValuePlan } from './value-plan.js';
import { int64Json, sint64Json, uint64Json, type WireReader } from './wire-reader.js';

/** Reads one value at the reader's position and writes it as JSON. One function, one switch: V8 keeps it fast. */
export function writeValue(reader: WireReader, out: JsonWriter, plan: ValuePlan, depth: number): void {
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
