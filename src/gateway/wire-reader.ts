/** Protobuf wire types (the low three bits of a tag). */
export enum Wire {
  Varint = 0,
  Bit64 = 1,
  LengthDelimited = 2,
  StartGroup = 3,
  EndGroup = 4,
  Bit32 = 5,
}

/** Thrown on bytes that are not a valid protobuf encoding of the expected message. */
export class MalformedMessageError extends Error {
  override readonly name = 'MalformedMessageError';
}

const TWO_32 = 4294967296;

/**
 * A cursor over protobuf wire bytes that reads values at any position, for a renderer that first
 * scans a message for where each field is and then reads the fields in declaration order.
 *
 * Why not @bufbuild/protobuf's BinaryReader: that reads forward only, allocates a tuple per tag and a
 * bigint per 64-bit value, and copies each string through a TextDecoder; this one reads a Buffer in
 * place and keeps 64-bit values as two 32-bit halves (`lo`, `hi`) until they are rendered.
 */
export class WireReader {
  /** Low and high 32 bits (unsigned) of the last value read by {@link varint64} or {@link fixed64}. */
  lo = 0;
  hi = 0;
  pos = 0;

  constructor(readonly buf: Buffer) {}

  /** Reads a varint and keeps its low 32 bits, unsigned (a negative int32 is sent as 10 bytes). */
  varint32(): number {
    let byte = this.#byte();
    if (byte < 0x80) return byte;
    let value = byte & 0x7f;
    for (let shift = 7; shift < 28; shift += 7) {
      byte = this.#byte();
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) return value >>> 0;
    }
    byte = this.#byte();
    value |= (byte & 0x0f) << 28;
    // The rest of a 64-bit varint carries nothing for a 32-bit value, but must be well formed.
    for (let count = 0; byte >= 0x80; count++) {
      if (count === 5) throw new MalformedMessageError('varint longer than 10 bytes');
      byte = this.#byte();
    }
    return value >>> 0;
  }

  /** Reads a varint of up to 64 bits into {@link lo} and {@link hi}. */
  varint64(): void {
    let lo = 0;
    let hi = 0;
    let byte = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      byte = this.#byte();
      lo |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.lo = lo >>> 0;
        this.hi = 0;
        return;
      }
    }
    byte = this.#byte();
    lo |= (byte & 0x0f) << 28;
    hi = (byte & 0x7f) >> 4;
    for (let shift = 3; byte >= 0x80; shift += 7) {
      if (shift > 31) throw new MalformedMessageError('varint longer than 10 bytes');
      byte = this.#byte();
      hi |= (byte & 0x7f) << shift;
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /** Reads 8 little-endian bytes into {@link lo} and {@link hi}. */
  fixed64(): void {
    this.#need(8);
    this.lo = this.buf.readUInt32LE(this.pos);
    this.hi = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
  }

  fixed32(): number {
    this.#need(4);
    const value = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return value;
  }

  float(): number {
    this.#need(4);
    const value = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return value;
  }

  double(): number {
    this.#need(8);
    const value = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  /** Reads a length prefix and checks that the bytes it announces are there; returns their end. */
  delimitedEnd(): number {
    const length = this.varint32();
    const end = this.pos + length;
    if (end > this.buf.length) throw new MalformedMessageError('length-delimited field runs past the end');
    return end;
  }

  /** Skips one value of the given wire type (a whole group for StartGroup). */
  skip(wireType: number, fieldNumber: number, depth = 0): void {
    switch (wireType) {
      case Wire.Varint:
        this.varint64();
        return;
      case Wire.Bit64:
        this.#need(8);
        this.pos += 8;
        return;
      case Wire.LengthDelimited:
        this.pos = this.delimitedEnd();
        return;
      case Wire.Bit32:
        this.#need(4);
        this.pos += 4;
        return;
      case Wire.StartGroup: {
        if (depth > 64) throw new MalformedMessageError('groups nested too deeply');
        for (;;) {
          const tag = this.varint32();
          if ((tag & 7) === Wire.EndGroup) {
            if (tag >>> 3 !== fieldNumber) throw new MalformedMessageError('mismatched end of group');
            return;
          }
          this.skip(tag & 7, tag >>> 3, depth + 1);
        }
      }
      default:
        throw new MalformedMessageError(`unexpected wire type ${wireType}`);
    }
  }

  #byte(): number {
    if (this.pos >= this.buf.length) throw new MalformedMessageError('message ends inside a varint');
    return this.buf[this.pos++]!;
  }

  #need(bytes: number): void {
    if (this.pos + bytes > this.buf.length) throw new MalformedMessageError('message ends inside a value');
  }
}

/** The unsigned 64-bit value of two halves as a JS number when exact, else as a decimal string. */
export function uint64Json(lo: number, hi: number): string {
  // Below 2^53 the halves combine exactly in a double.
  if (hi < 0x200000) return String(hi * TWO_32 + lo);
  return `"${((BigInt(hi) << 32n) | BigInt(lo)).toString()}"`;
}

/** The signed (two's complement) 64-bit value of two halves as a JS number, rounded beyond 2^53. */
export function int64Number(lo: number, hi: number): number {
  if (hi < 0x200000) return hi * TWO_32 + lo;
  return Number(BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)));
}

/** The signed (two's complement) 64-bit value of two halves, rendered like {@link uint64Json}. */
export function int64Json(lo: number, hi: number): string {
  if (hi < 0x200000) return String(hi * TWO_32 + lo);
  const value = BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
  // A high word of 0x200000 or more: at least 2^53 (quoted), or negative (exact down to −(2^53 − 1)).
  return value >= -9007199254740991n && value <= 9007199254740991n
    ? value.toString()
    : `"${value.toString()}"`;
}

/** The zigzag-decoded (sint64) value of two halves, rendered like {@link uint64Json}. */
export function sint64Json(lo: number, hi: number): string {
  if (hi < 0x200000) {
    const unsigned = hi * TWO_32 + lo;
    // Exact: unsigned < 2^53, so unsigned + 1 <= 2^53.
    return String(lo & 1 ? -(unsigned + 1) / 2 : unsigned / 2);
  }
  const unsigned = (BigInt(hi) << 32n) | BigInt(lo);
  const value = (unsigned >> 1n) ^ -(unsigned & 1n);
  return value >= -9007199254740991n && value <= 9007199254740991n ? value.toString() : `"${value}"`;
}
