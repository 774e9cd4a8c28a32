import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MysqlDatabase } from '../../src/services/common/mysql-database.js';
import { describeMysqlTls } from '../../src/services/common/mysql-tls.js';
import type { MysqlConnectionOptions } from '../../src/services/common/mysql-url.js';
import { loadServiceConfig } from '../../src/services/common/service-config.js';
import { startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { SHOP_SERVICES } from '../../src/services/service-list.js';
import {
  descendantPids,
  freePort,
  isRunning,
  launcherEnv,
  runComponentToExit,
  spawnComponent,
} from '../e2e/support/processes.js';
import { replaceFile } from '../helpers/certs.js';
import { send } from '../helpers/http.js';
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
const PASSWORD = 'x509-Secret-42';

/**
 * A MySQL user created REQUIRE X509 (or SUBJECT) reached with the client certificate and key as
 * files, MYSQL_SSL_CERT and MYSQL_SSL_KEY, as the README tells a user to, against a MariaDB of the
 * test's own with TLS on, whose CA issues the server's certificate and the clients'.
 */
describe.skipIf(skipReason)(
  `MySQL client certificates${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    let dir: string;
    let ca: TestDatabaseCa;
    let server: TlsMariadb;
    /** For the user REQUIRE X509: any certificate of the CA. */
    let client: ServerCertificate;
    /** For the user REQUIRE SUBJECT '/CN=alice'. */
    let alice: ServerCertificate;
    const cleanups: Array<() => void> = [];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'shop-mysql-x509-'));
      ca = makeDatabaseCa(dir);
      server = await startTlsMariadb(ca, ca.issue('server', ['IP:127.0.0.1']));
      client = ca.issueClient('shop');
      alice = ca.issueClient('alice');
      const grant = 'SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER ON shop.*';
      await server.admin(
        [
          'CREATE DATABASE shop',
          `CREATE USER 'x509'@'%' IDENTIFIED BY '${PASSWORD}' REQUIRE X509`,
          `CREATE USER 'alice'@'%' IDENTIFIED BY '${PASSWORD}' REQUIRE SUBJECT '/CN=alice'`,
          `GRANT ${grant} TO 'x509'@'%'`,
          `GRANT ${grant} TO 'alice'@'%'`,
        ].join('; '),
      );
    });
    afterEach(() => {
      for (const cleanup of cleanups.splice(0).reverse()) cleanup();
    });
    afterAll(async () => {
      await server?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const url = (user: string, ssl?: string): string =>
      `mysql://${user}:${PASSWORD}@127.0.0.1:${server.port}/shop${ssl === undefined ? '' : `?ssl=${ssl}`}`;
    /** The environment of a service reaching the server as `user`, with `files` as its client certificate. */
    const envOf = (user: string, files?: ServerCertificate): Record<string, string> => ({
      MYSQL_URL: url(user),
      MYSQL_SSL_CA: ca.caFile,
      ...(files === undefined ? {} : { MYSQL_SSL_CERT: files.certFile, MYSQL_SSL_KEY: files.keyFile }),
    });
    const connectionOf = (
      env: Record<string, string>,
      argv: readonly string[] = [],
    ): MysqlConnectionOptions => {
      const config = loadServiceConfig(goodsService, argv, env);
      if (config.storage.kind !== 'mysql') throw new Error('expected MySQL');
      return config.storage.connection;
    };
    /** The lines of a PEM file's base64: none of a key's may show anywhere. */
    const pemBody = (file: string): string[] =>
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line !== '' && !line.startsWith('-----'));
    const expectNoKey = (text: string): void => {
      expect(text).not.toContain('PRIVATE KEY');
      for (const files of [client, alice]) {
        for (const line of pemBody(files.keyFile)) expect(text).not.toContain(line);
      }
    };

    /** 'connected', or why the connection failed: the driver's words and the hint the log adds. */
    async function attempt(database: MysqlDatabase): Promise<string> {
      try {
        await database.ping();
        return 'connected';
      } catch (error) {
        const { cause, hint } = error as { cause?: { message?: string }; hint?: string };
        return `${cause?.message ?? String(error)} | ${hint ?? 'no hint'}`;
      }
    }
    async function connect(connection: MysqlConnectionOptions): Promise<string> {
      const database = new MysqlDatabase({ connection, schema: [], connectTimeoutMs: 5_000 });
      try {
        return await attempt(database);
      } finally {
        await database.close();
      }
    }

    it('refuses a REQUIRE X509 user without a client certificate, and the log names the settings to give', async () => {
      const refused = await connect(connectionOf(envOf('x509')));
      expect(refused).toContain("Access denied for user 'x509'");
      expect(refused).toContain(
        'the server may require a client certificate of this user (REQUIRE X509, SUBJECT or ISSUER): give its files as --mysql-ssl-cert (MYSQL_SSL_CERT) and --mysql-ssl-key (MYSQL_SSL_KEY)',
      );
      expect(await connect(connectionOf(envOf('x509', client)))).toBe('connected');
    });

    it('reaches the server as a REQUIRE X509 user from every service, with MYSQL_SSL_CERT/KEY or --mysql-ssl-cert/key', async () => {
      for (const service of SHOP_SERVICES) {
        const config = loadServiceConfig(service, [], envOf('x509', client));
        if (config.storage.kind !== 'mysql') throw new Error('expected MySQL');
        const store = service.stores.mysql({ connection: config.storage.connection });
        try {
          // Creates the service's tables as that user, and reads them.
          await expect(store.ping(), service.name).resolves.toBeUndefined();
        } finally {
          await store.close();
        }
      }
      const connection = connectionOf(envOf('x509'), [
        '--mysql-ssl-cert',
        client.certFile,
        '--mysql-ssl-key',
        client.keyFile,
      ]);
      const store = goodsService.stores.mysql({ connection });
      try {
        await store.createGoods(
          { name: 'x509', category: 'c', price: 1, description: 'by certificate' },
          undefined,
        );
        const page = await store.listGoods({ afterId: 0, size: 100, maxTextBytes: 1 << 20 }, undefined);
        expect(page.rows.map((goods) => goods.name)).toContain('x509');
      } finally {
        await store.close();
      }
    });

    it('a REQUIRE SUBJECT user takes the certificate of that subject only; the log says what to look at', async () => {
      const refused = await connect(connectionOf(envOf('alice', client)));
      expect(refused).toContain("Access denied for user 'alice'");
      expect(refused).toContain(
        "the user's REQUIRE SUBJECT or ISSUER (SHOW CREATE USER) may name another subject or issuer than those of the client certificate of --mysql-ssl-cert (MYSQL_SSL_CERT)",
      );
      expect(await connect(connectionOf(envOf('alice', alice)))).toBe('connected');
    });

    it('says why the server refused a client certificate: not of a CA it trusts, not for client authentication', async () => {
      const foreign = makeDatabaseCa(dir, 'foreign CA').issueClient('shop');
      expect(await connect(connectionOf(envOf('x509', foreign)))).toMatch(
        /alert unknown ca.* \| the server refused the client certificate of --mysql-ssl-cert \(MYSQL_SSL_CERT\): it is not issued by a CA the server trusts/s,
      );
      const serverOnly = ca.issue('not-a-client', ['DNS:shop.example']);
      expect(await connect(connectionOf(envOf('x509', serverOnly)))).toMatch(
        /alert unsupported certificate.* \| the server refused the client certificate of --mysql-ssl-cert \(MYSQL_SSL_CERT\): it is not for client authentication/s,
      );
    });

    it('says that the server refused a client certificate whose key is too small for it, which node:tls took', async () => {
      const small = ca.issueClient('small', undefined, 'rsa:1024');
      let takenByNode = true;
      try {
        createSecureContext({ cert: readFileSync(small.certFile), key: readFileSync(small.keyFile) });
      } catch {
        // A Node whose OpenSSL asks for 2048 bits itself refuses the pair at start (as of 512 bits below).
        takenByNode = false;
      }
      if (!takenByNode) return;
      // MariaDB answers only "bad certificate"; the service said no more than that it was refused.
      expect(await connect(connectionOf(envOf('x509', small)))).toMatch(
        /alert bad certificate.* \| the server refused the client certificate of --mysql-ssl-cert \(MYSQL_SSL_CERT\): its key, RSA of 1024 bits, is smaller than the 2048 bits a server at OpenSSL's security level 2 takes/s,
      );
    });

    it("takes a renewed client certificate without a restart; a key not the certificate's is logged, the one in use kept, and no key logged", async () => {
      const rotating = { certFile: join(dir, 'rotating.crt'), keyFile: join(dir, 'rotating.key') };
      replaceFile(client.certFile, rotating.certFile);
      replaceFile(client.keyFile, rotating.keyFile);
      const { log, lines } = captureLog('goods');
      const database = new MysqlDatabase({
        connection: connectionOf(envOf('alice', rotating)),
        schema: [],
        log,
        tlsRefreshIntervalMs: 100,
      });
      try {
        // The certificate is the CA's but not alice's: the renewal brings the subject her user requires.
        expect(await attempt(database)).toContain("Access denied for user 'alice'");
        // Halfway through: the certificate is the new one, the key still the old one's.
        replaceFile(alice.certFile, rotating.certFile);
        await expect
          .poll(() => lines.filter((line) => line.event === 'tls-reload-failed').length)
          .toBeGreaterThan(0);
        expect(await attempt(database)).toContain("Access denied for user 'alice'");
        replaceFile(alice.keyFile, rotating.keyFile);
        await expect.poll(() => attempt(database), { timeout: 5_000 }).toBe('connected');
        // A file that is no key put in later is refused, and alice's certificate and key stay in
        // use: the connections the server is made to drop are opened again with them.
        replaceFile(alice.certFile, rotating.keyFile);
        await expect
          .poll(() =>
            lines.filter((line) => String(line.msg).includes('expected an unencrypted PEM private key')),
          )
          .toHaveLength(1);
        await server.admin("KILL USER 'alice'");
        await expect.poll(() => attempt(database), { timeout: 5_000 }).toBe('connected');
        // A pair that matches and is in its dates but that node:tls refuses (a key too small for
        // OpenSSL's security level) is refused too: taken, it failed every new connection.
        const weak = ca.issueClient('alice', undefined, 'rsa:512');
        replaceFile(weak.certFile, rotating.certFile);
        replaceFile(weak.keyFile, rotating.keyFile);
        await expect
          .poll(() =>
            lines.filter((line) => String(line.msg).includes('cannot be used for TLS (ee key too small)')),
          )
          .toHaveLength(1);
        await server.admin("KILL USER 'alice'");
        await expect.poll(() => attempt(database), { timeout: 5_000 }).toBe('connected');
      } finally {
        await database.close();
      }
      const failures = lines
        .filter((line) => line.event === 'tls-reload-failed')
        .map((line) => String(line.msg));
      expect(failures[0]).toContain(
        `TLS key file "${rotating.keyFile}" from --mysql-ssl-key (MYSQL_SSL_KEY) is not the key of TLS certificate file "${rotating.certFile}" from --mysql-ssl-cert (MYSQL_SSL_CERT): the TLS files in use before stay in use`,
      );
      expectNoKey(JSON.stringify(lines));
    });

    it('says at start which client certificate the service shows the server', async () => {
      const config = loadServiceConfig(
        goodsService,
        ['--port', '0', '--metrics-port', 'off', '--distributor', '127.0.0.1:1'],
        envOf('x509', client),
      );
      const { log, lines } = captureLog('goods');
      const running = await startService(goodsService, config, { log });
      await running.stop();
      expect(JSON.stringify(lines.find((line) => line.event === 'storage'))).toContain(
        `over TLS, the server's certificate from a CA of ${ca.caFile} and for the name 127.0.0.1, the client certificate of ${client.certFile}"`,
      );
      expectNoKey(JSON.stringify(lines));
    });

    it('refuses at start a certificate without its key, one beside the ?ssl= one, with a profile, or without MYSQL_URL', () => {
      const certPem = readFileSync(client.certFile, 'utf8');
      const keyPem = readFileSync(client.keyFile, 'utf8');
      const files = { MYSQL_SSL_CERT: client.certFile, MYSQL_SSL_KEY: client.keyFile };
      for (const [env, message] of [
        [
          { MYSQL_URL: url('x509'), MYSQL_SSL_CERT: client.certFile },
          /--mysql-ssl-cert \(MYSQL_SSL_CERT\) is set but --mysql-ssl-key \(MYSQL_SSL_KEY\) is not: give the file of the certificate's private key too/,
        ],
        [
          { MYSQL_URL: url('x509'), MYSQL_SSL_KEY: client.keyFile },
          /--mysql-ssl-key \(MYSQL_SSL_KEY\) is set but --mysql-ssl-cert \(MYSQL_SSL_CERT\) is not/,
        ],
        [
          {
            MYSQL_URL: url('x509', encodeURIComponent(JSON.stringify({ cert: certPem, key: keyPem }))),
            ...files,
          },
          /MYSQL_SSL_CERT\) and MYSQL_URL's "ssl" parameter both give a client certificate \("cert", "key"\): give one/,
        ],
        [
          { MYSQL_URL: url('x509', encodeURIComponent('{"passphrase":"p"}')), ...files },
          /both give a client certificate \("passphrase"\)/,
        ],
        [
          { MYSQL_URL: url('x509', 'Amazon%20RDS'), ...files },
          /MYSQL_SSL_CERT\) cannot go with MYSQL_URL's ssl profile "Amazon RDS"/,
        ],
        [files, /--mysql-ssl-cert \(MYSQL_SSL_CERT\) is set but MYSQL_URL is not/],
      ] as const) {
        let thrown: unknown;
        try {
          loadServiceConfig(goodsService, [], env);
        } catch (error) {
          thrown = error;
        }
        expect(String(thrown)).toMatch(message);
        expectNoKey(String(thrown));
      }
    });

    it("turns TLS on with the files alone, as mysql --ssl-cert does, checking the server's certificate against Node's CAs", async () => {
      const connection = connectionOf({
        MYSQL_URL: url('x509'),
        MYSQL_SSL_CERT: client.certFile,
        MYSQL_SSL_KEY: client.keyFile,
      });
      expect(describeMysqlTls(connection)).toBe(
        `over TLS, the server's certificate from a public CA (Node's) and for the name 127.0.0.1, the client certificate of ${client.certFile}`,
      );
      expect(await connect(connection)).toMatch(
        /self-signed certificate in certificate chain \| the server's certificate is not issued by a CA this service trusts: give the file of the CA that issued it as --mysql-ssl-ca \(MYSQL_SSL_CA\)/,
      );
    });

    it('a client certificate or key file that cannot be used stops the service at start: exit 2, the setting named, no key', async () => {
      const expired = ca.issueClient('expired', {
        start: new Date(Date.now() - 48 * 60 * 60 * 1000),
        end: new Date(Date.now() - 24 * 60 * 60 * 1000),
      });
      // Matched and in its dates, but refused by node:tls: the service ran, its database down.
      const weak = ca.issueClient('weak', undefined, 'rsa:512');
      for (const [files, message] of [
        [
          { MYSQL_SSL_CERT: join(dir, 'missing.crt'), MYSQL_SSL_KEY: client.keyFile },
          /"[^"]*missing\.crt" from --mysql-ssl-cert \(MYSQL_SSL_CERT\) cannot be read: no such file/,
        ],
        // The two swapped: neither is what its setting needs.
        [
          { MYSQL_SSL_CERT: client.keyFile, MYSQL_SSL_KEY: client.certFile },
          /from --mysql-ssl-cert \(MYSQL_SSL_CERT\): expected a PEM certificate/,
        ],
        [
          { MYSQL_SSL_CERT: client.certFile, MYSQL_SSL_KEY: client.certFile },
          /from --mysql-ssl-key \(MYSQL_SSL_KEY\): expected an unencrypted PEM private key/,
        ],
        [
          { MYSQL_SSL_CERT: client.certFile, MYSQL_SSL_KEY: alice.keyFile },
          /from --mysql-ssl-key \(MYSQL_SSL_KEY\) is not the key of TLS certificate file "[^"]*" from --mysql-ssl-cert \(MYSQL_SSL_CERT\)/,
        ],
        [
          { MYSQL_SSL_CERT: expired.certFile, MYSQL_SSL_KEY: expired.keyFile },
          /from --mysql-ssl-cert \(MYSQL_SSL_CERT\) expired on /,
        ],
        [
          { MYSQL_SSL_CERT: client.certFile },
          /MYSQL_SSL_CERT\) is set but --mysql-ssl-key \(MYSQL_SSL_KEY\) is not/,
        ],
        [
          { MYSQL_SSL_CERT: weak.certFile, MYSQL_SSL_KEY: weak.keyFile },
          /from --mysql-ssl-cert \(MYSQL_SSL_CERT\) and TLS key file "[^"]*" from --mysql-ssl-key \(MYSQL_SSL_KEY\) cannot be used for TLS \(ee key too small\): its key is too small for OpenSSL's security level/,
        ],
        // The key's text where its path goes, as ?ssl= took it, or as a secret store hands it over:
        // a message naming the file by its path printed the key, and the start line named the
        // certificate's "path" before the files were read.
        [
          { MYSQL_SSL_CERT: client.certFile, MYSQL_SSL_KEY: readFileSync(client.keyFile, 'utf8') },
          /^MYSQL_SSL_KEY: expected the path of a PEM file, got what looks like the contents of one \(PEM text or its base64, not shown: it may be a private key\)/m,
        ],
        [
          { MYSQL_SSL_CERT: readFileSync(client.keyFile, 'utf8'), MYSQL_SSL_KEY: client.keyFile },
          /^MYSQL_SSL_CERT: expected the path of a PEM file, got what looks like the contents of one/m,
        ],
        [
          { MYSQL_SSL_CERT: client.certFile, MYSQL_SSL_KEY: readFileSync(client.keyFile).toString('base64') },
          /^MYSQL_SSL_KEY: expected the path of a PEM file, got what looks like the contents of one/m,
        ],
        [
          { MYSQL_SSL_CERT: client.certFile, MYSQL_SSL_KEY: pemBody(client.keyFile).join('') },
          /^MYSQL_SSL_KEY: expected the path of a PEM file, got what looks like the contents of one/m,
        ],
      ] as const) {
        const { code, output } = await runComponentToExit(
          'src/services/goods/main.ts',
          ['--port', '0', '--metrics-port', 'off'],
          { ...envOf('x509'), ...files, DISTRIBUTOR_ADDRESS: '127.0.0.1:1' },
        );
        expect(code, output).toBe(2);
        expect(output).toMatch(message);
        expect(output).not.toContain(PASSWORD);
        expectNoKey(output);
      }
    }, 90_000);

    it('npm start passes the files to every service: the shop is ready as a REQUIRE X509 user', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'shop-x509-launcher-'));
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      const launcher = spawnComponent(
        'src/launcher/main.ts',
        [],
        {
          ...launcherEnv({ distributorPort: await freePort(), gatewayPort: 0, dataDir }),
          GATEWAY_HOST: '127.0.0.1',
          ...envOf('x509', client),
        },
        { stdinOpen: true },
      );
      cleanups.push(() => {
        for (const pid of [...descendantPids(launcher.child.pid!), launcher.child.pid!]) {
          if (isRunning(pid)) process.kill(pid, 'SIGKILL');
        }
      });
      const ready = await launcher.waitForLine(
        /^\[launcher\] the shop is ready: (http:\/\/127\.0\.0\.1:\d+) \(goods, members, purchases registered/,
        60_000,
      );
      const gateway = /(http:\/\/127\.0\.0\.1:\d+)/.exec(ready)![1];
      expect((await send(`${gateway}/purchases?userid=1`)).body).toContain('"no data"');
      for (const name of ['goods', 'members', 'purchases']) {
        expect(
          launcher.lines.some(
            (line) =>
              line.startsWith(`[${name}`) &&
              line.includes(`over TLS`) &&
              line.includes(`the client certificate of ${client.certFile}`),
          ),
          launcher.lines.join('\n'),
        ).toBe(true);
      }
      // Known to the launcher: no warning that they look like another's misspelling.
      expect(
        launcher.lines.filter((line) => line.startsWith('[launcher]') && line.includes('MYSQL_SSL')),
      ).toEqual([]);
      expectNoKey(launcher.lines.join('\n'));
    }, 90_000);
  },
);
