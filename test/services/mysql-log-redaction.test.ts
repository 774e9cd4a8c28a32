import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { classifyMysqlError } from '../../src/services/common/mysql-errors.js';
import { captureLog } from '../helpers/log-capture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';

const mysqlUrl = inject('mysqlUrl');

/**
 * MariaDB's duplicate-key error quotes the row's value ("Duplicate entry 'alice' for key 'name'"),
 * and mysql2 repeats it in message, sqlMessage and stack: an error logged as it came put a user's
 * data in the logs. The line keeps the code and the key, not the value.
 */
describe.runIf(mysqlUrl)(
  mysqlUrl ? 'a MySQL error in the log' : 'a MySQL error in the log (skipped: MySQL unreachable here)',
  () => {
    let database: TestDatabase;
    let duplicate: unknown;

    beforeAll(async () => {
      database = await createTestDatabase(mysqlUrl);
      const connection = await createConnection({ uri: database.url });
      try {
        await connection.query(
          'CREATE TABLE people (name VARCHAR(64) NOT NULL, UNIQUE KEY people_name (name))',
        );
        await connection.execute('INSERT INTO people (name) VALUES (?)', ["alice o'hara"]);
        duplicate = await connection
          .execute('INSERT INTO people (name) VALUES (?)', ["alice o'hara"])
          .catch((error: unknown) => error);
      } finally {
        await connection.end();
      }
    });
    afterAll(async () => {
      await database?.drop();
    });

    it.each([
      ['the driver error', () => duplicate],
      ['the ServiceError that carries it', () => classifyMysqlError(duplicate)],
    ])('%s: code and key, not the value', (_label, logged) => {
      expect(duplicate).toMatchObject({ code: 'ER_DUP_ENTRY' });
      const { log, lines } = captureLog('members');
      log.error({ err: logged() }, 'Internal error');
      const line = JSON.stringify(lines);
      expect(line).not.toContain('alice');
      expect(line).not.toContain('hara');
      expect(line).toContain("Duplicate entry [redacted] for key 'people_name'");
    });
  },
);
