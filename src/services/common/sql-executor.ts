import type { ExecuteValues, ResultSetHeader, RowDataPacket } from 'mysql2/promise';

/** What runs statements: the pool (each statement on any connection) or one transaction's connection. */
export interface SqlExecutor {
  /** Runs a SELECT and resolves with its rows. */
  select<Row extends RowDataPacket>(sql: string, values?: ExecuteValues): Promise<Row[]>;
  /** Runs an INSERT, UPDATE or DELETE and resolves with its result (insertId, affectedRows). */
  change(sql: string, values?: ExecuteValues): Promise<ResultSetHeader>;
}

/**
 * One connection's reads, for a list page (see MysqlDatabase.read): consistent reads, as the pool's,
 * and at most a few statements at READ UNCOMMITTED, to see which ids are written but not committed.
 */
export interface PageReader {
  /** Runs a SELECT as the pool does (a consistent read, at the server's isolation level). */
  select<Row extends RowDataPacket>(sql: string, values?: ExecuteValues): Promise<Row[]>;
  /**
   * Runs one SELECT at READ UNCOMMITTED: it sees rows other transactions inserted and have not
   * committed yet. Only this statement: the level is set for the next transaction alone, and a
   * connection whose statement failed before it ran (which would leave the level for the next one)
   * is dropped, never given back to the pool.
   */
  selectUncommitted<Row extends RowDataPacket>(sql: string, values?: ExecuteValues): Promise<Row[]>;
}
