import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { ConfigError } from '../../common/config.js';
import { nonEmpty, optionalSetting, settingName } from '../../common/settings.js';
import { readTlsFiles, type TlsRefreshOptions, watchTlsFiles } from '../../common/tls-files.js';
import type { MysqlConnectionOptions } from './mysql-url.js';

/**
 * The CA file of the MySQL server's certificate. mysql2 takes a CA only as PEM text, which in
 * MYSQL_URL means JSON inside a URL (`?ssl={"ca":"-----BEGIN..."}`), percent-encoded: a file path,
 * as mysql clients take it (`--ssl-ca`), is what users have and what a rotation replaces.
 */
export const MYSQL_SSL_CA_SETTING = optionalSetting({
  flag: 'mysql-ssl-ca',
  env: 'MYSQL_SSL_CA',
  help: "CA certificate (PEM file) that must have issued the MySQL server's certificate: with it the services reach MySQL over TLS, checking the certificate names MYSQL_URL's host. Re-read when the file changes",
  parse: nonEmpty,
});

/** MYSQL_SSL_CA as messages name it. */
export const MYSQL_SSL_CA_NAME = settingName(MYSQL_SSL_CA_SETTING);

/**
 * MYSQL_URL's connection with MYSQL_SSL_CA's file added. Two sources of one CA, or a CA with a
 * profile (which brings its own), are refused rather than one silently winning.
 */
export function withSslCaFile(
  connection: MysqlConnectionOptions | undefined,
  caFile: string | undefined,
): MysqlConnectionOptions | undefined {
  if (caFile === undefined) return connection;
  if (connection === undefined) {
    throw new ConfigError(`${MYSQL_SSL_CA_NAME} is set but MYSQL_URL is not: the CA is for a MySQL server`);
  }
  if (typeof connection.ssl === 'string') {
    throw new ConfigError(
      `${MYSQL_SSL_CA_NAME} and MYSQL_URL's ssl profile "${connection.ssl}" both give CAs: give one`,
    );
  }
  if (connection.ssl?.ca !== undefined) {
    throw new ConfigError(`${MYSQL_SSL_CA_NAME} and MYSQL_URL's "ssl" parameter both give a "ca": give one`);
  }
  // node:tls takes any certificate with it, the CA's or not: the CA file would be read, watched
  // and named in the start line, and checked against nothing.
  if (connection.ssl?.rejectUnauthorized === false) {
    throw new ConfigError(
      `${MYSQL_SSL_CA_NAME} is set but MYSQL_URL's "ssl" parameter says "rejectUnauthorized":false, which checks no certificate: drop one`,
    );
  }
  return { ...connection, sslCaFile: caFile };
}

/** What a MySQL pool is given for TLS (none of it without TLS). */
export interface MysqlTlsPoolOptions {
  readonly ssl?: string | Record<string, unknown>;
  /** Opens the TCP connection, for a host that is an IP address checked by name (see below). */
  readonly stream?: () => Socket;
}

/**
 * The TLS options of a pool to `connection`'s server. Reads the CA file (MYSQL_SSL_CA) now, so that
 * one that cannot be used stops the start (exit 2) naming the setting (see watchMysqlCaFile for
 * its changes). The `ssl` object is the one the pool keeps: a new CA is put in it.
 *
 * The server's certificate must name the URL's host unless `"verifyIdentity":false` says otherwise:
 * mysql2 checks only the chain by default, so `{"rejectUnauthorized":true}` took any certificate the
 * CA had issued, for any host (with a public CA's, any site's). mysql2 checks an IP address host
 * against "localhost" (it gives node:tls no servername for an IP, and node:tls then falls back to
 * the socket's host name, which a socket dialled by address has not got): a certificate naming
 * 127.0.0.1 was refused, and one naming localhost was taken at any address. So a pool to an IP
 * address opens its own sockets, whose host node:tls then checks the certificate against.
 */
export function mysqlTlsPoolOptions(connection: MysqlConnectionOptions): MysqlTlsPoolOptions {
  const { ssl, sslCaFile, host, port } = connection;
  if (ssl === undefined && sslCaFile === undefined) return {};
  // A profile names mysql2's own bundle of CAs (see SSL_PROFILES): left as mysql2 reads it.
  if (typeof ssl === 'string') return { ssl };
  const ca =
    sslCaFile === undefined
      ? {}
      : {
          ca: readTlsFiles({ caFile: sslCaFile, sources: { caFile: MYSQL_SSL_CA_NAME } }).ca?.toString(
            'utf8',
          ),
        };
  const options = { verifyIdentity: true, ...ssl, ...ca };
  if (options.verifyIdentity !== true || isIP(host) === 0) return { ssl: options };
  return {
    ssl: options,
    stream: () => {
      // mysql2 sets keep-alive and no-delay only on the sockets it opens itself.
      const socket = tcpConnect({ host, port, keepAlive: true, noDelay: true });
      // What node:tls checks the certificate against when it is given no servername (tls.connect).
      (socket as Socket & { _host?: string })._host = host;
      return socket;
    },
  };
}

/**
 * How a service reaches its MySQL server, for the line it logs at start: whether over TLS, and
 * what of the server's certificate is checked, so that a user can see TLS is on (mysql2 says
 * nothing of it) and what `?ssl=` options turned off.
 */
export function describeMysqlTls(connection: MysqlConnectionOptions): string {
  const { ssl, sslCaFile } = connection;
  if (ssl === undefined && sslCaFile === undefined) return 'without TLS';
  if (typeof ssl === 'string') return `over TLS (profile "${ssl}": its CAs checked, not the host's name)`;
  if (ssl?.rejectUnauthorized === false) return "over TLS, the server's certificate not checked";
  const issuer =
    sslCaFile !== undefined
      ? `a CA of ${sslCaFile}`
      : ssl?.ca === undefined
        ? "a public CA (Node's)"
        : 'a CA of the "ca" of ?ssl=';
  const name = ssl?.verifyIdentity === false ? 'any name' : `the name ${connection.host}`;
  return `over TLS, the server's certificate from ${issuer} and for ${name}`;
}

/**
 * Reads MYSQL_SSL_CA's file again whenever it changes, as a component's own TLS files are (see
 * watchTlsFiles): the pool's next connections trust the CAs it then holds (mysql2 builds a new
 * secure context when `ca` is another string), so a CA rotation that adds the new CA to the file
 * before the server's certificate is renewed needs no restart. A changed file that holds no CA
 * certificate is logged, and the CAs read before stay in use; a CA in it that expires within a week
 * is logged too. Returns the function that stops watching (nothing to stop without the setting).
 */
export function watchMysqlCaFile(
  connection: MysqlConnectionOptions,
  tls: MysqlTlsPoolOptions,
  options: TlsRefreshOptions,
): () => void {
  const { sslCaFile } = connection;
  const ssl = tls.ssl;
  if (sslCaFile === undefined || typeof ssl !== 'object' || typeof ssl.ca !== 'string') return () => {};
  return watchTlsFiles(
    { caFile: sslCaFile, sources: { caFile: MYSQL_SSL_CA_NAME } },
    { ca: Buffer.from(ssl.ca) },
    (material) => {
      if (material.ca) ssl.ca = material.ca.toString('utf8');
    },
    options,
    // A CA file alone: no certificate of this service's own to keep its identity.
    { sameIdentity: false },
  );
}

/**
 * What to do about a connection to MySQL that failed for a reason of TLS, or undefined for any
 * other failure: node:tls and MariaDB name the symptom (a certificate "self-signed", a user's
 * "Access denied"), not the setting to change.
 */
export function mysqlTlsHint(error: unknown, connection: MysqlConnectionOptions): string | undefined {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  const tls = connection.ssl !== undefined || connection.sslCaFile !== undefined;
  // MariaDB refuses a client without TLS with the words of a wrong password.
  if (code === 'ER_ACCESS_DENIED_ERROR' && !tls) {
    return `if the password is right, the server may require TLS of this user (REQUIRE SSL) or of every client (require_secure_transport): give the file of its CA as ${MYSQL_SSL_CA_NAME}`;
  }
  if (code === 'HANDSHAKE_NO_SSL_SUPPORT') {
    return `the server has TLS off: turn it on there, or give neither ${MYSQL_SSL_CA_NAME} nor ?ssl= in MYSQL_URL`;
  }
  if (code !== 'HANDSHAKE_SSL_ERROR') return undefined;
  if (text.includes("does not match certificate's altnames")) {
    return `the server's certificate does not name "${connection.host}", MYSQL_URL's host: use a name it holds in MYSQL_URL, or have it issued for this one`;
  }
  if (/self-signed|unable to verify the first certificate|unable to get local issuer/.test(text)) {
    const trusted =
      connection.sslCaFile !== undefined
        ? `the CA of ${MYSQL_SSL_CA_NAME}`
        : typeof connection.ssl === 'object' && connection.ssl.ca !== undefined
          ? 'the "ca" of MYSQL_URL\'s ?ssl='
          : 'a CA this service trusts';
    return `the server's certificate is not issued by ${trusted}: give the file of the CA that issued it as ${MYSQL_SSL_CA_NAME}`;
  }
  if (/certificate has expired|certificate is not yet valid/.test(text)) {
    return "the server's certificate is out of its dates: have it renewed (or check this machine's clock)";
  }
  return undefined;
}
