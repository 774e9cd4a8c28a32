import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { Logger } from '../../common/logger.js';

/** One step of a service's schema: a statement, or a change that must look at the database first. */
export type MysqlSchemaStep = string | ((connection: PoolConnection, log: Logger) => Promise<void>);

/** The table a schema step makes, or undefined if it makes none. */
export function tableCreatedBy(step: MysqlSchemaStep): string | undefined {
  return typeof step === 'string' ? /^CREATE TABLE IF NOT EXISTS (\w+)/.exec(step)?.[1] : undefined;
}

/**
 * Adds to `table` those of `columns` (name → definition) it lacks: a database set up by a build from
 * before they were added keeps its table as it was (CREATE TABLE IF NOT EXISTS leaves it), and the
 * statements that name them would fail. Each definition needs a DEFAULT for the rows already there.
 * Only a table that lacks one needs the ALTER privilege; a user without it (the tables made by an
 * administrator) is told the statement to have run, and the service serves on without the column:
 * the statements that name it fail, not the whole service.
 */
export function mysqlColumnsAdded(table: string, columns: Readonly<Record<string, string>>): MysqlSchemaStep {
  return async (connection, log) => {
    const [rows] = await connection.query<RowDataPacket[]>(
      'SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
      [table],
    );
    const present = new Set(rows.map((row) => String(row.name)));
    for (const [name, definition] of Object.entries(columns)) {
      if (present.has(name)) continue;
      const statement = `ALTER TABLE ${table} ADD COLUMN ${name} ${definition}`;
      await connection.query(statement).catch((error: unknown) => {
        const code = (error as { code?: unknown } | null)?.code;
        // Another instance starting on the same database added it meanwhile.
        if (code === 'ER_DUP_FIELDNAME') return;
        if (code !== 'ER_TABLEACCESS_DENIED_ERROR') throw error;
        log.error(
          { event: 'schema-column-missing', table, column: name },
          `${table} lacks its column ${name}, which a table made by an older build has not, and this user may not add it: have "${statement}" run by a user with the ALTER privilege; until then what uses it fails`,
        );
      });
    }
  };
}
