import { ServiceError } from '../../common/service-error.js';
import { databaseFailure, databaseUnavailable } from './database-errors.js';

/**
 * A privilege the service's user lacks for a statement. MariaDB reads a connection's database
 * privileges when it connects: one opened while a privilege was revoked goes on lacking it after
 * it is granted again, so it is dropped, not given back to the pool.
 */
export const PRIVILEGE_DENIED_CODES = ['ER_TABLEACCESS_DENIED_ERROR', 'ER_COLUMNACCESS_DENIED_ERROR'];

/** Driver codes that mean "the server cannot be used right now" rather than "this statement is wrong". */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_QUERY_INTERRUPTED',
  'ER_ACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_BAD_DB_ERROR',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  // The server refuses every write, for a reason no request caused: read_only (MariaDB and MySQL
  // answer ER_OPTION_PREVENTS_STATEMENT; 1290 also names other server options, all of them the
  // operator's), InnoDB read-only, a full disk or table space. The statement did nothing, so
  // nothing acknowledged is lost, and writes work again once the operator acts.
  'ER_OPTION_PREVENTS_STATEMENT',
  'ER_READ_ONLY_MODE',
  'ER_INNODB_READ_ONLY',
  'ER_DISK_FULL',
  'ER_DISK_FULL_NOWAIT',
  'ER_RECORD_FILE_FULL',
  // One of the service's tables dropped or renamed away under it (a migration, an operator): the
  // health probe turns it NOT_SERVING until the table is back; the calls before it notices were
  // INTERNAL (500) as if the statement were wrong, while nothing was written.
  'ER_NO_SUCH_TABLE',
  // The operator's limits on the service's MySQL user: its connections (MAX_USER_CONNECTIONS, the
  // hourly quotas), its statement time (MySQL's max_execution_time; MariaDB's max_statement_time,
  // errno 1969, has no code in mysql2: see STATEMENT_TIMEOUT_ERRNO), a privilege revoked. The
  // statement was refused or rolled back; writes work again once the limit is lifted.
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_USER_LIMIT_REACHED',
  'ER_QUERY_TIMEOUT',
  ...PRIVILEGE_DENIED_CODES,
]);

/** MariaDB's ER_STATEMENT_TIMEOUT (max_statement_time exceeded), which mysql2 does not name. */
const STATEMENT_TIMEOUT_ERRNO = 1969;

/** Raised by MysqlDatabase's own timers; its message goes to the log only. */
export class MysqlTimeoutError extends Error {
  override readonly name = 'MysqlTimeoutError';
}

/**
 * Whether a statement's failure left its outcome unknown: its timeout passed, or its connection
 * broke under it (a fatal error the driver raised, not one the server answered, which carries an SQL
 * state: a server that says it stopped a statement, shutting down or killing it, rolled it back).
 */
export function cutOffUnanswered(error: unknown): boolean {
  if (error instanceof MysqlTimeoutError) return true;
  const { fatal, sqlState, message } = (error ?? {}) as {
    fatal?: unknown;
    sqlState?: unknown;
    message?: unknown;
  };
  // mysql2's words for a statement it never wrote, its connection known closed already.
  if (message === NOT_SENT_ON_CLOSED_CONNECTION) return false;
  return fatal === true && sqlState === undefined;
}

const NOT_SENT_ON_CLOSED_CONNECTION = "Can't add new command when connection is in closed state";

/**
 * A driver error as the ServiceError a caller gets: UNAVAILABLE for what UNAVAILABLE_CODES lists, a
 * timeout, a fatal (connection-level) error or a closed pool; INTERNAL for anything else.
 */
export function classifyMysqlError(error: unknown): ServiceError {
  if (error instanceof ServiceError) return error;
  const { code, errno, fatal, message } = (error ?? {}) as {
    code?: unknown;
    errno?: unknown;
    fatal?: unknown;
    message?: unknown;
  };
  if (
    error instanceof MysqlTimeoutError ||
    (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) ||
    errno === STATEMENT_TIMEOUT_ERRNO ||
    fatal === true ||
    message === 'Pool is closed.'
  ) {
    return databaseUnavailable(error);
  }
  return databaseFailure(error);
}
