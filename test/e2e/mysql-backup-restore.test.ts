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
import { type Shop, startShop } from './support/shop.js';

const mysqlUrl = inject('mysqlUrl');
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The commands of the README's first `sh` block after `lead`, comments and `npm start` left out. */
function readmeCommands(lead: string): string[] {
  const from = readme.indexOf(lead);
  expect(from, `the README says "${lead}"`).toBeGreaterThan(-1);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(from))?.[1] ?? '';
  return block
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#') && !line.includes('npm start'));
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

interface Answer {
  errorcode: number;
  errormessage: string;
  userid?: number;
  results?: Array<Record<string, unknown>>;
}

/**
 * The README's MySQL backup and restore, run as written against the real server: a dump of the
 * running shop taken under writes by a user granted SELECT alone, loaded into a new database by a
 * user granted what the README lists, and the services started again on it under a user granted
 * only SELECT, INSERT, UPDATE and DELETE there. The restored shop must answer as the old one did
 * when the dump began: the same accounts signing in, keyed writes answered from their journal
 * without being made again, the failed sign-ins counted on, and ids going on past every id given
 * before the dump, a deleted one's included.
 */
describe.runIf(mysqlUrl)(
  mysqlUrl
    ? 'MySQL backup and restore as the README gives them'
    : 'MySQL backup and restore as the README gives them (skipped: MySQL unreachable here)',
  () => {
    const suffix = randomBytes(4).toString('hex');
    const users = { dump: `shop_dump_${suffix}`, load: `shop_load_${suffix}`, service: `shop_svc_${suffix}` };
    const password = `pw-${suffix}`;
    const work = mkdtempSync(join(tmpdir(), 'shop-mysql-backup-'));
    let shop: Shop;
    let admin: Connection;
    let original: string;
    let restored: string;
    let gatewayUrl: string;

    const forUser = async (user: string, statement: string): Promise<void> => {
      for (const host of ['%', 'localhost'])
        await admin.query(statement.replaceAll('$USER', `'${user}'@'${host}'`));
    };

    /** A HOME whose ~/.my.cnf names the server and this user, as the README's commands expect. */
    const homeOf = (user?: string): string => {
      const server = parseMysqlUrl(mysqlUrl, 'test server');
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
     * Runs one README command in the work folder, as `user` (the URL's user when none). Not blocking:
     * the shop runs in this process and must go on answering while the dump reads.
     */
    const run = async (command: string, user?: string): Promise<void> => {
      const localized = command.replace(/\bshop\b/g, original).replaceAll('shop_restored', restored);
      await promisify(execFile)('sh', ['-c', localized], {
        cwd: work,
        env: { ...process.env, HOME: homeOf(user) },
      });
    };

    const request = async (
      method: string,
      path: string,
      body?: unknown,
      key?: string,
    ): Promise<Answer & { status: number }> => {
      const answer = await send(`${gatewayUrl}${path}`, {
        method,
        headers: { 'Content-Type': 'application/json', ...(key ? { 'Idempotency-Key': key } : {}) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: answer.status, ...(JSON.parse(answer.body) as Answer) };
    };
    const signIn = (pass: string) =>
      request(
        'GET',
        `/members?username=${encodeURIComponent(USERNAME)}&password=${encodeURIComponent(pass)}`,
      );
    const count = async (database: string, table: string, where = '1'): Promise<number> => {
      const [rows] = await admin.query<RowDataPacket[]>(
        `SELECT COUNT(*) AS n FROM \`${database}\`.${table} WHERE ${where}`,
      );
      return Number(rows[0]!.n);
    };

    beforeAll(async () => {
      shop = await startShop({ kind: 'mysql', serverUrl: mysqlUrl });
      gatewayUrl = shop.gatewayUrl;
      original = (shop.storage as Extract<StorageConfig, { kind: 'mysql' }>).connection.database;
      restored = `${original}_restored`;
      admin = await createConnection({ uri: mysqlUrl });
      await forUser(users.dump, `CREATE USER $USER IDENTIFIED BY '${password}'`);
      await forUser(users.dump, `GRANT SELECT ON \`${original}\`.* TO $USER`);
      await forUser(users.load, `CREATE USER $USER IDENTIFIED BY '${password}'`);
      await forUser(
        users.load,
        `GRANT SELECT, INSERT, CREATE, DROP, ALTER, LOCK TABLES ON \`${restored}\`.* TO $USER`,
      );
      await forUser(users.service, `CREATE USER $USER IDENTIFIED BY '${password}'`);
      await forUser(users.service, `GRANT SELECT, INSERT, UPDATE, DELETE ON \`${restored}\`.* TO $USER`);
    }, 30_000);

    afterAll(async () => {
      await shop?.stop();
      if (admin) {
        for (const user of Object.values(users)) await forUser(user, 'DROP USER IF EXISTS $USER');
        await admin.query(`DROP DATABASE IF EXISTS \`${restored}\``);
        await admin.end();
      }
      rmSync(work, { recursive: true, force: true });
    });

    it('a dump taken under writes, loaded into a new database, serves the shop as it was', async () => {
      await vi.waitFor(async () => expect((await request('GET', '/goods')).status).toBe(200), {
        timeout: 10_000,
      });

      // The shop before the backup: an account with two failed sign-ins, three goods (the last
      // deleted), a purchase; every write keyed.
      expect(
        (await request('POST', '/members', { username: USERNAME, password: PASSWORD }, 'k-member')).errorcode,
      ).toBe(0);
      const userid = (await signIn(PASSWORD)).userid!;
      expect(userid).toBeGreaterThan(0);
      for (let i = 0; i < 2; i++) expect((await signIn('wrong')).errormessage).toBe('Invalid password');
      const goods = (n: number) => ({
        name: `goods ${n}`,
        category: 'backup',
        price: n,
        description: `#${n}`,
      });
      for (const n of [1, 2, 3])
        expect((await request('POST', '/goods', goods(n), `k-goods-${n}`)).errorcode).toBe(0);
      expect((await request('DELETE', '/goods?id=3')).errorcode).toBe(0);
      expect((await request('POST', '/purchases', { userid, goodsid: 2 }, 'k-purchase')).errorcode).toBe(0);
      const purchasesBefore = (await request('GET', `/purchases?userid=${userid}`)).results;
      expect(purchasesBefore).toHaveLength(1);

      // Writes go on through the dump: keyed sign-ups, and keyed purchases each of a user of its own.
      let writing = true;
      const answers: string[] = [];
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let n = 0; writing; n++) {
          const id = `${w}-${n}`;
          const member = await request(
            'POST',
            '/members',
            { username: `load-${id}`, password: 'pw' },
            `m-${id}`,
          );
          const purchase = await request(
            'POST',
            '/purchases',
            { userid: 100_000 + w * 10_000 + n, goodsid: 1 },
            `p-${id}`,
          );
          answers.push(
            `${member.status} ${member.errormessage}`,
            `${purchase.status} ${purchase.errormessage}`,
          );
        }
      });
      await vi.waitFor(() => expect(answers.length).toBeGreaterThan(20), { timeout: 10_000 });

      const backup = readmeCommands('On MySQL, back up all three');
      expect(backup).toEqual([
        'mkdir -p -m 700 backups',
        'mariadb-dump --single-transaction shop > backups/shop.sql',
      ]);
      for (const command of backup)
        await run(command, command.includes('mariadb-dump') ? users.dump : undefined);
      writing = false;
      await Promise.all(writers);
      // The dump held back no write.
      expect(new Set(answers)).toEqual(new Set(['200 success']));
      expect(statSync(join(work, 'backups')).mode & 0o777).toBe(0o700);

      const restore = readmeCommands('To restore, load the dump into a new database');
      expect(restore).toEqual([
        "mariadb -e 'CREATE DATABASE shop_restored'",
        'mariadb shop_restored < backups/shop.sql',
      ]);
      for (const command of restore)
        await run(command, command.includes('CREATE DATABASE') ? undefined : users.load);

      const [tables] = await admin.query<RowDataPacket[]>(
        'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
        [restored],
      );
      expect(tables.map((row) => row.name)).toEqual(TABLES);
      // One snapshot: every key the copy holds, it holds the write of, and the other way round.
      const loadMembers = await count(restored, 'members', "username LIKE 'load-%'");
      expect(await count(restored, 'members_idempotency', "idem_key LIKE 'm-%'")).toBe(loadMembers);
      expect(
        await count(
          restored,
          'members',
          `CONCAT('m-', SUBSTRING(username, 6)) NOT IN (SELECT idem_key FROM \`${restored}\`.members_idempotency) AND username LIKE 'load-%'`,
        ),
      ).toBe(0);
      const loadPurchases = await count(restored, 'purchases', 'userid >= 100000');
      expect(await count(restored, 'purchases_idempotency', "idem_key LIKE 'p-%'")).toBe(loadPurchases);
      expect(loadMembers).toBeGreaterThan(0);
      // Taken while they wrote: the writes made after its snapshot are not in it.
      expect(loadMembers).toBeLessThan(await count(original, 'members', "username LIKE 'load-%'"));

      // The failed sign-ins came through (two in a row), as did the account's Argon2id hash.
      const failures = async () => {
        const [rows] = await admin.query<RowDataPacket[]>(
          `SELECT failures FROM \`${restored}\`.sign_in_failures WHERE username = ?`,
          [Buffer.from(USERNAME.normalize('NFC'))],
        );
        return rows.map((row) => Number(row.failures));
      };
      expect(await failures()).toEqual([2]);

      // The services move to the restored database: the old instances stop, new ones start on it.
      const restoredStorage: StorageConfig = {
        kind: 'mysql',
        connection: {
          ...parseMysqlUrl(mysqlUrl, 'test server'),
          database: restored,
          user: users.service,
          password,
        },
      };
      for (const instances of shop.services.values()) for (const instance of instances) await instance.stop();
      for (const { name } of SHOP_SERVICES) await shop.startInstance(name, restoredStorage);

      // The failures count on from the restored two (a 503 while the new instances register counts none).
      await vi.waitFor(async () => expect((await signIn('wrong')).errormessage).toBe('Invalid password'), {
        timeout: 15_000,
      });
      expect(await failures()).toEqual([3]);
      // The account signs in with its password, under its id.
      expect((await signIn(PASSWORD)).userid).toBe(userid);

      // Keyed writes retried are answered from the restored journals, not made again.
      const members = await count(restored, 'members');
      expect(
        (await request('POST', '/members', { username: USERNAME, password: PASSWORD }, 'k-member')).errorcode,
      ).toBe(0);
      expect((await request('POST', '/goods', goods(2), 'k-goods-2')).errorcode).toBe(0);
      expect((await request('POST', '/purchases', { userid, goodsid: 2 }, 'k-purchase')).errorcode).toBe(0);
      expect(await count(restored, 'members')).toBe(members);
      expect((await request('GET', `/purchases?userid=${userid}`)).results).toEqual(purchasesBefore);
      expect((await request('GET', '/goods')).results?.map((row) => row.id)).toEqual([1, 2]);

      // Ids go on past every id given before the dump: goods 3, deleted, is not given again.
      expect((await request('POST', '/goods', goods(4))).errorcode).toBe(0);
      expect((await request('GET', '/goods')).results?.map((row) => row.id)).toEqual([1, 2, 4]);
    }, 60_000);
  },
);
