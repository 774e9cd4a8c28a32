import { ScalarType } from '@bufbuild/protobuf';
import { JsonWriter } from './json-writer.js';
import { type FieldPlan, MAX_DEPTH, type Renderer, Shape, scalarPlan, scalarWire } from './value-plan.js';
import { MalformedMessageError, Wire, WireReader } from './wire-reader.js';
import { writeValue } from './write-value.js';

/** Renders an ordinary message: all its fields in declaration order. */
export class MessageRenderer implements Renderer {
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
export const EMPTY_MESSAGE = Buffer.from([0]);

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
