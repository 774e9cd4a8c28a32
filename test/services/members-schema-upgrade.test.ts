import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Connection, createConnection } from 'mysql2/promise';
import { describe, expect, inject, it, vi } from 'vitest';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { openSqliteDatabase } from '../../src/services/common/sqlite-database.js';
import { membersService } from '../../src/services/members/members-service.js';
import type { MembersStore } from '../../src/services/members/members-store.js';
import { MYSQL_MEMBERS_SCHEMA } from '../../src/services/members/mysql-members-store.js';
import { SQLITE_MEMBERS_SCHEMA } from '../../src/services/members/sqlite-members-store.js';
import { captureLog } from '../helpers/log-capture.js';
import { createTestDatabase } from '../helpers/mysql.js';

/**
 * A store made by an older build opens under this one with its data: b69c9cb made sign_in_failures
 * without the turn columns that came a few commits later, and CREATE TABLE IF NOT EXISTS leaves a
 * table that exists as it is (SQLite members refused to start, MySQL failed every ledger write).
 */
const fixture = (name: string): Promise<string> =>
  readFile(new URL(`./fixtures/old-schemas/${name}`, import.meta.url), 'utf8');

/** The ledger of an old store still counts, and the turn after a wait works on it. */
async function expectLedgerWorks(store: MembersStore): Promise<void> {
  const recorded = await store.recordSignInFailure('alice', 86_400_000, undefined);
  expect(recorded.count).toBe(2); // the failure the old build recorded is kept
  expect(await store.claimSignInTurn('alice', recorded.version, 'one', 10_000, undefined)).toBe(true);
  expect(await store.claimSignInTurn('alice', recorded.version, 'two', 10_000, undefined)).toBe(false);
  await store.releaseSignInTurn('alice', 'one', undefined);
  expect(await store.forgetSignInFailures('alice', undefined)).toMatchObject({ count: 0 });
}

describe('members store made by b69c9cb', () => {
  it('opens on SQLite and its sign-in ledger works', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shop-members-old-'));
    const file = join(dir, 'members.sqlite');
    const old = new Database(file);
    old.exec(await fixture('members-b69c9cb.sqlite.sql'));
    old.close();
    const store = membersService.stores.sqlite(file, {});
    try {
      await expectLedgerWorks(store);
      // A second instance opening the upgraded file adds nothing twice.
      await membersService.stores.sqlite(file, {}).close();
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('opens on SQLite when another instance upgrades the file at the same moment', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shop-members-old-'));
    const file = join(dir, 'members.sqlite');
    const old = new Database(file);
    old.pragma('journal_mode = WAL');
    old.exec(await fixture('members-b69c9cb.sqlite.sql'));
    old.close();
    // The other instance (another connection, as another process has) tries to add the columns
    // while this one's schema runs: between its first read and its own ALTER.
    const other = new Database(file, { timeout: 0 });
    const upgradedMeanwhile: string[] = [];
    const interleaved = (): void => {
      try {
        other.exec('ALTER TABLE sign_in_failures ADD COLUMN turn_until_ms INTEGER NOT NULL DEFAULT 0');
        other.exec("ALTER TABLE sign_in_failures ADD COLUMN turn_holder TEXT NOT NULL DEFAULT ''");
        upgradedMeanwhile.push('yes');
      } catch (error) {
        // It waits for this one's schema, as it would for its busy timeout.
        expect((error as { code?: unknown }).code).toBe('SQLITE_BUSY');
      }
    };
    try {
      const db = openSqliteDatabase(file, [
        SQLITE_MEMBERS_SCHEMA[0],
        interleaved,
        ...SQLITE_MEMBERS_SCHEMA.slice(1),
      ]);
      db.close();
      expect(upgradedMeanwhile).toEqual([]);
      // And the other instance opens it after: nothing is added twice.
      openSqliteDatabase(file, SQLITE_MEMBERS_SCHEMA).close();
    } finally {
      other.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  const mysqlUrl = inject('mysqlUrl');
  it.skipIf(!mysqlUrl)('opens on MySQL and its sign-in ledger works', async () => {
    const database = await createTestDatabase(mysqlUrl!);
    await loadOldMysqlSchema(database.url);
    const options = { connection: parseMysqlUrl(database.url, 'test database') };
    const store = membersService.stores.mysql(options);
    const another = membersService.stores.mysql(options);
    try {
      // Two instances starting at once: both find the columns missing, one adds them first.
      await Promise.all([
        store.signInFailures('alice', undefined),
        another.signInFailures('alice', undefined),
      ]);
      await expectLedgerWorks(store);
    } finally {
      await store.close();
      await another.close();
      await database.drop();
    }
  });

  it.skipIf(!mysqlUrl)(
    'on MySQL with a user who may not ALTER: serves on, and says which statement to have run',
    async () => {
      await asRestrictedUser(
        {
          prefix: 'shop_noalter',
          prepare: (url) => loadOldMysqlSchema(url),
          grants: (database) => [`GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON \`${database}\`.*`],
        },
        async ({ store, lines }) => {
          // Before, the refused ALTER failed the schema, and with it every call of the service.
          await expect(store.ping()).resolves.toBeUndefined();
          expect(
            lines.filter((line) => line.event === 'schema-column-missing').map((line) => line.column),
          ).toEqual(['turn_until_ms', 'turn_holder']);
          // The ledger fails until the statement is run (the throttle then counts per instance).
          await expect(store.recordSignInFailure('alice', 86_400_000, undefined)).rejects.toThrow();
          expect(lines.find((line) => line.event === 'schema-column-missing')?.msg).toContain(
            '"ALTER TABLE sign_in_failures ADD COLUMN turn_until_ms BIGINT NOT NULL DEFAULT 0"',
          );
        },
      );
    },
  );

  it.skipIf(!mysqlUrl)(
    'on MySQL from before sign_in_failures, with a user who may not CREATE: says which statement to have run',
    async () => {
      await asRestrictedUser(
        {
          prefix: 'shop_nocreate',
          // The tables of a build from before b69c9cb (members and its idempotency keys), as an
          // administrator made them.
          prepare: async (url, admin, database) => {
            const setUp = membersService.stores.mysql({ connection: parseMysqlUrl(url, 'test database') });
            await setUp.ping();
            await setUp.close();
            await admin.query(`DROP TABLE \`${database}\`.sign_in_failures`);
          },
          grants: (database) => [`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${database}\`.*`],
        },
        async ({ store, lines, admin, database }) => {
          // The table cannot be made: the service does not serve, and the log says why and what to
          // run (before, only the health monitor's "database unreachable: not serving").
          const missing = await refusedUntilLogged(store, lines, 'schema-table-missing');
          expect(missing).toMatchObject({ table: 'sign_in_failures' });
          expect(missing?.msg).toContain(
            '"CREATE TABLE IF NOT EXISTS sign_in_failures ( username VARBINARY(512)',
          );
          // Once an administrator has run it, the same store serves.
          await admin.query(`USE \`${database}\``);
          const creates = MYSQL_MEMBERS_SCHEMA.find(
            (step): step is string =>
              typeof step === 'string' && step.startsWith('CREATE TABLE IF NOT EXISTS sign_in_failures '),
          );
          await admin.query(creates!);
          await expect(store.ping()).resolves.toBeUndefined();
        },
      );
    },
  );

  it.skipIf(!mysqlUrl)(
    'on MySQL with privileges granted table by table: a table there but not granted is not called missing',
    async () => {
      await asRestrictedUser(
        {
          prefix: 'shop_pertable',
          prepare: async (url) => {
            const setUp = membersService.stores.mysql({ connection: parseMysqlUrl(url, 'test database') });
            await setUp.ping();
            await setUp.close();
          },
          // Every table granted but sign_in_failures, which is there: the administrator made it as
          // told and has not granted it yet.
          grants: (database) =>
            ['members', 'members_idempotency'].map(
              (table) => `GRANT SELECT, INSERT, UPDATE, DELETE ON \`${database}\`.${table}`,
            ),
        },
        async ({ store, lines }) => {
          const denied = await refusedUntilLogged(store, lines, 'schema-table-denied');
          expect(lines.filter((line) => line.event === 'schema-table-missing')).toEqual([]);
          expect(denied).toMatchObject({ table: 'sign_in_failures' });
          expect(denied?.msg).toContain('grant this user SELECT, INSERT, UPDATE and DELETE on it');
        },
      );
    },
  );

  /**
   * The line of `event` that a refused store ping logs. Pinged again, as the health monitor does
   * every 2 s, when a ping was refused for another reason first: on a loaded machine a full run's
   * first ping can fail before the schema is reached (it did once, with no line logged at all).
   */
  async function refusedUntilLogged(
    store: MembersStore,
    lines: ReturnType<typeof captureLog>['lines'],
    event: string,
  ): Promise<(typeof lines)[number] | undefined> {
    const reasons: string[] = [];
    await vi.waitFor(
      async () => {
        await store.ping().then(
          () => expect.fail('the store served'),
          (error: unknown) => reasons.push(String(error)),
        );
        expect(
          lines.some((line) => line.event === event),
          `no ${event} line; the pings were refused with: ${reasons.join('; ')}`,
        ).toBe(true);
      },
      { timeout: 15_000, interval: 200 },
    );
    return lines.find((line) => line.event === event);
  }

  /**
   * A members store on a test database set up by `prepare` (as root), opened as a user of its own
   * that has only what `grants` gives (each statement's "TO user" added); the database and the user
   * are dropped after `check`.
   */
  async function asRestrictedUser(
    setup: {
      prefix: string;
      prepare: (url: string, admin: Connection, database: string) => Promise<void>;
      grants: (database: string) => string[];
    },
    check: (opened: {
      store: MembersStore;
      lines: ReturnType<typeof captureLog>['lines'];
      admin: Connection;
      database: string;
    }) => Promise<void>,
  ): Promise<void> {
    const test = await createTestDatabase(mysqlUrl!);
    const admin = await createConnection({ uri: mysqlUrl! });
    const database = new URL(test.url).pathname.slice(1);
    const user = `${setup.prefix}_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(8).toString('hex');
    const { log, lines } = captureLog('members');
    const store = membersService.stores.mysql({
      connection: { ...parseMysqlUrl(test.url, 'test database'), user, password },
      log,
    });
    try {
      await setup.prepare(test.url, admin, database);
      for (const host of ['%', 'localhost']) {
        await admin.query(`CREATE USER '${user}'@'${host}' IDENTIFIED BY '${password}'`);
        for (const grant of setup.grants(database)) await admin.query(`${grant} TO '${user}'@'${host}'`);
      }
      await check({ store, lines, admin, database });
    } finally {
      await store.close();
      for (const host of ['%', 'localhost']) await admin.query(`DROP USER IF EXISTS '${user}'@'${host}'`);
      await admin.end();
      await test.drop();
    }
  }
});

/** Sets the database at `url` up as b69c9cb left it. */
async function loadOldMysqlSchema(url: string): Promise<void> {
  const connection = await createConnection({ uri: url });
  try {
    for (const statement of (await fixture('members-b69c9cb.mysql.sql')).split(/;\n/)) {
      const sql = statement.replace(/^--.*$/gm, '').trim();
      if (sql) await connection.query(sql);
    }
  } finally {
    await connection.end();
  }
}
