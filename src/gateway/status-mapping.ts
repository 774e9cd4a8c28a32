import { type Metadata, status } from '@grpc/grpc-js';
import { RETRY_PUSHBACK_KEY } from '../common/service-error.js';

/** How the gateway answers a gRPC status from a service. */
export interface HttpOutcome {
  /** The HTTP status: 200 for a business answer (the book's envelope carries the failure). */
  readonly httpStatus: number;
  /** The envelope's `errormessage`. */
  readonly message: string;
  /**
   * Whether to send `Retry-After`: the failure is temporary. A number is the service's own wait in
   * seconds (its gRPC pushback); true, the gateway's default.
   */
  readonly retryAfter: boolean | number;
}

/**
 * How grpc-js words a call that ended without a gRPC status because its HTTP/2 stream or connection
 * was cut under it (a RST_STREAM or a GOAWAY with an error code, a socket error): the service never
 * answered, so nothing says it failed.
 */
const CUT_BELOW_GRPC = /^Received RST_STREAM with code \d+/;

/**
 * The status the gateway answers for a failed upstream call. A call cut below gRPC (grpc-js reports
 * INTERNAL "Received RST_STREAM …", as when an instance freezes or dies behind an HTTP/2 hop) is not
 * an error of the service: it is UNAVAILABLE (503, retried elsewhere like any refusal), or
 * DEADLINE_EXCEEDED (504) when the call's deadline had passed by then.
 */
export function upstreamStatus(code: status, details: string | undefined, deadline: number): status {
  if (code !== status.INTERNAL || !CUT_BELOW_GRPC.test(details ?? '')) return code;
  return Date.now() >= deadline ? status.DEADLINE_EXCEEDED : status.UNAVAILABLE;
}

/**
 * How grpc-js words a call ended under it after it was sent: its connection dropped, its stream
 * reset (but for REFUSED_STREAM, which HTTP/2 guarantees was not processed: "Stream refused by
 * server"), its connection reset or timed out under it (grpc-js 1.14 reports a stream ended by a
 * socket error ECONNRESET or ETIMEDOUT as UNAVAILABLE with the error's message, "read ECONNRESET",
 * as when an instance is killed with a call in flight), or cancelled by the transport. The service
 * may have done the work; nothing says.
 */
const CUT_AFTER_SENT =
  /^(?:Connection dropped|Received RST_STREAM with code \d+|Call cancelled|(?:read|write) (?:ECONNRESET|ETIMEDOUT)\b)/;

/** Whether a failed call was cut after it was sent: its outcome is unknown. */
export function cutAfterSent(code: status, details: string | undefined): boolean {
  return (
    (code === status.UNAVAILABLE || code === status.INTERNAL || code === status.CANCELLED) &&
    CUT_AFTER_SENT.test(details ?? '')
  );
}

/**
 * What a write whose call was cut after it was sent is answered when no attempt gave an answer: as
 * for a deadline, 504, since the write may still happen (under its Idempotency-Key, if it has one).
 */
export const OUTCOME_UNKNOWN: HttpOutcome = {
  httpStatus: 504,
  message: 'The service was cut off before it answered: the write may still happen',
  retryAfter: false,
};

/**
 * What a write (POST, PUT, PATCH) whose call passed its deadline is answered: the service had the
 * request and may still commit it once it gets to it (a paused or overloaded instance), which
 * "Upstream deadline exceeded" alone leaves unsaid.
 */
export const WRITE_DEADLINE_EXCEEDED: HttpOutcome = {
  httpStatus: 504,
  message: 'Upstream deadline exceeded: the write may still happen',
  retryAfter: false,
};

/**
 * What a write (POST, PUT, PATCH) answered UNKNOWN is answered: the service failed without knowing
 * whether the write was done (its database connection was lost after the statement was sent, say),
 * which "Internal error in the service" alone leaves unsaid.
 */
export const WRITE_OUTCOME_UNCONFIRMED: HttpOutcome = {
  httpStatus: 500,
  message: 'Internal error in the service: the write may have been done',
  retryAfter: false,
};

/** A service's own message is shown up to this length. */
const MAX_MESSAGE_LENGTH = 1024;

/**
 * The details grpc-js (1.14) gives a message over a size limit: "Received message larger than max
 * (…)" (the gateway's 4 MiB limit on an answer), "Sent message larger than max (…)" (a service's
 * limit on its own answer), "Received message that decompresses to a size larger than …". The
 * gateway sends no request past a service's limit (its body limit may not pass it: config.ts), so it
 * is the answer.
 */
const MESSAGE_TOO_LARGE =
  /^(?:(?:Received|Sent) message larger than max|Received message that decompresses to a size larger than)/;

/**
 * The one table from a gRPC status to what a REST client sees.
 *
 * Business outcomes (the caller's request was understood and refused: INVALID_ARGUMENT, NOT_FOUND,
 * ALREADY_EXISTS, PERMISSION_DENIED, UNAUTHENTICATED, OUT_OF_RANGE) keep the book's HTTP 200
 * with `errorcode: 1` and the service's own message ("Invalid Parameters", "no data",
 * "Invalid password"), as the book's clients expect.
 *
 * FAILED_PRECONDITION is 422 with the service's message: the shop says it only of an Idempotency-Key
 * reused with a different request (a request the book never had), which the IETF Idempotency-Key
 * draft answers 422 Unprocessable Content. ABORTED, a conflict with a concurrent request, is 409
 * with the service's message and Retry-After, as Google's mapping of gRPC codes has it and as the
 * draft answers a key still in use: the shop says it only when the writes of one Idempotency-Key
 * keep rolling back (a request the book never had either). A 200 said "failed" of a request that
 * a retry would have carried out.
 *
 * Faults are proper HTTP errors with a plain message of the gateway's, never upstream internals:
 * UNAVAILABLE and CANCELLED 503 and RESOURCE_EXHAUSTED 429 (both with Retry-After: temporary),
 * except a RESOURCE_EXHAUSTED that is grpc-js's own message size limit: 502 "The answer is too
 * large", without Retry-After, since the same request would meet the same limit (logged, as every
 * answer of 500 and above, with grpc-js's details); DEADLINE_EXCEEDED 504, and INTERNAL, UNKNOWN,
 * DATA_LOSS, UNIMPLEMENTED (and OK, which is never an error) 500.
 *
 * A RESOURCE_EXHAUSTED with a pushback (`pushbackMs`, the service's `grpc-retry-pushback-ms`
 * trailer) is a limit the service set on purpose and explained, such as members' wait after failed
 * sign-ins: 429 with the service's message and its wait as Retry-After, in whole seconds.
 */
export function outcomeForStatus(
  code: status,
  details: string | undefined,
  pushbackMs?: number,
): HttpOutcome {
  switch (code) {
    case status.INVALID_ARGUMENT:
      return business(details, 'Invalid Parameters');
    case status.NOT_FOUND:
      return business(details, 'Not found');
    case status.ALREADY_EXISTS:
      return business(details, 'Already exists');
    case status.PERMISSION_DENIED:
      return business(details, 'Permission denied');
    case status.UNAUTHENTICATED:
      return business(details, 'Unauthenticated');
    case status.FAILED_PRECONDITION:
      return { ...business(details, 'Failed precondition'), httpStatus: 422 };
    case status.ABORTED:
      return {
        ...business(details, 'Conflict with a concurrent request, try again'),
        httpStatus: 409,
        retryAfter: true,
      };
    case status.OUT_OF_RANGE:
      return business(details, 'Out of range');
    case status.UNAVAILABLE:
      return fault(503, 'Service unavailable', true);
    case status.CANCELLED:
      return fault(503, 'Request cancelled by the service', true);
    case status.RESOURCE_EXHAUSTED:
      // grpc-js uses this code for its own message size limits too: that is no overload, and a retry
      // would meet the same limit.
      if (details !== undefined && MESSAGE_TOO_LARGE.test(details)) {
        return fault(502, 'The answer is too large', false);
      }
      if (pushbackMs !== undefined) {
        return {
          ...business(details, 'Service overloaded'),
          httpStatus: 429,
          retryAfter: Math.max(1, Math.ceil(pushbackMs / 1000)),
        };
      }
      return fault(429, 'Service overloaded', true);
    case status.DEADLINE_EXCEEDED:
      return fault(504, 'Upstream deadline exceeded', false);
    case status.UNIMPLEMENTED:
      return fault(500, 'The service does not implement this method', false);
    case status.INTERNAL:
    case status.UNKNOWN:
    case status.DATA_LOSS:
    case status.OK:
      return fault(500, 'Internal error in the service', false);
    default:
      return unreachable(code);
  }
}

/**
 * The wait a service asked for in its `grpc-retry-pushback-ms` trailer, in ms; undefined without
 * one, or for a value gRFC A6 does not allow (a negative one means "do not retry", which the gateway
 * has no way to say but by leaving Retry-After out).
 */
export function retryPushbackOf(trailers: Metadata | undefined): number | undefined {
  const [value] = trailers?.get(RETRY_PUSHBACK_KEY) ?? [];
  if (typeof value !== 'string' || !/^\d{1,10}$/.test(value)) return undefined;
  return Number(value);
}

function business(details: string | undefined, fallback: string): HttpOutcome {
  const message = details?.trim() ? details.trim().slice(0, MAX_MESSAGE_LENGTH) : fallback;
  return { httpStatus: 200, message, retryAfter: false };
}

function fault(httpStatus: number, message: string, retryAfter: boolean): HttpOutcome {
  return { httpStatus, message, retryAfter };
}

function unreachable(code: never): HttpOutcome {
  // A status code outside the gRPC spec (a broken peer): treated as an internal fault.
  return fault(500, `Internal error in the service (status ${String(code)})`, false);
}
