import { createPrivateKey, X509Certificate } from 'node:crypto';
import { ConfigError, isHostNameOrAddress } from '../../common/config.js';
import {
  caCertificatesProblem,
  NOT_PEM_CERTIFICATES,
  rootlessCaProblem,
} from '../../common/tls-certificate-checks.js';
import { MYSQL_SSL_CA_NAME, MYSQL_SSL_CERT_NAME, MYSQL_SSL_KEY_NAME } from './mysql-tls-settings.js';

/** Where and as whom a service connects to MySQL: the parts of a `mysql://` URL. */
export interface MysqlConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** mysql2's `ssl` option: a profile name or an object (JSON in the URL's `ssl` parameter). */
  readonly ssl?: string | Record<string, unknown>;
  /** A CA file (MYSQL_SSL_CA) the server's certificate must chain to, read when the pool is made. */
  readonly sslCaFile?: string;
  /** The client certificate's file (MYSQL_SSL_CERT), for a user created REQUIRE X509; with sslKeyFile. */
  readonly sslCertFile?: string;
  /** The file of sslCertFile's private key (MYSQL_SSL_KEY). */
  readonly sslKeyFile?: string;
}

/**
 * Parses `mysql://user:password@host:port/database[?ssl=...]`.
 *
 * The URL is taken apart here rather than handed to mysql2 as `uri` because mysql2 turns every query
 * parameter into a driver option and lets it override ours: `?multipleStatements=true` would switch
 * statement stacking back on. Only `ssl` is accepted; anything else is a configuration error.
 */
export function parseMysqlUrl(value: string, source: string): MysqlConnectionOptions {
  const example = 'mysql://user:password@127.0.0.1:3306/shop';
  // A password holding "#", "?" or "/" as typed ends the URL's host part there: the URL then does
  // not parse, or names another host (mysql://root:123#4@db/shop is host "root", port 123).
  const encodeHint =
    ' (a user or password holding # ? / @ : or % must be percent-encoded: # as %23, ? as %3F)';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${source}: expected a URL such as ${example}${encodeHint}`);
  }
  if (url.hash !== '') throw new ConfigError(`${source}: the URL has a "#" part${encodeHint}`);
  if (url.protocol !== 'mysql:') {
    throw new ConfigError(`${source}: expected a mysql:// URL such as ${example}, got "${url.protocol}//"`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new ConfigError(`${source}: the URL names no host, e.g. ${example}`);
  // A mysql:// host is kept %-encoded (`%2Frun%2Fmysqld.sock`, a socket path as some drivers read
  // it): no host name holds "%", and it was dialled as one, failing every call without a word at start.
  if (host.includes('%')) {
    throw new ConfigError(
      `${source}: the URL's host "${host}" is not a host name (a socket path is not supported: give host:port, e.g. ${example})`,
    );
  }
  // A mysql:// host is not checked by URL (no scheme it knows): "db1,db2" (a failover list, as
  // other drivers read it) or "999.1.1.1" was looked up as one name, database-down for ever.
  if (!isHostNameOrAddress(host)) {
    throw new ConfigError(
      `${source}: the URL's host "${host}" is not a host name or an IP address (one host only), e.g. ${example}`,
    );
  }
  const database = decoded(url.pathname.slice(1), 'database', source);
  if (!database || database.includes('/')) {
    // An "@" after the host part: a password with "?" or "/" as typed, cut there
    // (mysql://root:123?4@db/shop is host "root", port 123, and no database).
    const cut = `${url.pathname}${url.search}`.includes('@') ? encodeHint : '';
    throw new ConfigError(`${source}: the URL must name one database, e.g. ${example}${cut}`);
  }
  // mysql2 reads port 0 as its default, 3306: the logs would name one server while it dialled another.
  if (url.port === '0') throw new ConfigError(`${source}: the URL's port must not be 0, e.g. ${example}`);
  let ssl: MysqlConnectionOptions['ssl'];
  for (const [key, raw] of queryParameters(url, source)) {
    if (key !== 'ssl') {
      throw new ConfigError(`${source}: unsupported URL parameter "${key}" (only "ssl" is accepted)`);
    }
    // The last one was taken: a `&ssl={"rejectUnauthorized":false}` a template appends turned
    // off the checks of the one before without a word.
    if (ssl !== undefined)
      throw new ConfigError(`${source}: the URL gives the "ssl" parameter twice: give one`);
    ssl = parseSsl(raw, source);
  }
  return {
    host,
    port: url.port ? Number(url.port) : 3306,
    user: decoded(url.username, 'user', source),
    password: decoded(url.password, 'password', source),
    database,
    ...(ssl === undefined ? {} : { ssl }),
  };
}

/**
 * The URL's query parameters, %-decoded, with a "+" kept as it is: URLSearchParams reads "+" as a
 * space (form encoding), and the "+" of a PEM's base64 in `?ssl={"ca":"..."}` became a space, which
 * node:tls skipped without a word: the CA was not trusted, and the server's certificate was refused
 * as if no CA had been given ("self-signed certificate in certificate chain").
 */
function queryParameters(url: URL, source: string): [string, string][] {
  if (url.search === '') return [];
  return url.search
    .slice(1)
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const at = pair.indexOf('=');
      const [key, value] = at === -1 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
      return [decoded(key, 'parameter name', source), decoded(value, 'parameter value', source)];
    });
}

/** A part of the URL with its %-escapes decoded; a malformed escape is a configuration error. */
function decoded(text: string, part: string, source: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    // The part itself is not repeated: it may be the password.
    throw new ConfigError(`${source}: the URL's ${part} holds a malformed %-escape (write "%" as %25)`);
  }
}

/**
 * The SSL profiles mysql2 knows by name (its lib/constants/ssl_profiles.js): any other name made
 * the driver throw when the pool was made, after the start had been taken as good.
 */
const SSL_PROFILES = ['Amazon RDS'];

function parseSsl(raw: string, source: string): string | Record<string, unknown> {
  if (!raw.startsWith('{')) {
    // A profile name written form-style ("Amazon+RDS") is the name it spells.
    const profile = raw.replaceAll('+', ' ');
    if (SSL_PROFILES.includes(profile)) return profile;
    throw new ConfigError(
      `${source}: unknown "ssl" profile "${raw}" (mysql2 knows ${SSL_PROFILES.map((name) => `"${name}"`).join(', ')}; or give a JSON object)`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    // Reported below with the same message as any other malformed value.
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`${source}: the "ssl" parameter must be a profile name or a JSON object`);
  }
  const ssl = parsed as Record<string, unknown>;
  checkChecks(ssl, source);
  checkPem(ssl, source);
  return ssl;
}

/**
 * Checks the options that say what of the server's certificate is checked. mysql2 and node:tls read
 * them by truthiness: `"verifyIdentity":0` turned the name check off while the start line said it
 * was on, and `"verifyIdentity":"no"` checked an IP address host against "localhost" (see
 * mysqlTlsPoolOptions). And a check asked for beside `"rejectUnauthorized":false` is not made at all:
 * node:tls then takes any certificate, of any CA, for any name.
 */
function checkChecks(ssl: Record<string, unknown>, source: string): void {
  for (const option of ['rejectUnauthorized', 'verifyIdentity']) {
    const value = ssl[option];
    if (value !== undefined && typeof value !== 'boolean') {
      throw new ConfigError(
        `${source}: the "ssl" parameter's "${option}" must be true or false, got ${JSON.stringify(value)}`,
      );
    }
  }
  if (ssl.rejectUnauthorized !== false) return;
  const asked = [
    ...(ssl.ca === undefined ? [] : ['a "ca"']),
    ...(ssl.verifyIdentity === true ? ['"verifyIdentity":true'] : []),
  ];
  if (asked.length > 0) {
    throw new ConfigError(
      `${source}: the "ssl" parameter gives ${asked.join(' and ')} with "rejectUnauthorized":false, which checks no certificate: drop one`,
    );
  }
}

/**
 * Checks the PEM texts of an `ssl` object: node:tls skips a CA it cannot read without a word (a
 * file path given as `ca`, a PEM whose base64 was changed on its way), and the server's certificate
 * was then refused as if no CA had been given, every connection failing with a message about the
 * certificate rather than about the setting.
 */
function checkPem(ssl: Record<string, unknown>, source: string): void {
  const { ca, cert, key, passphrase } = ssl;
  if (ca !== undefined) {
    const texts = Array.isArray(ca) ? ca : [ca];
    for (const text of texts) {
      const problem =
        typeof text === 'string' ? caCertificatesProblem(Buffer.from(text)) : ': expected PEM certificates';
      if (problem) {
        // A path given as the text reads as no PEM at all; other problems are the text's own.
        const pathHint =
          problem === NOT_PEM_CERTIFICATES
            ? ` (the text of the CA file, not its path: give a file with ${MYSQL_SSL_CA_NAME})`
            : '';
        throw new ConfigError(`${source}: the "ssl" parameter's "ca"${problem}${pathHint}`);
      }
    }
    // Over all its texts: a root and an intermediate may come as two.
    const rootless = rootlessCaProblem(Buffer.from(texts.join('\n')));
    if (rootless) throw new ConfigError(`${source}: the "ssl" parameter's "ca"${rootless}`);
  }
  if (cert !== undefined) {
    try {
      new X509Certificate(String(cert));
    } catch {
      throw new ConfigError(
        `${source}: the "ssl" parameter's "cert" is not a PEM certificate (the text of the certificate file, not its path: give a file with ${MYSQL_SSL_CERT_NAME})`,
      );
    }
  }
  if (key !== undefined) {
    try {
      createPrivateKey({ key: String(key), ...(typeof passphrase === 'string' ? { passphrase } : {}) });
    } catch {
      throw new ConfigError(
        `${source}: the "ssl" parameter's "key" is not a PEM private key, or its passphrase is wrong (the text of the key file, not its path: give a file with ${MYSQL_SSL_KEY_NAME})`,
      );
    }
  }
}

/** A URL fit for logs: the password is replaced. */
export function describeMysql(options: MysqlConnectionOptions): string {
  const user = options.user ? `${options.user}${options.password ? ':***' : ''}@` : '';
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return `mysql://${user}${host}:${options.port}/${options.database}`;
}
