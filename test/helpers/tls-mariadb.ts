import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { opensslCaSign, opensslDate } from './openssl-ca.js';

/**
 * A MariaDB server of a test's own, with TLS on: the machine's server (the one the other MySQL
 * tests use) has TLS off, and its settings are not a test's to change. Made with the machine's
 * `mariadb-install-db` and `mariadbd` (about a second), on a free port, in a temporary folder.
 */
export interface TlsMariadb {
  readonly port: number;
  /** The folder of its data, its socket and the test's certificates. */
  readonly dir: string;
  /** Runs statements as root, over the server's Unix socket (no TLS needed). */
  admin(sql: string): Promise<void>;
  /** Makes the server present `certificate` (with its key) from now on: FLUSH SSL re-reads the files. */
  present(certificate: ServerCertificate): Promise<void>;
  stop(): Promise<void>;
}

/** A certificate and its key, PEM files. */
export interface ServerCertificate {
  readonly certFile: string;
  readonly keyFile: string;
}

/** When a certificate starts and ends. */
export interface Validity {
  readonly start: Date;
  readonly end: Date;
}

/** A throwaway CA and the server and client certificates a test asks of it. */
export interface TestDatabaseCa {
  readonly caFile: string;
  /** Issues a server certificate naming `sans` (`IP:127.0.0.1`, `DNS:localhost`), by this CA. */
  issue(name: string, sans: readonly string[], validity?: Validity): ServerCertificate;
  /**
   * Issues a client certificate whose subject is `/CN=<name>` (what a user's REQUIRE SUBJECT names),
   * by this CA, as a MySQL user created REQUIRE X509 connects with; its key is `key` (as
   * `openssl req -newkey` takes it, default rsa:2048).
   */
  issueClient(name: string, validity?: Validity, key?: string): ServerCertificate;
}

const SEARCH_PATH = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', '/usr/local/mysql/bin'];

function findBinary(names: readonly string[]): string | undefined {
  for (const dir of SEARCH_PATH) {
    for (const name of names) if (existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

const SERVER_BINARY = findBinary(['mariadbd', 'mysqld']);
const INSTALL_BINARY = findBinary(['mariadb-install-db', 'mysql_install_db']);

/**
 * Why a TLS MariaDB cannot be started here, or undefined when it can. Under CI=true a machine
 * without the binaries fails the test file instead of skipping it, as the global setup does for
 * the shared server.
 */
export function tlsMariadbSkipReason(): string | undefined {
  const missing = SERVER_BINARY && INSTALL_BINARY ? undefined : 'mariadbd or mariadb-install-db not found';
  if (missing && process.env.CI === 'true') {
    throw new Error(`a MariaDB server of the test's own is required when CI=true: ${missing}`);
  }
  return missing;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Makes a CA in `dir` (which must exist) that issues server certificates with the names a test
 * needs, and client certificates.
 */
export function makeDatabaseCa(dir: string, commonName = 'database test CA'): TestDatabaseCa {
  const prefix = commonName.replace(/\W+/g, '-');
  const caFile = join(dir, `${prefix}.crt`);
  const caKey = join(dir, `${prefix}.key`);
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      caKey,
      '-out',
      caFile,
      '-days',
      '30',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  /** Signs a certificate for `/CN=<name>`, in files named `<prefix>-<file>.*`. */
  const sign = (
    name: string,
    file: string,
    extensions: readonly string[],
    validity: Validity | undefined,
    key = 'rsa:2048',
  ): ServerCertificate => {
    const hour = 60 * 60 * 1000;
    const { start, end } = validity ?? {
      start: new Date(Date.now() - hour),
      end: new Date(Date.now() + 30 * 24 * hour),
    };
    const certFile = join(dir, `${prefix}-${file}.crt`);
    const keyFile = join(dir, `${prefix}-${file}.key`);
    const csr = join(dir, `${prefix}-${file}.csr`);
    openssl(['req', '-newkey', key, '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`], dir);
    opensslCaSign({
      dir,
      csr,
      out: certFile,
      issuer: { certFile: caFile, keyFile: caKey },
      extensions: ['basicConstraints = CA:FALSE', ...extensions],
      startDate: opensslDate(start),
      endDate: opensslDate(end),
    });
    return { certFile, keyFile };
  };
  return {
    caFile,
    issue: (name, sans, validity) =>
      sign(name, name, [`subjectAltName = ${sans.join(',')}`, 'extendedKeyUsage = serverAuth'], validity),
    // A server checks the purpose of a client's certificate: one for serverAuth alone is refused.
    issueClient: (name, validity, key) =>
      sign(name, `client-${name}`, ['extendedKeyUsage = clientAuth'], validity, key),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts a MariaDB server with TLS, presenting `certificate` (issued by `ca`), in a folder of its
 * own; `stop()` ends it and deletes the folder. Its root user has no password over the socket.
 */
export async function startTlsMariadb(
  ca: TestDatabaseCa,
  certificate: ServerCertificate,
): Promise<TlsMariadb> {
  if (!SERVER_BINARY || !INSTALL_BINARY) throw new Error(tlsMariadbSkipReason() ?? 'no MariaDB binaries');
  const dir = mkdtempSync(join(tmpdir(), 'shop-tls-mariadb-'));
  const dataDir = join(dir, 'data');
  const socketPath = join(dir, 'mariadb.sock');
  // The files the server reads, at paths of their own: present() replaces them and says FLUSH SSL.
  const served = { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
  copyFileSync(certificate.certFile, served.certFile);
  copyFileSync(certificate.keyFile, served.keyFile);
  // --no-defaults: the machine's my.cnf (its server's paths, its log file) is not this server's.
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  const small = ['--innodb-log-file-size=8M', '--innodb-buffer-pool-size=16M'];
  try {
    execFileSync(
      INSTALL_BINARY,
      [
        '--no-defaults',
        ...asRoot,
        `--datadir=${dataDir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        ...small,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  let lastError: unknown;
  // The free port may be taken between the look and the bind: a few tries.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const server: ChildProcess = spawn(
      SERVER_BINARY,
      [
        '--no-defaults',
        ...asRoot,
        `--datadir=${dataDir}`,
        `--port=${port}`,
        `--socket=${socketPath}`,
        '--bind-address=127.0.0.1',
        '--skip-name-resolve',
        `--pid-file=${join(dir, 'mariadb.pid')}`,
        `--log-error=${join(dir, 'error.log')}`,
        `--ssl-ca=${ca.caFile}`,
        `--ssl-cert=${served.certFile}`,
        `--ssl-key=${served.keyFile}`,
        ...small,
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
    const admin = async (sql: string): Promise<void> => {
      const connection = await createConnection({ socketPath, user: 'root', multipleStatements: true });
      try {
        await connection.query(sql);
      } finally {
        await connection.end();
      }
    };
    const deadline = Date.now() + 20_000;
    let up = false;
    // A server that died (of an error, or of a signal) is not waited for.
    while (Date.now() < deadline && server.exitCode === null && server.signalCode === null) {
      try {
        await admin('SELECT 1');
        up = true;
        break;
      } catch (error) {
        lastError = error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    if (!up) {
      server.kill('SIGKILL');
      await exited;
      continue;
    }
    return {
      port,
      dir,
      admin,
      async present(next) {
        copyFileSync(next.certFile, served.certFile);
        copyFileSync(next.keyFile, served.keyFile);
        await admin('FLUSH SSL');
      },
      async stop() {
        if (server.exitCode === null && server.signalCode === null) {
          server.kill('SIGTERM');
          const killer = setTimeout(() => server.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(killer);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`the test's MariaDB did not start: ${String(lastError)}`);
}
