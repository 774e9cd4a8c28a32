import { ScalarType } from '@bufbuild/protobuf';

/** The JSON of a scalar field's default (proto3's zero, or proto2's declared default). */
export function scalarDefaultJson(type: ScalarType, value: unknown): string {
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

/** The shortest decimal that reads back as the same float32 (what proto3 JSON prints for a float). */
export function floatJson(value: number): string {
  if (!Number.isFinite(value)) return nonFiniteJson(value);
  for (let precision = 1; precision < 9; precision++) {
    const candidate = Number(value.toPrecision(precision));
    if (Math.fround(candidate) === value) return String(candidate);
  }
  return String(Number(value.toPrecision(9)));
}

/** A double as proto3 JSON prints it: the number, or NaN and the infinities as strings. */
export function doubleJson(value: number): string {
  return Number.isFinite(value) ? String(value) : nonFiniteJson(value);
}

function nonFiniteJson(value: number): string {
  if (Number.isNaN(value)) return '"NaN"';
  return value > 0 ? '"Infinity"' : '"-Infinity"';
}
