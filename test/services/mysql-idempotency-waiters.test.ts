import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { afterEach, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import type { Once } from '../../src/services/common/idempotency.js';
import { MysqlDatabase } from '../../src/services/common/mysql-database.js';
import {
  MysqlIdempotencyJournal,
  mysqlIdempotencySchema,
} from '../../src/services/common/mysql-idempotency.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';

const mysqlUrl = inject('mysqlUrl');

/**
 * Calls with one key wait on the first one's claim. When it rolls back, InnoDB lets one waiter
 * through and ends the others as deadlock victims: each must wait on the new claim and answer its
 * outcome, not be told "Database unavailable".
 */
describe.runIf(mysqlUrl)(
  mysqlUrl
    ? 'MySQL idempotency: several calls waiting on one key'
    : 'MySQL idempotency: several calls waiting on one key (skipped: MySQL unreachable here)',
  () => {
    let database: TestDatabase;
    let db: MysqlDatabase;
    beforeEach(async () => {
      database = await createTestDatabase(mysqlUrl);
      db = new MysqlDatabase({
        connection: parseMysqlUrl(database.url, 'test database'),
        schema: [
          'CREATE TABLE IF NOT EXISTS things (id INT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB',
          ...mysqlIdempotencySchema('things_idempotency'),
        ],
      });
      await db.ping();
    });
    afterEach(async () => {
      await db?.close();
      await database?.drop();
    });

    it('the first call rolls back with three waiting: one writes, every waiter answers its outcome', async () => {
      const journal = new MysqlIdempotencyJournal(db, 'things_idempotency');
      const once: Once<number> = {
        claim: { key: 'k', method: 'Make', fingerprint: createHash('sha256').update('k').digest() },
        outcomeOf: (id) => ({ code: status.OK, message: '', response: Buffer.from(String(id)) }),
      };
      const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      const first = journal.run(once, async (sql) => {
        await sql.change('INSERT INTO things () VALUES ()');
        await sleep(600);
        throw new Error('the write failed');
      });
      await sleep(200);
      const waiters = Array.from({ length: 3 }, () =>
        journal.run(once, async (sql) => (await sql.change('INSERT INTO things () VALUES ()')).insertId),
      );
      await expect(first).rejects.toThrow();
      const answers = await Promise.allSettled(waiters);
      const failures = answers.flatMap((answer) =>
        answer.status === 'rejected' ? [`${(answer.reason as Error).message}`] : [],
      );
      expect(failures).toEqual([]);
      const responses = answers.map((answer) =>
        answer.status === 'fulfilled' ? Buffer.from(answer.value.response).toString() : '',
      );
      expect(new Set(responses).size).toBe(1);
      const rows = await db.select<RowDataPacket & { id: number }>('SELECT id FROM things');
      expect(rows.map((row) => String(row.id))).toEqual([responses[0]]);
    });

    it('two claims in a row roll back, the third commits: every waiter answers its outcome', async () => {
      const journal = new MysqlIdempotencyJournal(db, 'things_idempotency');
      const once: Once<number> = {
        claim: { key: 'k', method: 'Make', fingerprint: createHash('sha256').update('k').digest() },
        outcomeOf: (id) => ({ code: status.OK, message: '', response: Buffer.from(String(id)) }),
      };
      const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      // The first two writes fail (the database's transient trouble), each after holding its claim a
      // while, so that every other call is waiting on it when it rolls back.
      let writes = 0;
      const write = async (sql: Parameters<Parameters<typeof journal.run>[1]>[0]) => {
        const id = (await sql.change('INSERT INTO things () VALUES ()')).insertId;
        await sleep(300);
        if (++writes <= 2) throw new Error('the write failed');
        return id;
      };
      const first = journal.run(once, write);
      await sleep(100);
      const waiters = Array.from({ length: 6 }, () => journal.run(once, write));
      await expect(first).rejects.toThrow();
      const answers = await Promise.allSettled(waiters);
      const failures = answers.flatMap((answer) =>
        answer.status === 'rejected' ? [`${(answer.reason as Error).message}`] : [],
      );
      // The second failed write is its own caller's failure; every other waiter answers the commit.
      expect(failures).toEqual(['Internal error']);
      const rows = await db.select<RowDataPacket & { id: number }>('SELECT id FROM things');
      expect(rows).toHaveLength(1);
      const responses = answers.flatMap((answer) =>
        answer.status === 'fulfilled' ? [Buffer.from(answer.value.response).toString()] : [],
      );
      expect(new Set(responses)).toEqual(new Set([String(rows[0]!.id)]));
    });

    it('a RENAME TABLE swaps a copy in while a keyed write holds its claim: the write is made again on the copy, not refused', async () => {
      // A restore under running services (see the README): a copy of both tables, swapped in by one
      // RENAME TABLE. It takes `things` at once, then waits for `things_idempotency`, which the
      // write's claim holds; the write then goes to `things`, and MariaDB ends it as the deadlock's
      // victim. Before, the call was refused UNAVAILABLE (503) although nothing was done.
      const name = new URL(database.url).pathname.slice(1);
      const admin = await createConnection({ uri: mysqlUrl });
      try {
        for (const suffix of ['side', 'old']) {
          await admin.query(`CREATE DATABASE \`${name}_${suffix}\``);
        }
        for (const table of ['things', 'things_idempotency']) {
          await admin.query(`CREATE TABLE \`${name}_side\`.${table} LIKE \`${name}\`.${table}`);
        }
        const journal = new MysqlIdempotencyJournal(db, 'things_idempotency');
        const once: Once<number> = {
          claim: { key: 'k', method: 'Make', fingerprint: createHash('sha256').update('k').digest() },
          outcomeOf: (id) => ({ code: status.OK, message: '', response: Buffer.from(String(id)) }),
        };
        let claimed!: () => void;
        const claimedNow = new Promise<void>((resolve) => {
          claimed = resolve;
        });
        let proceed!: () => void;
        const mayProceed = new Promise<void>((resolve) => {
          proceed = resolve;
        });
        let attempts = 0;
        const call = journal.run(once, async (sql) => {
          if (++attempts === 1) {
            claimed();
            await mayProceed;
          }
          return (await sql.change('INSERT INTO things () VALUES ()')).insertId;
        });
        await claimedNow;
        const swapper = await createConnection({ uri: mysqlUrl });
        const swap = swapper.query(
          ['things', 'things_idempotency']
            .map(
              (table) =>
                `\`${name}\`.${table} TO \`${name}_old\`.${table}, \`${name}_side\`.${table} TO \`${name}\`.${table}`,
            )
            .reduce((statement, pair, index) => `${statement}${index ? ', ' : ''}${pair}`, 'RENAME TABLE '),
        );
        // The rename waits for the claim's table.
        await vi.waitFor(
          async () => {
            const [waiting] = await admin.query<RowDataPacket[]>(
              "SELECT 1 FROM information_schema.PROCESSLIST WHERE INFO LIKE 'RENAME TABLE%' AND STATE LIKE 'Waiting for table metadata lock%'",
            );
            expect(waiting).toHaveLength(1);
          },
          { timeout: 5_000 },
        );
        proceed();
        const outcome = await call;
        await swap.finally(() => swapper.end());
        expect(outcome.code).toBe(status.OK);
        expect(attempts).toBe(2);
        // Made once, on the copy swapped in, with its key; nothing in the tables swapped out.
        const rows = await db.select<RowDataPacket & { id: number }>('SELECT id FROM things');
        expect(rows.map((row) => String(row.id))).toEqual([Buffer.from(outcome.response).toString()]);
        expect((await journal.recall(once.claim))?.code).toBe(status.OK);
        const [old] = await admin.query<RowDataPacket[]>(
          `SELECT (SELECT COUNT(*) FROM \`${name}_old\`.things) + (SELECT COUNT(*) FROM \`${name}_old\`.things_idempotency) AS n`,
        );
        expect(Number(old[0]!.n)).toBe(0);
      } finally {
        for (const suffix of ['side', 'old']) {
          await admin.query(`DROP DATABASE IF EXISTS \`${name}_${suffix}\``);
        }
        await admin.end();
      }
    });
  },
);
