import { status } from '@grpc/grpc-js';
import { ServiceError } from '../../common/service-error.js';

/** What a caller is told when the service cannot reach its database. */
export const DATABASE_UNAVAILABLE = 'Database unavailable';

/**
 * The database cannot be reached or did not answer in time: UNAVAILABLE, which tells a caller that
 * trying again later may work. The driver's error stays in `cause`, for the log only.
 */
export function databaseUnavailable(cause: unknown): ServiceError {
  return new ServiceError(status.UNAVAILABLE, DATABASE_UNAVAILABLE, { cause });
}

/**
 * A write whose statement may have reached the database, and whose answer never came: its
 * connection was lost, or its statement timeout passed (`timedOut`). The server may have committed
 * it, so this is not UNAVAILABLE, which callers (the gateway among them) read as "nothing was done,
 * try again": a blind retry of such a write could make it twice. DEADLINE_EXCEEDED for a timeout,
 * whose gRPC meaning already says that the operation may have completed; UNKNOWN for a lost
 * connection.
 */
export function writeOutcomeUnknown(cause: unknown, timedOut: boolean): ServiceError {
  return timedOut
    ? new ServiceError(
        status.DEADLINE_EXCEEDED,
        'The database did not confirm the write in time: it may have been done',
        { cause },
      )
    : new ServiceError(
        status.UNKNOWN,
        'The connection to the database was lost before it confirmed the write: it may have been done',
        { cause },
      );
}

/** Any other database failure: INTERNAL with a plain message; the driver's error is logged, never sent. */
export function databaseFailure(cause: unknown): ServiceError {
  return new ServiceError(status.INTERNAL, 'Internal error', { cause });
}

/** The driver error code (e.g. "ER_DUP_ENTRY", "SQLITE_CONSTRAINT_UNIQUE") behind an error, if any. */
export function driverErrorCode(error: unknown): string | undefined {
  const underlying = error instanceof ServiceError ? error.cause : error;
  const code = (underlying as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
