import type { Logger } from '../../common/logger.js';
import type { DatabaseObserver } from './database-telemetry.js';
import type { IdempotencyOptions } from './idempotency.js';
import type { MysqlSchemaStep } from './mysql-schema.js';
import type { MysqlConnectionOptions } from './mysql-url.js';

/** Options of MysqlDatabase (mysql-database.ts). */
export interface MysqlDatabaseOptions {
  connection: MysqlConnectionOptions;
  /**
   * `CREATE TABLE IF NOT EXISTS` statements for the service's own tables. They run before the first
   * statement and again after a failure, so a service started while MySQL is down creates its tables
   * once MySQL is back, without a restart. A step that is a function looks before it changes
   * anything (see mysqlColumnsAdded in mysql-schema.ts).
   */
  schema: readonly MysqlSchemaStep[];
  log?: Logger;
  /**
   * Most connections the service's calls hold at once (default 10); the health probe has one more of
   * its own, so the pool never asks MySQL for more than this and one.
   */
  connectionLimit?: number;
  /** How long opening one connection may take (default 3 s). */
  connectTimeoutMs?: number;
  /** How long a caller may wait for a free connection when all are busy (default 5 s). */
  acquireTimeoutMs?: number;
  /** How long one statement may take before its connection is dropped (default 5 s). */
  queryTimeoutMs?: number;
  /**
   * A connection idle longer than this is pinged before it is handed out (default 30 s), as one that
   * died while idle without a FIN or RST (a network that dropped packets, a NAT or firewall that
   * forgot it) would otherwise cost a whole statement timeout. The ping waits at most 1 s (at most
   * the statement timeout, if shorter). A busy pool hands out connections idle for less: no ping.
   */
  idleCheckAfterMs?: number;
  /** How often the files of MYSQL_SSL_CA, MYSQL_SSL_CERT and MYSQL_SSL_KEY are read again (default DEFAULT_TLS_REFRESH_MS). */
  tlsRefreshIntervalMs?: number;
  /** Told of the pool and of every operation, so that both show in the service's metrics. */
  observer?: DatabaseObserver;
}

/** How a service's MySQL store is opened: the pool's options; the store adds its own tables. */
export type MysqlStoreOptions = Omit<MysqlDatabaseOptions, 'schema'> & {
  /** Retention and clock of the store's idempotency keys (see idempotency.ts). */
  idempotency?: IdempotencyOptions;
};
