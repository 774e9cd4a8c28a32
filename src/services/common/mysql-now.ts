/**
 * Now by MySQL's clock, in µs and ms since the epoch, as BIGINTs, from UTC: UNIX_TIMESTAMP(NOW())
 * goes through the session's time zone, whose repeated hour in autumn would turn the clock back.
 * Times that instances on several hosts compare (sign-in waits, idempotency keys' age) are taken by
 * it: one clock for all of them, whatever each host's says.
 */
export const MYSQL_NOW_US = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))";
export const MYSQL_NOW_MS = `(${MYSQL_NOW_US} DIV 1000)`;
