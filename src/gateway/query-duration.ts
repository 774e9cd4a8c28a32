// A google.protobuf.Duration in a query string or a path, as grpc-gateway takes it there: Go's
// time.ParseDuration form ("1h30m", "250ms", "-1.5h"), of which proto3 JSON's "1.5s" is one case.
// A JSON body keeps proto3 JSON's form alone, as grpc-gateway's protojson does.

/** Nanoseconds per unit, as Go names them (both spellings of micro). A Map: a unit "constructor" finds nothing. */
const UNIT_NANOS: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['µs', 1_000n],
  ['μs', 1_000n],
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

/** One part of a Go duration: digits, an optional fraction, and a unit ("1.5h"). */
const PART = /([0-9]*)(?:\.([0-9]*))?([^0-9.]*)/y;

/** proto3 JSON's bound on a Duration: ±10,000 years, in seconds. */
const MAX_SECONDS = 315_576_000_000n;
const NANOS_PER_SECOND = 1_000_000_000n;

/**
 * The proto3 JSON form ("5400s", "-0.25s") of a duration written as Go writes one, or undefined
 * when the text is no such duration or lies outside a Duration's range. A fraction finer than a
 * nanosecond is cut, as Go cuts it.
 */
export function durationJsonOfText(text: string): string | undefined {
  let rest = text;
  const negative = rest.startsWith('-');
  if (negative || rest.startsWith('+')) rest = rest.slice(1);
  if (rest === '0') return '0s';
  if (rest === '') return undefined;
  let total = 0n;
  PART.lastIndex = 0;
  while (PART.lastIndex < rest.length) {
    const match = PART.exec(rest);
    if (!match) return undefined;
    const [, whole = '', fraction, unit = ''] = match;
    if (whole === '' && !fraction) return undefined;
    const nanos = UNIT_NANOS.get(unit);
    if (nanos === undefined) return undefined;
    total += BigInt(whole || '0') * nanos;
    if (fraction) total += (BigInt(fraction) * nanos) / 10n ** BigInt(fraction.length);
    if (total > MAX_SECONDS * NANOS_PER_SECOND) return undefined;
  }
  const seconds = total / NANOS_PER_SECOND;
  const nanos = total % NANOS_PER_SECOND;
  const fractionText = nanos === 0n ? '' : `.${nanos.toString().padStart(9, '0').replace(/0+$/, '')}`;
  return `${negative && total !== 0n ? '-' : ''}${seconds}${fractionText}s`;
}
