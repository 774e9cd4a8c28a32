import {
  createPool,
  type ExecuteValues,
  type Pool,
  type PoolConnection,
  type PoolOptions,
  type ResultSetHeader,
  type RowDataPacket,
} from 'mysql2/promise';
import { limiterOf } from '../../common/log-limiter.js';
import { type Logger, silentLogger } from '../../common/logger.js';
import { tlsProblemLog } from '../../common/tls-problem-log.js';
import type { TraceSpan } from '../../common/trace-span.js';
import { writeOutcomeUnknown } from './database-errors.js';
import {
  type DatabaseObserver,
  databaseOperation,
  operationOfStatement,
  transactionOn,
} from './database-telemetry.js';
import type { MysqlDatabaseOptions } from './mysql-database-options.js';
import {
  classifyMysqlError,
  cutOffUnanswered,
  MysqlTimeoutError,
  PRIVILEGE_DENIED_CODES,
} from './mysql-errors.js';
import { poolStats } from './mysql-pool-stats.js';
import { type MysqlSchemaStep, tableCreatedBy } from './mysql-schema.js';
import { mysqlTlsHint, mysqlTlsPoolOptions, watchMysqlTlsFiles } from './mysql-tls.js';
import type { MysqlConnectionOptions } from './mysql-url.js';
import type { PageReader, SqlExecutor } from './sql-executor.js';

/** Whether a write's statement is on its way to the server: set by the work just before it sends it. */
interface WriteProgress {
  sent: boolean;
}

/** Set by work that may have left its connection in a state the next user must not get. */
interface ConnectionTaint {
  tainted: boolean;
}

/** How long the server keeps a session that says nothing (its wait_timeout), in seconds. */
const SESSION_IDLE_LIMIT_S = 300;

/** How long the ping of a connection idle past idleCheckAfterMs may take, at most. */
const IDLE_PING_TIMEOUT_MS = 1_000;

/** How long closing the pool waits for its connections, by default. */
export const POOL_CLOSE_TIMEOUT_MS = 2_000;

/**
 * One service's bounded MySQL pool, with the guarantees the services rely on:
 *
 * - at most `connectionLimit` connections; further callers queue, and give up after `acquireTimeoutMs`
 *   (mysql2's pool would queue them forever);
 * - a statement that takes longer than `queryTimeoutMs` fails and its connection is dropped (mysql2's
 *   own `timeout` leaves the connection busy with the abandoned statement);
 * - every failure is a ServiceError: UNAVAILABLE "Database unavailable" when the server cannot be
 *   reached, does not answer, or refuses every write (read_only, a full disk), INTERNAL otherwise, with the driver's error kept as `cause` for logs;
 * - values only ever travel as `?` parameters of prepared statements, and statement stacking is off.
 */
export class MysqlDatabase implements SqlExecutor {
  readonly #pool: Pool;
  readonly #connection: MysqlConnectionOptions;
  /** The pool's TLS options, whose certificate is replaced when its file is renewed. */
  readonly #tlsOptions: Record<string, unknown> | undefined;
  readonly #stopWatchingTlsFiles: () => void;
  readonly #schema: readonly MysqlSchemaStep[];
  /** The tables the schema makes, looked for by every health probe. */
  readonly #tables: readonly string[];
  readonly #log: Logger;
  readonly #observer: DatabaseObserver | undefined;
  readonly #acquireTimeoutMs: number;
  readonly #queryTimeoutMs: number;
  readonly #idleCheckAfterMs: number;
  readonly #idlePingTimeoutMs: number;
  /** When (performance.now()) each pooled connection was last given back (absent: never used, just connected). */
  readonly #idleSince = new WeakMap<object, number>();
  /**
   * A connection idle since this time or earlier is dead: one idle since then was found dead (its
   * ping got no answer, or it broke), and whatever killed it (a network that dropped packets, a NAT
   * that forgot it, a server restart) struck while this one was idle too. It is dropped without a
   * ping, so N dead connections cost one wait, not N.
   */
  #deadIfIdleSince = Number.NEGATIVE_INFINITY;
  /**
   * A connection idle since this time or earlier is pinged before it is handed out, however short
   * its idleness: one idle since then ran over the statement timeout, which a dead connection does,
   * but so does a slow statement on a live one. Only an unanswered ping condemns the rest.
   */
  #checkIfIdleSince = Number.NEGATIVE_INFINITY;
  #schemaReady: Promise<void> | undefined;
  /**
   * The connections the service's calls may hold at once: one fewer than the pool's, so the health
   * probe never queues behind them. Calls that fill the pool (writes waiting for a row lock someone
   * holds) made the probe wait past its acquire timeout, and a database that answered every statement
   * was called unreachable: the instance went NOT_SERVING and its reads were refused with its writes.
   */
  readonly #callLimit: number;
  #callsHolding = 0;
  /** Calls waiting for one of those places, first come first served. */
  readonly #callsWaiting = new Set<() => void>();

  constructor(options: MysqlDatabaseOptions) {
    const { connection } = options;
    this.#connection = connection;
    this.#schema = options.schema;
    this.#tables = options.schema.flatMap((statement) => tableCreatedBy(statement) ?? []);
    this.#log = options.log ?? silentLogger();
    this.#observer = options.observer;
    this.#acquireTimeoutMs = options.acquireTimeoutMs ?? 5_000;
    this.#queryTimeoutMs = options.queryTimeoutMs ?? 5_000;
    this.#idleCheckAfterMs = options.idleCheckAfterMs ?? 30_000;
    this.#idlePingTimeoutMs = Math.min(IDLE_PING_TIMEOUT_MS, this.#queryTimeoutMs);
    this.#callLimit = options.connectionLimit ?? 10;
    // The calls' connections and the probe's (see #callLimit).
    const poolLimit = this.#callLimit + 1;
    const tls = mysqlTlsPoolOptions(connection);
    this.#tlsOptions = typeof tls.ssl === 'object' ? tls.ssl : undefined;
    this.#stopWatchingTlsFiles = watchMysqlTlsFiles(connection, tls, {
      ...tlsProblemLog(this.#log, { peers: 'database' }),
      ...(options.tlsRefreshIntervalMs === undefined
        ? {}
        : { refreshIntervalMs: options.tlsRefreshIntervalMs }),
    });
    this.#pool = createPool({
      host: connection.host,
      port: connection.port,
      user: connection.user,
      password: connection.password,
      database: connection.database,
      // The user's ssl object goes to mysql2 as given (mysql-url.ts checks its PEM texts).
      ...(tls as Pick<PoolOptions, 'ssl' | 'stream'>),
      connectionLimit: poolLimit,
      // Every connection may stay idle (mysql2 closes only those past maxIdle, after idleTimeout):
      // the server drops one idle past its wait_timeout (set below), and mysql2 then takes it out.
      maxIdle: poolLimit,
      idleTimeout: 60_000,
      connectTimeout: options.connectTimeoutMs ?? 3_000,
      enableKeepAlive: true,
      multipleStatements: false,
      charset: 'utf8mb4',
      // DATETIME values are written and read as UTC whatever the process's or the server's time zone.
      timezone: 'Z',
    });
    // A connection that breaks while idle emits 'error'; without a listener that would crash the process.
    this.#pool.pool.on('connection', (core) => {
      core.on('error', (error: Error) => this.#log.debug({ err: error }, 'idle MySQL connection closed'));
      // Bounds the server keeps on its side, as it does not stop a statement when the client gives up
      // on it (the timeout below only drops our end of the connection):
      // - a statement waits for a lock (a row's, or a table's) less long than the statement timeout:
      //   an INSERT waiting for a lock was otherwise committed seconds after its caller had been told
      //   it timed out;
      // - a session idle for SESSION_IDLE_LIMIT_S is dropped, with its transaction: one cut before
      //   its COMMIT otherwise held its locks (an Idempotency-Key's row) for the server's default 8
      //   hours. Idle pooled connections end that way too (see maxIdle above).
      const lockWait = Math.max(1, Math.ceil(this.#queryTimeoutMs / 1000) - 1);
      core.query(
        `SET SESSION innodb_lock_wait_timeout = ${lockWait}, lock_wait_timeout = ${lockWait}, wait_timeout = ${SESSION_IDLE_LIMIT_S}`,
        (error: Error | null) => {
          if (error) this.#log.debug({ err: error }, "could not bound the MySQL session's waits");
        },
      );
    });
    options.observer?.watchPool('mysql', () => {
      const stats = poolStats(this.#pool, poolLimit);
      return { ...stats, waiting: stats.waiting + this.#callsWaiting.size };
    });
  }

  /**
   * Runs a SELECT and resolves with its rows. `parent` is the span of the call it is made for: the
   * statement is traced as its child when the call is (see databaseOperation).
   */
  async select<Row extends RowDataPacket>(
    sql: string,
    values: ExecuteValues = [],
    parent?: TraceSpan,
  ): Promise<Row[]> {
    await this.#ensureSchema();
    return databaseOperation(
      this.#observer,
      'mysql',
      operationOfStatement(sql),
      () => this.#withConnection(async (connection) => (await connection.execute<Row[]>(sql, values))[0]),
      parent,
    );
  }

  /**
   * Runs `work` on one connection of the pool, as one operation named after `sql` (the page's main
   * statement) in metrics and traces: for a list page that must look again, on the same connection,
   * at the ids its consistent read did not see (see mysql-paging.ts). The whole of `work` gets the
   * statement timeout.
   */
  async read<T>(sql: string, work: (reader: PageReader) => Promise<T>, parent?: TraceSpan): Promise<T> {
    await this.#ensureSchema();
    const taint: ConnectionTaint = { tainted: false };
    return databaseOperation(
      this.#observer,
      'mysql',
      operationOfStatement(sql),
      () =>
        this.#withConnection(
          (connection) =>
            work({
              select: async <Row extends RowDataPacket>(statement: string, values: ExecuteValues = []) =>
                (await connection.execute<Row[]>(statement, values))[0],
              selectUncommitted: async <Row extends RowDataPacket>(
                statement: string,
                values: ExecuteValues = [],
              ) => {
                // Without SESSION, the level is the next transaction's only: the SELECT's own
                // (autocommit) transaction. Should the SELECT fail before it starts one (a failed
                // prepare does), the level would wait for whatever runs next on the connection.
                taint.tainted = true;
                await connection.query('SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED');
                const rows = (await connection.execute<Row[]>(statement, values))[0];
                taint.tainted = false;
                return rows;
              },
            }),
          undefined,
          taint,
        ),
      parent,
    );
  }

  /**
   * Runs an INSERT, UPDATE or DELETE and resolves with its result (insertId, affectedRows). An
   * INSERT cut off after it was sent is answered as a write whose outcome is unknown (see
   * writeOutcomeUnknown): it is the one statement the services run on their own that doing twice
   * does not undo (their UPDATE compares before it sets, their DELETEs remove what is named).
   */
  async change(sql: string, values: ExecuteValues = [], parent?: TraceSpan): Promise<ResultSetHeader> {
    await this.#ensureSchema();
    const operation = operationOfStatement(sql);
    const progress: WriteProgress | undefined =
      operation.operation === 'INSERT' ? { sent: false } : undefined;
    return databaseOperation(
      this.#observer,
      'mysql',
      operation,
      () =>
        this.#withConnection(async (connection) => {
          if (progress) progress.sent = true;
          return (await connection.execute<ResultSetHeader>(sql, values))[0];
        }, progress),
      parent,
    );
  }

  /**
   * This database as an executor for the call whose span is `parent` (given only for a sampled call,
   * see traceParentOf): its statements are traced as children of that span; itself when there is
   * none, so an untraced call costs nothing.
   */
  forCall(parent: TraceSpan | undefined): SqlExecutor {
    if (!parent) return this;
    return {
      select: (sql, values) => this.select(sql, values, parent),
      change: (sql, values) => this.change(sql, values, parent),
    };
  }

  /**
   * Runs `work` in one transaction on one connection: committed when it resolves, rolled back when it
   * rejects. The whole transaction gets the statement timeout; one that runs over drops its
   * connection, which rolls back whatever was not committed. Statements inside throw the driver's
   * errors as they are (so that `work` can tell a duplicate key); the transaction's failure is
   * classified like any statement's. `table` names it in metrics and traces: the table it is about.
   * The transaction is one operation, traced as a child of `parent` when the call it is made for is.
   */
  async transaction<T>(
    table: string,
    work: (sql: SqlExecutor) => Promise<T>,
    parent?: TraceSpan,
  ): Promise<T> {
    await this.#ensureSchema();
    return databaseOperation(
      this.#observer,
      'mysql',
      transactionOn(table),
      () => this.#transaction(work),
      parent,
    );
  }

  #transaction<T>(work: (sql: SqlExecutor) => Promise<T>): Promise<T> {
    // Cut before its COMMIT was sent, the transaction is rolled back; cut after, it may be committed.
    const progress: WriteProgress = { sent: false };
    return this.#withConnection(async (connection) => {
      await connection.query('START TRANSACTION');
      try {
        const result = await work({
          select: async <Row extends RowDataPacket>(sql: string, values: ExecuteValues = []) =>
            (await connection.execute<Row[]>(sql, values))[0],
          change: async (sql, values = []) => (await connection.execute<ResultSetHeader>(sql, values))[0],
        });
        progress.sent = true;
        await connection.query('COMMIT');
        return result;
      } catch (error) {
        // A broken connection cannot roll back; the server does when it notices the connection gone.
        await connection.query('ROLLBACK').catch(() => {});
        throw error;
      }
    }, progress);
  }

  /** Resolves when the tables exist and the server answers; rejects with UNAVAILABLE otherwise. */
  async ping(): Promise<void> {
    try {
      await this.#probe();
    } catch (error) {
      // Said with the line the health monitor logs (see DatabaseHealthMonitorOptions.probe).
      const hint = mysqlTlsHint(
        (error as { cause?: unknown }).cause ?? error,
        this.#connection,
        this.#tlsOptions?.cert,
      );
      throw hint === undefined ? error : Object.assign(error as object, { hint });
    }
  }

  async #probe(): Promise<void> {
    await this.#ensureSchema();
    await this.#withProbeConnection(async (connection) => {
      await connection.ping();
      // A table dropped or renamed away under a running service fails every statement on it: the
      // probe says so, and the service stops being routed to until the table is back. It is not
      // made again here: a table renamed away by an online migration would come back empty.
      for (const table of this.#tables) await connection.query(`SELECT 1 FROM ${table} LIMIT 0`);
      // A server that refuses writes (read_only, a full disk) still passes: every instance shares
      // it, so NOT_SERVING would leave the gateway no instance to route to and fail the reads too.
      // Reads go on; each write is UNAVAILABLE, logged with the server's code (see classifyMysqlError).
    });
  }

  /**
   * Closes the pool, waiting at most `timeoutMs` for connections to say goodbye: an idle one says it
   * at once, one still running a statement only once the statement is done.
   */
  async close(timeoutMs = POOL_CLOSE_TIMEOUT_MS): Promise<void> {
    this.#stopWatchingTlsFiles();
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([this.#pool.end().catch(() => {}), gaveUp]);
    } finally {
      clearTimeout(timer);
    }
  }

  #ensureSchema(): Promise<void> {
    if (!this.#schemaReady) {
      const ready = this.#withConnection(async (connection) => {
        for (const statement of this.#schema) {
          try {
            if (typeof statement === 'string') await connection.query(statement);
            else await statement(connection, this.#log);
          } catch (error) {
            // A user who may read and write but not create tables (least privilege, the tables made
            // by an administrator): MySQL checks the CREATE privilege before whether the table
            // exists, so the statement was refused even with the table there, and such a user never
            // served. A table that is there is as good; one that is not keeps the refusal, said as
            // what it is (a table that a database set up by an older build lacks, say), since the
            // health monitor can only call it the database being unreachable.
            const table = tableCreatedBy(statement);
            if (!table || (error as { code?: unknown } | null)?.code !== 'ER_TABLEACCESS_DENIED_ERROR') {
              throw error;
            }
            await connection.query(`SELECT 1 FROM ${table} LIMIT 0`).catch((probeError: unknown) => {
              const created = (statement as string).replace(/\s+/g, ' ');
              const probeCode = (probeError as { code?: unknown } | null)?.code;
              // A user granted privileges table by table is refused a table it has none on, there
              // or not (MySQL does not say which): "missing" alone would send the administrator to
              // create a table that is there. Any other failure (a lost connection) says nothing of it.
              if (probeCode === 'ER_NO_SUCH_TABLE') {
                limiterOf(this.#log).error(
                  `schema-table-missing ${table}`,
                  { event: 'schema-table-missing', table },
                  `the table ${table} is missing (a database set up by an older build has not got it) and this user may not create it: have "${created}" run by a user with the CREATE privilege; until then the service does not serve`,
                );
              } else if (probeCode === 'ER_TABLEACCESS_DENIED_ERROR') {
                limiterOf(this.#log).error(
                  `schema-table-denied ${table}`,
                  { event: 'schema-table-denied', table },
                  `this user may neither create the table ${table} nor read it: if it is missing (a database set up by an older build has not got it), have "${created}" run by a user with the CREATE privilege; then grant this user SELECT, INSERT, UPDATE and DELETE on it; until then the service does not serve`,
                );
              }
              throw error;
            });
          }
        }
      });
      this.#schemaReady = ready;
      ready.catch(() => {
        if (this.#schemaReady === ready) this.#schemaReady = undefined;
      });
    }
    return this.#schemaReady;
  }

  /**
   * Runs `work` on a connection of the pool, within the statement timeout. `progress` is given for a
   * write: once its work says the write was sent, a timeout or a lost connection is answered as a
   * write whose outcome is unknown, not as a database that is unavailable. It waits for one of the
   * calls' places first (see #callLimit).
   */
  async #withConnection<T>(
    work: (connection: PoolConnection) => Promise<T>,
    progress?: WriteProgress,
    taint?: ConnectionTaint,
  ): Promise<T> {
    try {
      await this.#takeCallPlace();
    } catch (error) {
      throw classifyMysqlError(error);
    }
    try {
      return await this.#onConnection(work, progress, taint);
    } finally {
      this.#giveCallPlace();
    }
  }

  /** Runs the health probe's `work` on the connection kept for it, never behind the calls (see #callLimit). */
  #withProbeConnection<T>(work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    return this.#onConnection(work, undefined, undefined);
  }

  /** Waits, at most the acquire timeout, until the calls hold fewer connections than #callLimit. */
  #takeCallPlace(): Promise<void> {
    if (this.#callsHolding < this.#callLimit && this.#callsWaiting.size === 0) {
      this.#callsHolding++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const grant = (): void => {
        clearTimeout(timer);
        this.#callsHolding++;
        resolve();
      };
      const timer = setTimeout(() => {
        this.#callsWaiting.delete(grant);
        reject(new MysqlTimeoutError(`no free MySQL connection within ${this.#acquireTimeoutMs} ms`));
      }, this.#acquireTimeoutMs);
      this.#callsWaiting.add(grant);
    });
  }

  #giveCallPlace(): void {
    this.#callsHolding--;
    const next = this.#callsWaiting.values().next();
    if (next.done) return;
    this.#callsWaiting.delete(next.value);
    next.value();
  }

  async #onConnection<T>(
    work: (connection: PoolConnection) => Promise<T>,
    progress: WriteProgress | undefined,
    taint: ConnectionTaint | undefined,
  ): Promise<T> {
    let connection: PoolConnection;
    try {
      connection = await this.#acquireLive();
    } catch (error) {
      throw classifyMysqlError(error);
    }
    const idleSince = this.#idleSince.get(connection.connection);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new MysqlTimeoutError(`no answer from MySQL within ${this.#queryTimeoutMs} ms`)),
        this.#queryTimeoutMs,
      );
    });
    try {
      const result = await Promise.race([work(connection), timedOut]);
      this.#release(connection);
      return result;
    } catch (error) {
      // A connection that timed out or broke may still be mid-statement: never hand it out again.
      // Nor one its work left tainted (a READ UNCOMMITTED level set for a SELECT that never ran).
      const broken = error instanceof MysqlTimeoutError || (error as { fatal?: boolean }).fatal === true;
      const denied = PRIVILEGE_DENIED_CODES.includes((error as { code?: string } | null)?.code ?? '');
      if (broken || taint?.tainted || denied) {
        connection.destroy();
        if (idleSince !== undefined && error instanceof MysqlTimeoutError) {
          this.#checkIfIdleSince = Math.max(this.#checkIfIdleSince, idleSince);
        } else if (idleSince !== undefined && broken) this.#foundDead(idleSince);
      } else this.#release(connection);
      if (progress?.sent && cutOffUnanswered(error)) {
        throw writeOutcomeUnknown(error, error instanceof MysqlTimeoutError);
      }
      throw classifyMysqlError(error);
    } finally {
      clearTimeout(timer);
    }
  }

  #release(connection: PoolConnection): void {
    this.#idleSince.set(connection.connection, performance.now());
    connection.release();
  }

  #foundDead(idleSince: number): void {
    this.#deadIfIdleSince = Math.max(this.#deadIfIdleSince, idleSince);
  }

  /**
   * A connection from the pool that is not known to be dead. One idle past idleCheckAfterMs, or since
   * before one whose statement ran over its timeout (see #checkIfIdleSince), must answer a ping
   * first; one idle since before a connection found dead went idle is dropped at once (see
   * #deadIfIdleSince). The pool hands out the connection given back last, so after a dead one the
   * next are idle since earlier still and go without a ping, down to a new connection.
   */
  async #acquireLive(): Promise<PoolConnection> {
    for (;;) {
      const connection = await this.#acquire();
      const idleSince = this.#idleSince.get(connection.connection);
      if (idleSince === undefined) return connection;
      if (idleSince > this.#deadIfIdleSince) {
        const suspect = idleSince <= this.#checkIfIdleSince;
        if (!suspect && performance.now() - idleSince <= this.#idleCheckAfterMs) return connection;
        if (await this.#answersPing(connection)) return connection;
        this.#foundDead(idleSince);
        this.#log.debug('idle MySQL connection did not answer a ping: dropped');
      }
      connection.destroy();
    }
  }

  /** Whether the connection answers a ping within the idle ping's timeout. */
  async #answersPing(connection: PoolConnection): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#idlePingTimeoutMs);
    });
    try {
      return await Promise.race([
        connection.ping().then(
          () => true,
          () => false,
        ),
        timedOut,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  #acquire(): Promise<PoolConnection> {
    return new Promise((resolve, reject) => {
      let abandoned = false;
      const timer = setTimeout(() => {
        abandoned = true;
        reject(new MysqlTimeoutError(`no free MySQL connection within ${this.#acquireTimeoutMs} ms`));
      }, this.#acquireTimeoutMs);
      this.#pool.getConnection().then(
        (connection) => {
          clearTimeout(timer);
          // The caller has gone: give the connection straight back to the queue.
          if (abandoned) connection.release();
          else resolve(connection);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }
}
