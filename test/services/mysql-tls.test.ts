import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/common/config.js';
import { DatabaseHealthMonitor } from '../../src/services/common/database-health-monitor.js';
import { MysqlDatabase } from '../../src/services/common/mysql-database.js';
import type { MysqlConnectionOptions } from '../../src/services/common/mysql-url.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { loadServiceConfig } from '../../src/services/common/service-config.js';
import { startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { runComponentToExit } from '../e2e/support/processes.js';
import { replaceFile } from '../helpers/certs.js';
import { captureLog } from '../helpers/log-capture.js';
import {
  makeDatabaseCa,
  type ServerCertificate,
  startTlsMariadb,
  type TestDatabaseCa,
  type TlsMariadb,
  tlsMariadbSkipReason,
} from '../helpers/tls-mariadb.js';

const skipReason = tlsMariadbSkipReason();
const PASSWORD = 'tls-Secret-42';

/**
 * MySQL over TLS as the README tells a user to set it up: `?ssl=` JSON in MYSQL_URL, or the CA's
 * file in MYSQL_SSL_CA, against a MariaDB of the test's own whose certificate each test chooses.
 */
describe.skipIf(skipReason)(`MySQL over TLS${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let dir: string;
  let ca: TestDatabaseCa;
  let good: ServerCertificate;
  let server: TlsMariadb;
  let caPem: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shop-mysql-tls-'));
    ca = makeDatabaseCa(dir);
    caPem = readFileSync(ca.caFile, 'utf8');
    good = ca.issue('server', ['IP:127.0.0.1', 'DNS:localhost']);
    server = await startTlsMariadb(ca, good);
    // The user may connect over TLS only, as an operator who requires it sets it up.
    await server.admin(
      `CREATE DATABASE shop; CREATE USER 'shop'@'%' IDENTIFIED BY '${PASSWORD}' REQUIRE SSL; GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER ON shop.* TO 'shop'@'%'`,
    );
  });
  afterEach(async () => {
    await server?.present(good);
  });
  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const url = (ssl?: string, host = '127.0.0.1'): string =>
    `mysql://shop:${PASSWORD}@${host}:${server.port}/shop${ssl === undefined ? '' : `?ssl=${ssl}`}`;

  /** Why a connection to the server fails (the driver's words), or 'connected'. */
  async function connect(connection: MysqlConnectionOptions): Promise<string> {
    const database = new MysqlDatabase({ connection, schema: [], connectTimeoutMs: 5_000 });
    try {
      await database.ping();
      return 'connected';
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause ?? error;
      return cause instanceof Error ? cause.message : String(cause);
    } finally {
      await database.close();
    }
  }

  it('takes the CA inside ?ssl= as the README shows it: JSON in the URL, the "+" of its base64 kept', async () => {
    // Every base64 character is as likely: a CA of 1 KiB without a "+" would not test this.
    expect(caPem).toContain('+');
    const json = JSON.stringify({ rejectUnauthorized: true, ca: caPem });
    expect(await connect(parseMysqlUrl(url(json), 'MYSQL_URL'))).toBe('connected');
    expect(await connect(parseMysqlUrl(url(encodeURIComponent(json)), 'MYSQL_URL'))).toBe('connected');
  });

  it('refuses at start a "ca" that is not PEM, such as a file path, and points to MYSQL_SSL_CA', () => {
    const ssl = JSON.stringify({ rejectUnauthorized: true, ca: ca.caFile });
    expect(() => parseMysqlUrl(url(ssl), 'MYSQL_URL')).toThrow(ConfigError);
    expect(() => parseMysqlUrl(url(ssl), 'MYSQL_URL')).toThrow(
      /"ca": expected PEM certificates \(the text of the CA file, not its path: give a file with --mysql-ssl-ca \(MYSQL_SSL_CA\)\)/,
    );
  });

  it('refuses at start a "ca" that holds a private key, without quoting the key', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const ssl = JSON.stringify({ rejectUnauthorized: true, ca: `${caPem}${keyPem}` });
    expect(() => parseMysqlUrl(url(ssl), 'MYSQL_URL')).toThrow(
      /the "ssl" parameter's "ca" holds a private key: a CA file is handed to every host, and the key with it; give the CA certificates alone$/,
    );
  });

  it('refuses a server whose certificate names another host, unless the URL says verifyIdentity:false', async () => {
    await server.present(ca.issue('elsewhere', ['DNS:db.example']));
    const checked = JSON.stringify({ rejectUnauthorized: true, ca: caPem });
    expect(await connect(parseMysqlUrl(url(encodeURIComponent(checked)), 'MYSQL_URL'))).toMatch(
      /does not match certificate's altnames/,
    );
    expect(await connect(parseMysqlUrl(url(encodeURIComponent(checked), 'localhost'), 'MYSQL_URL'))).toMatch(
      /does not match certificate's altnames/,
    );
    const unchecked = JSON.stringify({ rejectUnauthorized: true, ca: caPem, verifyIdentity: false });
    expect(await connect(parseMysqlUrl(url(encodeURIComponent(unchecked)), 'MYSQL_URL'))).toBe('connected');
  });

  it('checks an IP address host against the certificate\'s IP addresses, not against "localhost"', async () => {
    const ssl = encodeURIComponent(JSON.stringify({ ca: caPem }));
    await server.present(ca.issue('by-address', ['IP:127.0.0.1']));
    expect(await connect(parseMysqlUrl(url(ssl), 'MYSQL_URL'))).toBe('connected');
    await server.present(ca.issue('by-name', ['DNS:localhost']));
    expect(await connect(parseMysqlUrl(url(ssl), 'MYSQL_URL'))).toMatch(
      /IP: 127\.0\.0\.1 is not in the cert's list/,
    );
    expect(await connect(parseMysqlUrl(url(ssl, 'localhost'), 'MYSQL_URL'))).toBe('connected');
  });

  it('refuses a certificate of another CA, and an expired one', async () => {
    const ssl = encodeURIComponent(JSON.stringify({ rejectUnauthorized: true, ca: caPem }));
    await server.present(makeDatabaseCa(dir, 'other CA').issue('server', ['IP:127.0.0.1']));
    expect(await connect(parseMysqlUrl(url(ssl), 'MYSQL_URL'))).toMatch(
      /unable to verify the first certificate/,
    );
    const hour = 60 * 60 * 1000;
    await server.present(
      ca.issue('expired', ['IP:127.0.0.1'], {
        start: new Date(Date.now() - 48 * hour),
        end: new Date(Date.now() - 24 * hour),
      }),
    );
    expect(await connect(parseMysqlUrl(url(ssl), 'MYSQL_URL'))).toMatch(/certificate has expired/);
  });

  it('reaches the server over TLS with the CA given as a file: MYSQL_SSL_CA or --mysql-ssl-ca', async () => {
    for (const [argv, env] of [
      [[], { MYSQL_URL: url(), MYSQL_SSL_CA: ca.caFile }],
      [['--mysql-ssl-ca', ca.caFile], { MYSQL_URL: url() }],
    ] as const) {
      const config = loadServiceConfig(goodsService, argv, env);
      if (config.storage.kind !== 'mysql') throw new Error('expected MySQL');
      const store = goodsService.stores.mysql({ connection: config.storage.connection });
      try {
        await store.createGoods({ name: 'tls', category: 'c', price: 1, description: 'over TLS' }, undefined);
        const page = await store.listGoods({ afterId: 0, size: 100, maxTextBytes: 1 << 20 }, undefined);
        expect(page.rows.map((goods) => goods.name)).toContain('tls');
      } finally {
        await store.close();
      }
    }
    // Checked by name as with ?ssl=: a certificate for another host is refused.
    await server.present(ca.issue('elsewhere-too', ['DNS:db.example']));
    const config = loadServiceConfig(goodsService, [], { MYSQL_URL: url(), MYSQL_SSL_CA: ca.caFile });
    if (config.storage.kind !== 'mysql') throw new Error('expected MySQL');
    expect(await connect(config.storage.connection)).toMatch(/does not match certificate's altnames/);
  });

  /** The line a service's health monitor logs when its database cannot be reached, as JSON. */
  async function databaseDownLine(connection: MysqlConnectionOptions): Promise<string> {
    const { log, lines } = captureLog('goods');
    const database = new MysqlDatabase({ connection, schema: [], log });
    const monitor = new DatabaseHealthMonitor({ probe: () => database.ping(), onChange: () => {}, log });
    monitor.start();
    try {
      const line = await vi.waitFor(() => {
        const down = lines.find((entry) => entry.event === 'database-down');
        if (!down) throw new Error('no database-down line yet');
        return down;
      });
      return JSON.stringify(line);
    } finally {
      monitor.stop();
      await database.close();
    }
  }

  it('says in the log which TLS setting to change, in a line of a readable length, without the password', async () => {
    const noCa = await databaseDownLine(
      parseMysqlUrl(url(encodeURIComponent(JSON.stringify({ rejectUnauthorized: true }))), 'MYSQL_URL'),
    );
    expect(noCa).toContain(
      "database unreachable: not serving (the server's certificate is not issued by a CA this service trusts: give the file of the CA that issued it as --mysql-ssl-ca (MYSQL_SSL_CA))",
    );
    // MariaDB refuses the REQUIRE SSL user without TLS as it refuses a wrong password.
    const plain = await databaseDownLine(parseMysqlUrl(url(), 'MYSQL_URL'));
    expect(plain).toContain("Access denied for user 'shop'");
    expect(plain).toContain('the server may require TLS of this user (REQUIRE SSL)');
    await server.present(ca.issue('elsewhere-named', ['DNS:db.example']));
    const config = loadServiceConfig(goodsService, [], { MYSQL_URL: url(), MYSQL_SSL_CA: ca.caFile });
    if (config.storage.kind !== 'mysql') throw new Error('expected MySQL');
    const misnamed = await databaseDownLine(config.storage.connection);
    expect(misnamed).toContain(
      String.raw`the server's certificate does not name \"127.0.0.1\", MYSQL_URL's host`,
    );
    // The certificate node:tls attached, said by its names, not its 7 KB of key and DER.
    expect(misnamed).toContain('"subjectaltname":"DNS:db.example"');
    expect(misnamed.length).toBeLessThan(2_500);
    for (const line of [noCa, plain, misnamed]) expect(line).not.toContain(PASSWORD);
  });

  it("takes the CAs of MYSQL_SSL_CA's file anew when it changes, without a restart", async () => {
    // A rotation: the server's certificate is the new CA's, and the file still holds the old one.
    const file = join(dir, 'rotating-ca.crt');
    copyFileSync(makeDatabaseCa(dir, 'retired CA').caFile, file);
    const config = loadServiceConfig(goodsService, [], { MYSQL_URL: url(), MYSQL_SSL_CA: file });
    if (config.storage.kind !== 'mysql') throw new Error('expected MySQL');
    const database = new MysqlDatabase({
      connection: config.storage.connection,
      schema: [],
      tlsRefreshIntervalMs: 100,
    });
    const attempt = (): Promise<string> =>
      database.ping().then(
        () => 'connected',
        (error: { cause?: { message?: string } }) => error.cause?.message ?? String(error),
      );
    try {
      expect(await attempt()).toMatch(/self-signed certificate in certificate chain/);
      replaceFile(ca.caFile, file);
      await expect.poll(attempt, { timeout: 5_000 }).toBe('connected');
    } finally {
      await database.close();
    }
  });

  it('says at start whether the service reaches MySQL over TLS, and what it checks', async () => {
    const storageLine = async (argv: readonly string[], env: Record<string, string>): Promise<string> => {
      const config = loadServiceConfig(
        goodsService,
        ['--port', '0', '--metrics-port', 'off', '--distributor', '127.0.0.1:1', ...argv],
        env,
      );
      const { log, lines } = captureLog('goods');
      const running = await startService(goodsService, config, { log });
      await running.stop();
      return JSON.stringify(lines.find((line) => line.event === 'storage'));
    };
    const address = `127.0.0.1:${server.port}/shop`;
    expect(await storageLine([], { MYSQL_URL: url(), MYSQL_SSL_CA: ca.caFile })).toContain(
      `"tls":true,"msg":"storage: mysql://shop:***@${address} over TLS, the server's certificate from a CA of ${ca.caFile} and for the name 127.0.0.1"`,
    );
    const unchecked = encodeURIComponent(JSON.stringify({ ca: caPem, verifyIdentity: false }));
    expect(await storageLine([], { MYSQL_URL: url(unchecked) })).toContain(
      `over TLS, the server's certificate from a CA of the \\"ca\\" of ?ssl= and for any name"`,
    );
    expect(await storageLine([], { MYSQL_URL: url() })).toContain(
      `"tls":false,"msg":"storage: mysql://shop:***@${address} without TLS"`,
    );
  });

  it('refuses MYSQL_SSL_CA beside another CA, or without MYSQL_URL', () => {
    const withCa = url(encodeURIComponent(JSON.stringify({ ca: caPem })));
    for (const [env, message] of [
      [
        { MYSQL_URL: withCa, MYSQL_SSL_CA: ca.caFile },
        /MYSQL_SSL_CA\) and MYSQL_URL's "ssl" parameter both give a "ca"/,
      ],
      [{ MYSQL_URL: url('Amazon%20RDS'), MYSQL_SSL_CA: ca.caFile }, /ssl profile "Amazon RDS" both give CAs/],
      [{ MYSQL_SSL_CA: ca.caFile }, /MYSQL_SSL_CA\) is set but MYSQL_URL is not/],
      // node:tls would take any certificate, of any CA: the file named in the start line, checked against nothing.
      [
        { MYSQL_URL: url(encodeURIComponent('{"rejectUnauthorized":false}')), MYSQL_SSL_CA: ca.caFile },
        /MYSQL_SSL_CA\) is set but MYSQL_URL's "ssl" parameter says "rejectUnauthorized":false, which checks no certificate/,
      ],
    ] as const) {
      expect(() => loadServiceConfig(goodsService, [], env)).toThrow(message);
    }
  });

  it('refuses at start ?ssl= checks that would not be made as written: not true or false, or beside "rejectUnauthorized":false', async () => {
    // What each did: "no" checked 127.0.0.1 against "localhost", 0 checked no name (the start line
    // saying "for the name 127.0.0.1"), and a ca or verifyIdentity beside rejectUnauthorized:false
    // took a certificate of any CA for any name.
    await server.present(ca.issue('localhost-only', ['DNS:localhost']));
    expect(
      await connect({ ...parseMysqlUrl(url(), 'MYSQL_URL'), ssl: { ca: caPem, verifyIdentity: 'no' } }),
    ).toBe('connected');
    for (const [ssl, message] of [
      [{ ca: caPem, verifyIdentity: 'no' }, /"verifyIdentity" must be true or false, got "no"/],
      [{ ca: caPem, verifyIdentity: 0 }, /"verifyIdentity" must be true or false, got 0/],
      [{ rejectUnauthorized: 'false' }, /"rejectUnauthorized" must be true or false, got "false"/],
      [
        { rejectUnauthorized: false, ca: caPem },
        /gives a "ca" with "rejectUnauthorized":false, which checks no certificate/,
      ],
      [
        { rejectUnauthorized: false, verifyIdentity: true },
        /gives "verifyIdentity":true with "rejectUnauthorized":false, which checks no certificate/,
      ],
    ] as const) {
      const written = url(encodeURIComponent(JSON.stringify(ssl)));
      expect(() => parseMysqlUrl(written, 'MYSQL_URL')).toThrow(ConfigError);
      expect(() => parseMysqlUrl(written, 'MYSQL_URL')).toThrow(message);
    }
    // Given twice, the last one was taken: the checks of the first turned off without a word.
    const twice = `${url(encodeURIComponent(JSON.stringify({ ca: caPem })))}&ssl=${encodeURIComponent('{"rejectUnauthorized":false}')}`;
    expect(() => parseMysqlUrl(twice, 'MYSQL_URL')).toThrow(/gives the "ssl" parameter twice/);
    // What stays allowed: TLS with no check at all, said so at start.
    expect(parseMysqlUrl(url(encodeURIComponent('{"rejectUnauthorized":false}')), 'MYSQL_URL').ssl).toEqual({
      rejectUnauthorized: false,
    });
  });

  it('a MYSQL_SSL_CA file that cannot be used stops the service at start: exit 2, the setting named, no password', async () => {
    for (const [file, message] of [
      [
        join(dir, 'missing.crt'),
        /"[^"]*missing\.crt" from --mysql-ssl-ca \(MYSQL_SSL_CA\) cannot be read: no such file/,
      ],
      [good.certFile, /from --mysql-ssl-ca \(MYSQL_SSL_CA\) holds a certificate that is not a CA/],
    ] as const) {
      const { code, output } = await runComponentToExit(
        'src/services/goods/main.ts',
        ['--port', '0', '--metrics-port', 'off'],
        { MYSQL_URL: url(), MYSQL_SSL_CA: file, DISTRIBUTOR_ADDRESS: '127.0.0.1:1' },
      );
      expect(code).toBe(2);
      expect(output).toMatch(message);
      expect(output).not.toContain(PASSWORD);
    }
  });
});
