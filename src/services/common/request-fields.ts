import { invalidArgument } from '../../common/service-error.js';

/** Bounds on one text field. */
export interface TextBounds {
  /** Most Unicode characters (code points, as MySQL's VARCHAR(n) in utf8mb4 counts them). */
  maxCharacters?: number;
  /** Most bytes of UTF-8. */
  maxBytes?: number;
  /** Whether "" is a value; otherwise it counts as missing. */
  allowEmpty?: boolean;
}

/**
 * A required text field. Missing (or empty, unless allowed) is the book's bare "Invalid Parameters";
 * a value over a bound says which bound, so a caller can fix it.
 */
export function requireText(value: string | undefined, field: string, bounds: TextBounds = {}): string {
  if (value === undefined || (value === '' && !bounds.allowEmpty)) throw invalidArgument();
  if (bounds.maxCharacters !== undefined && exceedsCharacters(value, bounds.maxCharacters)) {
    throw invalidArgument(`${field} must be at most ${bounds.maxCharacters} characters`);
  }
  if (bounds.maxBytes !== undefined && Buffer.byteLength(value, 'utf8') > bounds.maxBytes) {
    throw invalidArgument(`${field} must be at most ${formatBytes(bounds.maxBytes)}`);
  }
  return value;
}

/** A required id: a whole number of at least 1. */
export function requireId(value: number | undefined, field: string): number {
  if (value === undefined || !Number.isInteger(value)) throw invalidArgument();
  if (value <= 0) throw invalidArgument(`${field} must be a positive number`);
  return value;
}

/** A required whole number of at least 0. */
export function requireNonNegative(value: number | undefined, field: string): number {
  if (value === undefined || !Number.isInteger(value)) throw invalidArgument();
  if (value < 0) throw invalidArgument(`${field} must not be negative`);
  return value;
}

function exceedsCharacters(value: string, max: number): boolean {
  // A UTF-16 length within the bound settles it; otherwise count code points without copying.
  if (value.length <= max) return false;
  let count = 0;
  for (const _character of value) if (++count > max) return true;
  return false;
}

function formatBytes(bytes: number): string {
  return bytes % 1024 === 0 ? `${bytes / 1024} KiB (${bytes} bytes of UTF-8)` : `${bytes} bytes of UTF-8`;
}
