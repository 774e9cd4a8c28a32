import type { RequestIdGenerator } from './request-id-generator.js';
import type { TraceCarrier, TraceSpan } from './trace-span.js';

/** The HTTP header and the gRPC metadata key that carry a request's id across hops. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** The field every log line about a request carries its id under. */
export const REQUEST_ID_FIELD = 'requestId';

/** The W3C trace context headers (https://www.w3.org/TR/trace-context/), also used as metadata keys. */
export const TRACEPARENT_HEADER = 'traceparent';
export const TRACESTATE_HEADER = 'tracestate';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Whether a client's X-Request-Id may be kept: 1 to 128 characters of letters, digits and `._:-`.
 * Anything else (spaces, quotes, control characters, a log-line's worth of text) is replaced, so an
 * id can be logged, put in a header and used as metadata without escaping.
 */
export function isValidRequestId(value: unknown): value is string {
  return typeof value === 'string' && REQUEST_ID.test(value);
}

/**
 * The id a request goes by: the client's own when it is valid (and sent once), else a new one (a
 * random UUID).
 */
export function requestIdFrom(header: string | string[] | undefined, ids: RequestIdGenerator): string {
  return isValidRequestId(header) ? header : ids.next();
}

// A later version's extra fields are kept to printable ASCII, as gRPC metadata values must be, and
// without a comma: that is where HTTP joins a header sent twice, and a traceparent sent twice is
// invalid (W3C's test suite restarts the trace).
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-[\x20-\x2b\x2d-\x7e]*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Whether a `traceparent` is well formed (version 00, or a later one with its extra fields; not the
 * invalid version ff, not an all-zero trace or parent id). A malformed one is dropped, as the W3C
 * specification asks, rather than passed on.
 */
export function isValidTraceparent(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 512) return false;
  const match = TRACEPARENT.exec(value);
  if (!match) return false;
  const [, version, traceId, spanId, rest] = match;
  if (version === 'ff' || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return false;
  return version !== '00' || rest === undefined;
}

const ZERO = 48;
const ONE = 49;

/**
 * The traceparent a hop passes on for a valid one (see isValidTraceparent): the same when it is
 * version 00 with flags 00 or 01, as nearly all are; else version 00 with the same ids and the
 * sampled flag alone, as W3C asks of a hop that passes a trace on (it writes the version it knows,
 * and flags it does not know as zero).
 */
export function traceparentToPass(valid: string): string {
  const flags = valid.charCodeAt(54);
  if (
    valid.length === 55 &&
    valid.charCodeAt(0) === ZERO &&
    valid.charCodeAt(1) === ZERO &&
    valid.charCodeAt(53) === ZERO &&
    (flags === ZERO || flags === ONE)
  ) {
    return valid;
  }
  const sampled = Number.parseInt(valid.slice(53, 55), 16) & 1;
  return `00-${valid.slice(3, 52)}-0${sampled}`;
}

// Printable ASCII, and tabs: W3C's optional whitespace around the commas is spaces and tabs. The
// transports cap a header far below the bound (16 KiB over HTTP, 8 KiB of gRPC metadata).
const PRINTABLE = /^[\x20-\x7e\t]{1,65536}$/;
// key "=" value (W3C Trace Context, tracestate list-member): a simple key or tenant@system, and a
// value of printable characters but "," and "=", not ending in a space.
const TRACESTATE_MEMBER =
  /^(?:[a-z][a-z0-9_*/-]{0,255}|[a-z0-9][a-z0-9_*/-]{0,240}@[a-z][a-z0-9_*/-]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
const MAX_TRACESTATE_MEMBERS = 32;
// W3C: a hop propagates at least 512 characters of tracestate; one longer is cut, members longer
// than 128 characters first, then from the end.
const MAX_TRACESTATE_LENGTH = 512;
const LONG_TRACESTATE_MEMBER = 128;

/**
 * A member without the spaces and tabs around it. Not `/^[ \t]+|[ \t]+$/g`: its second branch is
 * tried at every position of a run of spaces that something follows, quadratic in the run (a
 * 16 KiB header of spaces held the gateway's event loop 140 ms a request).
 */
function withoutOws(part: string): string {
  let start = 0;
  let end = part.length;
  while (start < end && isOws(part.charCodeAt(start))) start++;
  while (end > start && isOws(part.charCodeAt(end - 1))) end--;
  return part.slice(start, end);
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/**
 * The `tracestate` a hop passes on, or undefined when it may not pass one on: a comma-separated
 * list (spaces and tabs around the commas, empty members allowed, as HTTP joins the header sent
 * twice) of 1 to 32 `key=value` members as W3C spells them, each key once, passed on as its
 * members joined by commas alone (gRPC metadata refuses tabs) and cut to 512 characters as W3C
 * says. Anything else is dropped whole: W3C forbids passing on entries that could not be parsed.
 */
export function tracestateToPass(value: unknown): string | undefined {
  if (typeof value !== 'string' || !PRINTABLE.test(value)) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const part of value.split(',')) {
    const member = withoutOws(part);
    if (member === '') continue;
    if (!TRACESTATE_MEMBER.test(member)) return undefined;
    const key = member.slice(0, member.indexOf('='));
    if (keys.has(key) || keys.size === MAX_TRACESTATE_MEMBERS) return undefined;
    keys.add(key);
    members.push(member);
  }
  const passed = cutToLength(members);
  return passed.length > 0 ? passed.join(',') : undefined;
}

/**
 * The members kept of a tracestate longer than W3C's 512 characters: members over 128 characters
 * go first, the last of them first, then the last members, until the rest fits.
 */
function cutToLength(members: string[]): string[] {
  const joinedLength = (list: readonly string[]) =>
    list.reduce((length, member) => length + member.length, Math.max(0, list.length - 1));
  const kept = [...members];
  for (let index = kept.length - 1; index >= 0 && joinedLength(kept) > MAX_TRACESTATE_LENGTH; index--) {
    if (kept[index]!.length > LONG_TRACESTATE_MEMBER) kept.splice(index, 1);
  }
  while (joinedLength(kept) > MAX_TRACESTATE_LENGTH) kept.pop();
  return kept;
}

/**
 * The trace context a request came with, as this hop passes it on, or undefined when it has none
 * that is well formed. `traceparent` and `tracestate` are a header's value (HTTP joins a header
 * sent twice with commas) or every value of a metadata key: a traceparent sent more than once is
 * invalid, tracestates sent more than once are one list.
 */
export function traceCarrierFrom(
  traceparent: string | readonly unknown[] | undefined,
  tracestate: string | readonly unknown[] | undefined,
): TraceCarrier | undefined {
  const parent =
    typeof traceparent === 'string' || traceparent === undefined ? traceparent : onlyValue(traceparent);
  if (!isValidTraceparent(parent)) return undefined;
  const state = tracestateToPass(
    typeof tracestate === 'string' || tracestate === undefined
      ? tracestate
      : (onlyValue(tracestate) ?? tracestate.join(',')),
  );
  const passed = traceparentToPass(parent);
  return state === undefined ? { traceparent: passed } : { traceparent: passed, tracestate: state };
}

function onlyValue(values: readonly unknown[]): unknown {
  return values.length === 1 ? values[0] : undefined;
}

/**
 * What a component knows about the call it is serving: the id for its log lines, and its span, the
 * parent of the call's database spans.
 */
export interface CallContext {
  /** The request's id, from `x-request-id` metadata; undefined when ids are off or none came. */
  readonly requestId: string | undefined;
  /** The gRPC method, e.g. "ListGoods": a bounded label for what the call does. */
  readonly method: string;
  /** The call's server span, when tracing is on. */
  readonly span?: TraceSpan | undefined;
}

/**
 * The context of each call, on the call's metadata object, which grpc-js hands from the server
 * interceptor to the handler unchanged: the handler finds its call's id without any context being
 * carried through promises. It is kept under a symbol of this module on that object rather than in
 * a WeakMap: each WeakMap entry is an ephemeron, which every garbage collection traces apart (in
 * the gateway, a WeakMap entry per request was most of the collection work request ids added).
 */
const CALL_CONTEXT = Symbol('shop.callContext');

interface CarriesCallContext {
  [CALL_CONTEXT]?: CallContext;
}

/** Makes `context` the context of the call that came with `metadata` (see {@link callContextOf}). */
export function attachCallContext(metadata: object, context: CallContext): void {
  (metadata as CarriesCallContext)[CALL_CONTEXT] = context;
}

/** The context of the call that came with `metadata`; undefined when its server keeps none. */
export function callContextOf(metadata: object): CallContext | undefined {
  return (metadata as CarriesCallContext)[CALL_CONTEXT];
}

/**
 * The span of the call that came with `metadata`, when its trace is sampled: the parent of the
 * call's database spans, which the handler hands down to its store (see service-store.ts).
 * Undefined when tracing is off or the call is not sampled, so that nothing is made below it.
 */
export function traceParentOf(metadata: object): TraceSpan | undefined {
  const span = callContextOf(metadata)?.span;
  return span?.isSampled() ? span : undefined;
}

/** The fields that name a call's request in a log line: `{ requestId }`, or nothing. */
export function requestLogFields(metadata: object): { requestId?: string } {
  const requestId = callContextOf(metadata)?.requestId;
  return requestId === undefined ? {} : { [REQUEST_ID_FIELD]: requestId };
}
