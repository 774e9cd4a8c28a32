import { Metadata, status } from '@grpc/grpc-js';

/**
 * The trailer in which a server tells a client when to try again, in ms (gRFC A6, "server
 * pushback"): grpc-js clients with a retry policy honour it, and the gateway answers it as
 * `Retry-After`.
 */
export const RETRY_PUSHBACK_KEY = 'grpc-retry-pushback-ms';

/**
 * The one error type of the shop: a gRPC status code with a message that is safe to show a caller.
 * `cause` keeps the underlying error for logs only; it never crosses the wire. `retryAfterMs`, for
 * a refusal that clears at a known time, is sent as the {@link RETRY_PUSHBACK_KEY} trailer.
 */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  readonly retryAfterMs: number | undefined;
  /** Set for a code that is usually a server fault but that the caller caused (see isServerFault). */
  readonly #callersDoing: boolean;

  constructor(
    readonly code: status,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number; callersDoing?: boolean },
  ) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
    this.#callersDoing = options?.callersDoing === true;
  }

  /** The trailers the error is sent with: the pushback, if it has one. */
  trailers(): Metadata | undefined {
    if (this.retryAfterMs === undefined) return undefined;
    const trailers = new Metadata();
    trailers.set(RETRY_PUSHBACK_KEY, String(Math.max(0, Math.ceil(this.retryAfterMs))));
    return trailers;
  }

  /** True for failures the caller did not cause and cannot fix: these are logged with their cause. */
  get isServerFault(): boolean {
    return !this.#callersDoing && SERVER_FAULTS.has(this.code);
  }
}

const SERVER_FAULTS = new Set<status>([
  status.INTERNAL,
  status.UNKNOWN,
  status.UNAVAILABLE,
  status.DATA_LOSS,
  status.DEADLINE_EXCEEDED,
]);

/** The message the book gives for any missing or ill-typed parameter. */
export const INVALID_PARAMETERS = 'Invalid Parameters';

/** Builds the INVALID_ARGUMENT error for a bad parameter; the book's words come first. */
export function invalidArgument(detail?: string): ServiceError {
  return new ServiceError(
    status.INVALID_ARGUMENT,
    detail ? `${INVALID_PARAMETERS}: ${detail}` : INVALID_PARAMETERS,
  );
}

/**
 * Normalises anything thrown into a ServiceError. Unknown errors become INTERNAL with a plain message,
 * so a database error, a stack or SQL text never reaches a caller.
 */
export function toServiceError(error: unknown): ServiceError {
  if (error instanceof ServiceError) return error;
  return new ServiceError(status.INTERNAL, 'Internal error', { cause: error });
}
