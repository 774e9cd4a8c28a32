import type { DescMessage, ScalarType } from '@bufbuild/protobuf';
import type { JsonWriter } from './json-writer.js';
import { STRUCT_TYPES, structJson } from './struct-json.js';
import { MAX_DEPTH, type Renderer, scalarPlan, type ValuePlan } from './value-plan.js';
import { int64Number, MalformedMessageError, Wire, type WireReader } from './wire-reader.js';
import { WRAPPER_SCALARS } from './wrapper-types.js';
import { writeValue } from './write-value.js';

/** A renderer of the well-known type's proto3 JSON form, or undefined for any other message. */
export function wellKnownRenderer(desc: DescMessage): Renderer | undefined {
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
