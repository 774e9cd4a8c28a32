import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Connection, createConnection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import type { StorageConfig } from '../../src/services/common/service-config.js';
import { SHOP_SERVICES } from '../../src/services/service-list.js';
import { send } from '../helpers/http.js';
import { type Shop, servingCount, startShop } from './support/shop.js';

const mysqlUrl = inject('mysqlUrl');
/** Where the backups and restores are told (see the README's "The stores, and bounds against abusive clients"). */
const readme = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');

/**
 * The commands of docs/operations.md's first `sh` block after `lead` (a quoted argument may run over several
 * lines), comments and `npm start` left out.
 */
function readmeCommands(lead: string): string[] {
  const from = readme.indexOf(lead);
  expect(from, `docs/operations.md says "${lead}"`).toBeGreaterThan(-1);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(from))?.[1] ?? '';
  const commands: string[] = [];
  let open: string | undefined;
  for (const line of block.split('\n')) {
    if (open !== undefined) open += `\n${line}`;
    else if (line.trim() !== '' && !line.startsWith('#') && !line.includes('npm start')) open = line;
    if (open !== undefined && (open.split("'").length - 1) % 2 === 0) {
      commands.push(open);
      open = undefined;
    }
  }
  return commands;
}

const USERNAME = 'Zoë 😀 backup';
const PASSWORD = 'correct horse battery';
const TABLES = [
  'goods',
  'goods_idempotency',
  'members',
  'members_idempotency',
  'purchases',
  'purchases_idempotency',
  'sign_in_failures',
];
const goods = (n: number) => ({ name: `goods ${n}`, category: 'backup', price: n, description: `#${n}` });

interface Answer {
  status: number;
  errorcode: number;
  errormessage: string;
  userid?: number;
  results?: Array<Record<string, unknown>>;
}

/** A shop under test: where its gateway listens and the database its services use. */
interface Subject {
  readonly shop: Shop;
  readonly database: string;
  /** A folder of its own, where the commands of docs/operations.md run. */
  readonly work: string;
}

/** What the shop held when it was backed up. */
interface Seeded {
  userid: number;
  purchases: Answer['results'];
}

/**
 * docs/operations.md's MySQL backup and restore, run as written against the real server: a dump of the
 * running shop taken under writes by a user granted SELECT alone, then put back in the two ways the
 * docs/operations.md gives: loaded into a new database (by a user granted what docs/operations.md lists) with the
 * services started again on it (under a user granted only SELECT, INSERT, UPDATE and DELETE there),
 * and swapped in under the running services by one RENAME TABLE. Either way the shop must answer
 * as it did when the dump began: the same accounts signing in, keyed writes answered from their
 * journal without being made again, the failed sign-ins counted on, ids going on past every id given
 * before the dump (a deleted one's included), and each key with its write.
 */
describe.runIf(mysqlUrl)(
  mysqlUrl
    ? 'MySQL backup and restore as docs/operations.md gives them'
    : 'MySQL backup and restore as docs/operations.md gives them (skipped: MySQL unreachable here)',
  () => {
    const suffix = randomBytes(4).toString('hex');
    const users = { dump: `shop_dump_${suffix}`, load: `shop_load_${suffix}`, service: `shop_svc_${suffix}` };
    const password = `pw-${suffix}`;
    const work = mkdtempSync(join(tmpdir(), 'shop-mysql-backup-'));
    const server = parseMysqlUrl(mysqlUrl, 'test server');
    const shops: Shop[] = [];
    const databases: string[] = [];
    let admin: Connection;

    const forUser = async (user: string, statement: string): Promise<void> => {
      for (const host of ['%', 'localhost'])
        await admin.query(statement.replaceAll('$USER', `'${user}'@'${host}'`));
    };

    beforeAll(async () => {
      admin = await createConnection({ uri: mysqlUrl });
      for (const user of Object.values(users))
        await forUser(user, `CREATE USER $USER IDENTIFIED BY '${password}'`);
    });

    afterAll(async () => {
      for (const shop of shops) await shop.stop();
      if (admin) {
        for (const user of Object.values(users)) await forUser(user, 'DROP USER IF EXISTS $USER');
        for (const database of databases) await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
        await admin.end();
      }
      rmSync(work, { recursive: true, force: true });
    });

    /** A HOME whose ~/.my.cnf names the server and this user, as the commands of docs/operations.md expect. */
    const homeOf = (user?: string): string => {
      const home = join(work, `home-${user ?? 'admin'}`);
      const login = user ? { user, password } : { user: server.user, password: server.password };
      mkdirSync(home, { recursive: true });
      writeFileSync(
        join(home, '.my.cnf'),
        `[client]\nhost=${server.host}\nport=${server.port}\nuser=${login.user}\n${login.password ? `password=${login.password}\n` : ''}`,
        { mode: 0o600 },
      );
      return home;
    };

    /**
     * Runs one command of docs/operations.md in the subject's folder, its `shop` (and `shop_restored`, `shop_side`,
     * `shop_old`) naming the subject's database, as `user` (the URL's user when none). Not blocking:
     * the shop runs in this process and must go on answering while the command runs.
     */
    const run = async (subject: Subject, command: string, user?: string): Promise<void> => {
      const localized = command.replace(
        /\bshop(_restored|_side|_old)?\b/g,
        (_whole, more: string | undefined) => `${subject.database}${more ?? ''}`,
      );
      await promisify(execFile)('sh', ['-c', localized], {
        cwd: subject.work,
        env: { ...process.env, HOME: homeOf(user) },
      });
    };

    const request = async (
      subject: Subject,
      method: string,
      path: string,
      body?: unknown,
      key?: string,
    ): Promise<Answer> => {
      const answer = await send(`${subject.shop.gatewayUrl}${path}`, {
        method,
        headers: { 'Content-Type': 'application/json', ...(key ? { 'Idempotency-Key': key } : {}) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { ...(JSON.parse(answer.body) as Answer), status: answer.status };
    };
    const signIn = (subject: Subject, pass: string) =>
      request(
        subject,
        'GET',
        `/members?username=${encodeURIComponent(USERNAME)}&password=${encodeURIComponent(pass)}`,
      );
    const count = async (database: string, table: string, where = '1'): Promise<number> => {
      const [rows] = await admin.query<RowDataPacket[]>(
        `SELECT COUNT(*) AS n FROM \`${database}\`.${table} WHERE ${where}`,
      );
      return Number(rows[0]!.n);
    };
    const failures = async (database: string): Promise<number[]> => {
      const [rows] = await admin.query<RowDataPacket[]>(
        `SELECT failures FROM \`${database}\`.sign_in_failures WHERE username = ?`,
        [Buffer.from(USERNAME.normalize('NFC'))],
      );
      return rows.map((row) => Number(row.failures));
    };

    /** A shop on a database of its own, which the dump user may read. */
    async function openShop(): Promise<Subject> {
      const shop = await startShop({ kind: 'mysql', serverUrl: mysqlUrl });
      shops.push(shop);
      const database = (shop.storage as Extract<StorageConfig, { kind: 'mysql' }>).connection.database;
      databases.push(`${database}_restored`, `${database}_side`, `${database}_old`);
      await forUser(users.dump, `GRANT SELECT ON \`${database}\`.* TO $USER`);
      const subject = { shop, database, work: mkdtempSync(join(work, 'shop-')) };
      // Every route the test takes served before it begins.
      for (const [method, path] of [
        ['POST', '/members'],
        ['GET', '/members'],
        ['POST', '/goods'],
        ['GET', '/goods'],
        ['DELETE', '/goods'],
        ['POST', '/purchases'],
        ['GET', '/purchases'],
      ] as const) {
        await vi.waitFor(() => expect(servingCount(shop.gateway, method, path)).toBe(1), { timeout: 10_000 });
      }
      return subject;
    }

    /**
     * The shop before the backup: an account with two failed sign-ins, three goods (the last
     * deleted), a purchase; every write keyed.
     */
    async function seed(subject: Subject): Promise<Seeded> {
      const signUp = { username: USERNAME, password: PASSWORD };
      expect((await request(subject, 'POST', '/members', signUp, 'k-member')).errorcode).toBe(0);
      const userid = (await signIn(subject, PASSWORD)).userid!;
      expect(userid).toBeGreaterThan(0);
      for (let i = 0; i < 2; i++)
        expect((await signIn(subject, 'wrong')).errormessage).toBe('Invalid password');
      for (const n of [1, 2, 3])
        expect((await request(subject, 'POST', '/goods', goods(n), `k-goods-${n}`)).errorcode).toBe(0);
      expect((await request(subject, 'DELETE', '/goods?id=3')).errorcode).toBe(0);
      const purchase = { userid, goodsid: 2 };
      expect((await request(subject, 'POST', '/purchases', purchase, 'k-purchase')).errorcode).toBe(0);
      const { results: purchases } = await request(subject, 'GET', `/purchases?userid=${userid}`);
      expect(purchases).toHaveLength(1);
      return { userid, purchases };
    }

    /**
     * Four clients making keyed sign-ups and keyed purchases (each of a user of its own) until
     * stopped; resolves with every answer, and the sign-ups acknowledged that began after `since()`.
     */
    function startWriters(subject: Subject, since: () => boolean = () => false) {
      let writing = true;
      const answers: string[] = [];
      const signedUpSince: string[] = [];
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let n = 0; writing; n++) {
          const id = `${w}-${n}`;
          const after = since();
          const member = await request(
            subject,
            'POST',
            '/members',
            { username: `load-${id}`, password: 'pw' },
            `m-${id}`,
          );
          if (after && member.errorcode === 0) signedUpSince.push(`load-${id}`);
          const purchase = { userid: 100_000 + w * 10_000 + n, goodsid: 1 };
          const bought = await request(subject, 'POST', '/purchases', purchase, `p-${id}`);
          answers.push(`${member.status} ${member.errormessage}`, `${bought.status} ${bought.errormessage}`);
        }
      });
      return {
        answers,
        async stop() {
          writing = false;
          await Promise.all(writers);
          return { answers, signedUpSince };
        },
      };
    }

    /** Runs docs/operations.md's backup while the writers write. */
    async function backUp(subject: Subject): Promise<void> {
      const backup = readmeCommands('On MySQL, back up all three');
      expect(backup).toEqual([
        'mkdir -p -m 700 backups',
        'mariadb-dump --single-transaction shop > backups/shop.sql',
      ]);
      for (const command of backup)
        await run(subject, command, command.includes('mariadb-dump') ? users.dump : undefined);
      expect(statSync(join(subject.work, 'backups')).mode & 0o777).toBe(0o700);
    }

    /** In `database`, every key of the writers' is there with its write, and every write with its key. */
    async function expectKeysWithTheirWrites(database: string): Promise<number> {
      const loadMembers = await count(database, 'members', "username LIKE 'load-%'");
      expect(await count(database, 'members_idempotency', "idem_key LIKE 'm-%'")).toBe(loadMembers);
      const unkeyed = `username LIKE 'load-%' AND CONCAT('m-', SUBSTRING(username, 6)) NOT IN
        (SELECT idem_key FROM \`${database}\`.members_idempotency)`;
      expect(await count(database, 'members', unkeyed)).toBe(0);
      const loadPurchases = await count(database, 'purchases', 'userid >= 100000');
      expect(await count(database, 'purchases_idempotency', "idem_key LIKE 'p-%'")).toBe(loadPurchases);
      return loadMembers;
    }

    /** The shop, now on `database`, answers as it did when the dump began. */
    async function expectRestored(subject: Subject, database: string, seeded: Seeded): Promise<void> {
      // The failures count on from the restored two (a 503 while instances register counts none).
      await vi.waitFor(
        async () => expect((await signIn(subject, 'wrong')).errormessage).toBe('Invalid password'),
        { timeout: 15_000 },
      );
      expect(await failures(database)).toEqual([3]);
      // The account signs in with its password (its Argon2id hash came through), under its id.
      expect((await signIn(subject, PASSWORD)).userid).toBe(seeded.userid);

      // Keyed writes retried are answered from the restored journals, not made again.
      const members = await count(database, 'members');
      const signUp = { username: USERNAME, password: PASSWORD };
      expect((await request(subject, 'POST', '/members', signUp, 'k-member')).errorcode).toBe(0);
      expect((await request(subject, 'POST', '/goods', goods(2), 'k-goods-2')).errorcode).toBe(0);
      const purchase = { userid: seeded.userid, goodsid: 2 };
      expect((await request(subject, 'POST', '/purchases', purchase, 'k-purchase')).errorcode).toBe(0);
      expect(await count(database, 'members')).toBe(members);
      const listed = await request(subject, 'GET', `/purchases?userid=${seeded.userid}`);
      expect(listed.results).toEqual(seeded.purchases);
      expect((await request(subject, 'GET', '/goods')).results?.map((row) => row.id)).toEqual([1, 2]);

      // Ids go on past every id given before the dump: goods 3, deleted, is not given again.
      expect((await request(subject, 'POST', '/goods', goods(4))).errorcode).toBe(0);
      expect((await request(subject, 'GET', '/goods')).results?.map((row) => row.id)).toEqual([1, 2, 4]);
    }

    it('a dump taken under writes, loaded into a new database, serves the shop as it was', async () => {
      const subject = await openShop();
      const restored = `${subject.database}_restored`;
      await forUser(
        users.load,
        `GRANT SELECT, INSERT, CREATE, DROP, ALTER, LOCK TABLES ON \`${restored}\`.* TO $USER`,
      );
      await forUser(users.service, `GRANT SELECT, INSERT, UPDATE, DELETE ON \`${restored}\`.* TO $USER`);
      const seeded = await seed(subject);

      const writers = startWriters(subject);
      await vi.waitFor(() => expect(writers.answers.length).toBeGreaterThan(20), { timeout: 10_000 });
      await backUp(subject);
      const { answers } = await writers.stop();
      // The dump held back no write.
      expect(new Set(answers)).toEqual(new Set(['200 success']));

      const restore = readmeCommands('To restore, load the dump into a new database');
      expect(restore).toEqual([
        "mariadb -e 'CREATE DATABASE shop_restored'",
        'mariadb shop_restored < backups/shop.sql',
      ]);
      for (const command of restore)
        await run(subject, command, command.includes('CREATE DATABASE') ? undefined : users.load);

      const [tables] = await admin.query<RowDataPacket[]>(
        'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
        [restored],
      );
      expect(tables.map((row) => row.name)).toEqual(TABLES);
      // One snapshot: every key the copy holds, it holds the write of, and the other way round.
      const loadMembers = await expectKeysWithTheirWrites(restored);
      expect(loadMembers).toBeGreaterThan(0);
      // Taken while they wrote: the writes made after its snapshot are not in it.
      expect(loadMembers).toBeLessThan(await count(subject.database, 'members', "username LIKE 'load-%'"));
      // The failed sign-ins came through: two in a row.
      expect(await failures(restored)).toEqual([2]);

      // The services move to the restored database: the old instances stop, new ones start on it.
      const restoredStorage: StorageConfig = {
        kind: 'mysql',
        connection: { ...server, database: restored, user: users.service, password },
      };
      for (const instances of subject.shop.services.values())
        for (const instance of instances) await instance.stop();
      for (const { name } of SHOP_SERVICES) await subject.shop.startInstance(name, restoredStorage);

      await expectRestored(subject, restored, seeded);
    }, 60_000);

    it('a dump swapped in by one RENAME TABLE under the running services: no write refused, none split from its key', async () => {
      const subject = await openShop();
      const seeded = await seed(subject);

      let swapped = false;
      const writers = startWriters(subject, () => swapped);
      await vi.waitFor(() => expect(writers.answers.length).toBeGreaterThan(20), { timeout: 10_000 });
      await backUp(subject);
      const swap = readmeCommands('or load the dump into a database of its own');
      expect(swap).toHaveLength(3);
      expect(swap[2]).toMatch(/^mariadb -e 'RENAME TABLE\n/);
      // Every table of every service is swapped, none left behind.
      for (const table of TABLES) expect(swap[2]).toContain(`shop_side.${table} TO shop.${table}`);
      for (const command of swap) await run(subject, command);
      swapped = true;
      // Writes after the swap, into the restored tables.
      await vi.waitFor(() => expect(writers.answers.length).toBeGreaterThan(80), { timeout: 10_000 });
      const { answers, signedUpSince } = await writers.stop();
      // The swap refused no write, nor did the dump or the load beside.
      expect(new Set(answers)).toEqual(new Set(['200 success']));

      const live = subject.database;
      const old = `${live}_old`;
      await expectKeysWithTheirWrites(live);
      await expectKeysWithTheirWrites(old);
      // Every sign-up made after the swap is in the restored tables.
      expect(signedUpSince.length).toBeGreaterThan(0);
      const since = signedUpSince.map((name) => `'${name}'`).join(', ');
      expect(await count(live, 'members', `username IN (${since})`)).toBe(signedUpSince.length);
      // The ones made between the dump and the swap are not: they stayed in the replaced tables.
      const keptAside = `username LIKE 'load-%' AND username NOT IN (SELECT username FROM \`${live}\`.members)`;
      expect(await count(old, 'members', keptAside)).toBeGreaterThan(0);

      await expectRestored(subject, live, seeded);
    }, 60_000);
  },
);
