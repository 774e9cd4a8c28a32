import { isAscii, isUtf8 } from 'node:buffer';
import { type GatewayError, gatewayErrors } from './gateway-error.js';

/** What a request's body carries for the request decoder (the query string is read there). */
export type RequestInput =
  | { readonly kind: 'none' }
  | { readonly kind: 'text'; readonly params: URLSearchParams }
  | { readonly kind: 'json'; readonly object: Record<string, unknown> }
  /** A JSON body that is not an object: the value of a route's body field (`body: "tags"`, a list). */
  | { readonly kind: 'json-value'; readonly value: unknown };

export const NO_INPUT: RequestInput = { kind: 'none' };

/** The methods whose input is the body (JSON or form); the others' is the query string. */
export const BODY_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH']);

/**
 * A body format the gateway reads: its syntax, and the charset its bytes (and a form's
 * percent-escapes) are in. US-ASCII is a subset of UTF-8, read as it, but its bytes must all be
 * below 0x80.
 */
export interface BodyFormat {
  readonly syntax: 'json' | 'form';
  readonly charset: 'utf-8' | 'us-ascii';
}

/**
 * The body format of a Content-Type header: `application/json` or
 * `application/x-www-form-urlencoded`, case-insensitive, with or without parameters; a `charset`, if
 * any, must be UTF-8 (JSON is UTF-8 by definition; a form's percent-escapes are decoded as UTF-8) or
 * US-ASCII, its subset (what a client that writes plain ASCII says). Anything else is undefined:
 * the gateway answers 415 rather than guess.
 */
export function bodyFormat(contentType: string | undefined): BodyFormat | undefined {
  if (!contentType) return undefined;
  const [mediaType = '', ...parameters] = contentType.split(';');
  let syntax: BodyFormat['syntax'];
  switch (mediaType.trim().toLowerCase()) {
    case 'application/json':
      syntax = 'json';
      break;
    case 'application/x-www-form-urlencoded':
      syntax = 'form';
      break;
    default:
      return undefined;
  }
  let charset: BodyFormat['charset'] = 'utf-8';
  for (const parameter of parameters) {
    const [name = '', value = ''] = parameter.split('=');
    if (name.trim().toLowerCase() !== 'charset') continue;
    const label = value
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase();
    if (label === 'us-ascii') charset = 'us-ascii';
    else if (label !== 'utf-8' && label !== 'utf8') return undefined;
  }
  return { syntax, charset };
}

/**
 * Whether a body's Content-Encoding leaves it as sent: none, or `identity` alone (RFC 9110, section
 * 8.4). The gateway decodes no content coding; a gzip body read as JSON was answered 400 "not valid
 * UTF-8", and a plain body labelled with a coding was stored as if unlabelled. RFC 9110 (section
 * 15.5.16) has such a body answered 415, with Accept-Encoding saying which codings would do.
 */
export function bodyIsUnencoded(contentEncoding: string | undefined): boolean {
  if (contentEncoding === undefined) return true;
  return contentEncoding
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .every((coding) => coding === '' || coding === 'identity');
}

/**
 * Parses a body of a known format. An empty body is no input at all (the service then says what is
 * missing). Throws the gateway's 400 for a body that is not in its charset (UTF-8, or US-ASCII as
 * declared: a byte from 0x80 up, raw or percent-escaped, is no more read as UTF-8 than invalid
 * UTF-8 is read as U+FFFD), not JSON, or JSON but not an object where the route takes only one
 * (`valueAllowed` false: its body is the whole message, not one field, whose value may be a list,
 * a number or a string).
 */
export function bodyInput(format: BodyFormat, body: Buffer, valueAllowed = false): RequestInput {
  if (body.length === 0) return NO_INPUT;
  const ascii = format.charset === 'us-ascii';
  if (ascii ? !isAscii(body) : !isUtf8(body)) throw notInCharset(format);
  const text = body.toString('utf8');
  if (format.syntax === 'form') {
    if (ascii ? !isAscii(percentDecoded(text)) : !percentEscapesAreUtf8(text)) throw notInCharset(format);
    return { kind: 'text', params: new URLSearchParams(text) };
  }
  let value: unknown;
  try {
    // A UTF-8 byte order mark is tolerated, as RFC 8259 allows a parser to.
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch {
    throw gatewayErrors.malformedJson();
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    if (valueAllowed) return { kind: 'json-value', value };
    throw gatewayErrors.notAnObject();
  }
  return { kind: 'json', object: value as Record<string, unknown> };
}

/** The 400 for a body whose bytes are not in its charset, named as the client declared it. */
function notInCharset(format: BodyFormat): GatewayError {
  return format.charset === 'us-ascii' ? gatewayErrors.notAscii() : gatewayErrors.notUtf8();
}

const PERCENT = 0x25;

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/**
 * Whether form-urlencoded text (a form body, a query string) is UTF-8 once its percent-escapes are
 * decoded to bytes. URLSearchParams puts U+FFFD in place of each bad sequence, so `%FF` and `%FE`
 * would both reach a service as the same text (one user name for two different inputs); such text
 * is refused instead. A `%` not followed by two hexadecimal digits stays itself, as URLSearchParams
 * reads it.
 */
export function percentEscapesAreUtf8(text: string): boolean {
  return !text.includes('%') || isUtf8(percentDecoded(text));
}

/** The bytes of form-urlencoded text with its percent-escapes decoded (a `%` that escapes nothing stays). */
function percentDecoded(text: string): Buffer {
  const raw = Buffer.from(text, 'utf8');
  if (!text.includes('%')) return raw;
  const bytes = Buffer.allocUnsafe(raw.length);
  let length = 0;
  for (let index = 0; index < raw.length; index++) {
    const byte = raw[index]!;
    if (byte === PERCENT && index + 2 < raw.length) {
      const high = hexValue(raw[index + 1]!);
      const low = hexValue(raw[index + 2]!);
      if (high >= 0 && low >= 0) {
        bytes[length++] = (high << 4) | low;
        index += 2;
        continue;
      }
    }
    bytes[length++] = byte;
  }
  return bytes.subarray(0, length);
}
