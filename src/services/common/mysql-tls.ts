import { X509Certificate } from 'node:crypto';
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { ConfigError } from '../../common/config.js';
import type { TlsFiles, TlsMaterial } from '../../common/tls-file-types.js';
import { readTlsFiles, type TlsRefreshOptions, watchTlsFiles } from '../../common/tls-files.js';
import { MYSQL_SSL_CA_NAME, MYSQL_SSL_CERT_NAME, MYSQL_SSL_KEY_NAME } from './mysql-tls-settings.js';
import type { MysqlConnectionOptions } from './mysql-url.js';

/** The files of MYSQL_SSL_CA, MYSQL_SSL_CERT and MYSQL_SSL_KEY, each unset or a path. */
export interface MysqlTlsFilePaths {
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
}

/** The options of `?ssl=` that give a client certificate, or unlock its key. */
const CLIENT_IDENTITY_OPTIONS = ['cert', 'key', 'pfx', 'passphrase'];

/**
 * MYSQL_URL's connection with the files of MYSQL_SSL_CA, MYSQL_SSL_CERT and MYSQL_SSL_KEY added.
 * Either file turns TLS on, as a mysql client's `--ssl-ca` or `--ssl-cert` does. Two sources of one
 * thing (a CA, a client certificate), a CA with a profile (which brings its own), and a certificate
 * without its key are refused rather than one silently winning, or the other ignored.
 */
export function withSslFiles(
  connection: MysqlConnectionOptions | undefined,
  { caFile, certFile, keyFile }: MysqlTlsFilePaths,
): MysqlConnectionOptions | undefined {
  if (certFile !== undefined && keyFile === undefined) {
    throw new ConfigError(
      `${MYSQL_SSL_CERT_NAME} is set but ${MYSQL_SSL_KEY_NAME} is not: give the file of the certificate's private key too`,
    );
  }
  if (keyFile !== undefined && certFile === undefined) {
    throw new ConfigError(
      `${MYSQL_SSL_KEY_NAME} is set but ${MYSQL_SSL_CERT_NAME} is not: give the file of the key's certificate too`,
    );
  }
  let result = connection;
  if (caFile !== undefined) result = withSslCaFile(result, caFile);
  if (certFile !== undefined && keyFile !== undefined)
    result = withClientCertificate(result, certFile, keyFile);
  return result;
}

function withSslCaFile(
  connection: MysqlConnectionOptions | undefined,
  caFile: string,
): MysqlConnectionOptions {
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

function withClientCertificate(
  connection: MysqlConnectionOptions | undefined,
  certFile: string,
  keyFile: string,
): MysqlConnectionOptions {
  if (connection === undefined) {
    throw new ConfigError(
      `${MYSQL_SSL_CERT_NAME} is set but MYSQL_URL is not: the client certificate is for a MySQL server`,
    );
  }
  const { ssl } = connection;
  // A profile is a name mysql2 turns into its own options: nothing can be added to it.
  if (typeof ssl === 'string') {
    throw new ConfigError(
      `${MYSQL_SSL_CERT_NAME} cannot go with MYSQL_URL's ssl profile "${ssl}": give the file of its CAs as ${MYSQL_SSL_CA_NAME} instead of the profile`,
    );
  }
  const given = CLIENT_IDENTITY_OPTIONS.filter((option) => ssl?.[option] !== undefined);
  if (given.length > 0) {
    throw new ConfigError(
      `${MYSQL_SSL_CERT_NAME} and MYSQL_URL's "ssl" parameter both give a client certificate (${given.map((option) => `"${option}"`).join(', ')}): give one of them (the files keep the key out of the URL)`,
    );
  }
  return { ...connection, sslCertFile: certFile, sslKeyFile: keyFile };
}

/** Whether the service reaches `connection`'s server over TLS: `?ssl=`, or a file that turns it on. */
export function usesMysqlTls(connection: MysqlConnectionOptions): boolean {
  return (
    connection.ssl !== undefined || connection.sslCaFile !== undefined || connection.sslCertFile !== undefined
  );
}

/** The files of `connection`, as readTlsFiles and watchTlsFiles take them, each named by its setting. */
function mysqlTlsFiles({ sslCaFile, sslCertFile, sslKeyFile }: MysqlConnectionOptions): TlsFiles {
  return {
    ...(sslCaFile === undefined ? {} : { caFile: sslCaFile }),
    ...(sslCertFile === undefined ? {} : { certFile: sslCertFile }),
    ...(sslKeyFile === undefined ? {} : { keyFile: sslKeyFile }),
    sources: { caFile: MYSQL_SSL_CA_NAME, certFile: MYSQL_SSL_CERT_NAME, keyFile: MYSQL_SSL_KEY_NAME },
  };
}

/** The PEM texts of `material`, as mysql2's `ssl` takes them (a string compares by value: see watchMysqlTlsFiles). */
function sslTexts(material: TlsMaterial): { ca?: string; cert?: string; key?: string } {
  return {
    ...(material.ca === undefined ? {} : { ca: material.ca.toString('utf8') }),
    ...(material.cert === undefined ? {} : { cert: material.cert.toString('utf8') }),
    ...(material.key === undefined ? {} : { key: material.key.toString('utf8') }),
  };
}

/** What a MySQL pool is given for TLS (none of it without TLS). */
export interface MysqlTlsPoolOptions {
  readonly ssl?: string | Record<string, unknown>;
  /** Opens the TCP connection, for a host that is an IP address checked by name (see below). */
  readonly stream?: () => Socket;
}

/**
 * The TLS options of a pool to `connection`'s server. Reads the files (MYSQL_SSL_CA, MYSQL_SSL_CERT,
 * MYSQL_SSL_KEY) now, so that one that cannot be used (unreadable, not PEM, a key not the
 * certificate's, an expired certificate) stops the start (exit 2) naming the setting (see
 * watchMysqlTlsFiles for their changes). The `ssl` object is the one the pool keeps: new files' PEM
 * texts are put in it.
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
  const { ssl, host, port } = connection;
  if (!usesMysqlTls(connection)) return {};
  // A profile names mysql2's own bundle of CAs (see SSL_PROFILES): left as mysql2 reads it.
  if (typeof ssl === 'string') return { ssl };
  const options = { verifyIdentity: true, ...ssl, ...sslTexts(readTlsFiles(mysqlTlsFiles(connection))) };
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
  const { ssl, sslCaFile, sslCertFile } = connection;
  if (!usesMysqlTls(connection)) return 'without TLS';
  if (typeof ssl === 'string') return `over TLS (profile "${ssl}": its CAs checked, not the host's name)`;
  // What the service shows the server: a user created REQUIRE X509 is refused without it.
  const client =
    sslCertFile !== undefined
      ? `, the client certificate of ${sslCertFile}`
      : ssl?.cert !== undefined
        ? ', the client certificate of the "cert" of ?ssl='
        : '';
  if (ssl?.rejectUnauthorized === false) return `over TLS, the server's certificate not checked${client}`;
  const issuer =
    sslCaFile !== undefined
      ? `a CA of ${sslCaFile}`
      : ssl?.ca === undefined
        ? "a public CA (Node's)"
        : 'a CA of the "ca" of ?ssl=';
  const name = ssl?.verifyIdentity === false ? 'any name' : `the name ${connection.host}`;
  return `over TLS, the server's certificate from ${issuer} and for ${name}${client}`;
}

/**
 * Reads the files of MYSQL_SSL_CA, MYSQL_SSL_CERT and MYSQL_SSL_KEY again whenever they change, as a
 * component's own TLS files are (see watchTlsFiles): the pool's next connections use what they then
 * hold (mysql2 builds a new secure context when `ca`, `cert` or `key` is another string), so a CA
 * rotation that adds the new CA to the file before the server's certificate is renewed, or a client
 * certificate renewed before the old one expires, needs no restart. Files that cannot be used (no
 * CA certificate, a key not the certificate's, a certificate not yet valid) are logged, and the
 * material read before stays in use; a certificate in use that nears its end (expiresSoonWithin) is
 * logged too. Returns the function that stops watching (nothing to stop without a file).
 */
export function watchMysqlTlsFiles(
  connection: MysqlConnectionOptions,
  tls: MysqlTlsPoolOptions,
  options: TlsRefreshOptions,
): () => void {
  const ssl = tls.ssl;
  if (typeof ssl !== 'object') return () => {};
  const files = mysqlTlsFiles(connection);
  if (files.caFile === undefined && files.certFile === undefined) return () => {};
  const text = (value: unknown): Buffer | undefined =>
    typeof value === 'string' ? Buffer.from(value) : undefined;
  const initial: { -readonly [K in keyof TlsMaterial]: TlsMaterial[K] } = {};
  const [ca, cert, key] = [text(ssl.ca), text(ssl.cert), text(ssl.key)];
  if (files.caFile !== undefined && ca) initial.ca = ca;
  if (files.certFile !== undefined && cert && key) {
    initial.cert = cert;
    initial.key = key;
  }
  return watchTlsFiles(
    files,
    initial,
    (material) => Object.assign(ssl, sslTexts(material)),
    options,
    // The client certificate names a MySQL user, not a component of the shop, and the CA file is
    // the server's, which need not have issued it.
    { sameIdentity: false },
  );
}

/** Where the client certificate comes from, as messages name it, or undefined without one. */
function clientCertificateSource(connection: MysqlConnectionOptions): string | undefined {
  if (connection.sslCertFile !== undefined) return MYSQL_SSL_CERT_NAME;
  if (typeof connection.ssl === 'object' && connection.ssl.cert !== undefined) return 'the "cert" of ?ssl=';
  return undefined;
}

/** The fewest bits of an RSA or DSA key that OpenSSL takes at security level 2. */
const LEVEL_2_KEY_BITS = 2048;

/**
 * Why a server may refuse `certificate` (the PEM of the client certificate in use) as a bad one, or
 * undefined. node:tls takes an RSA key of 1024 bits (OpenSSL's security level 1), MariaDB's server
 * asks for level 2 and answers a "bad certificate" alert that names no reason: measured with
 * MariaDB 10.11, whose own client says "ee key too small" of the same pair.
 */
function keyTooSmallForServers(certificate: unknown): string | undefined {
  if (typeof certificate !== 'string' && !Buffer.isBuffer(certificate)) return undefined;
  let publicKey: X509Certificate['publicKey'];
  try {
    publicKey = new X509Certificate(certificate).publicKey;
  } catch {
    return undefined;
  }
  const bits = publicKey.asymmetricKeyDetails?.modulusLength;
  if (bits === undefined || bits >= LEVEL_2_KEY_BITS) return undefined;
  const type = (publicKey.asymmetricKeyType ?? 'rsa').toUpperCase();
  return `its key, ${type} of ${bits} bits, is smaller than the ${LEVEL_2_KEY_BITS} bits a server at OpenSSL's security level 2 takes (as MariaDB's is): issue it again with a key of ${LEVEL_2_KEY_BITS} bits or more`;
}

/**
 * What to do about a connection to MySQL that failed for a reason of TLS, or undefined for any
 * other failure: node:tls and MariaDB name the symptom (a certificate "self-signed", a user's
 * "Access denied"), not the setting to change.
 */
export function mysqlTlsHint(
  error: unknown,
  connection: MysqlConnectionOptions,
  clientCertificate?: unknown,
): string | undefined {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  // MariaDB refuses a client without TLS, or without the certificate its user requires, with the
  // words of a wrong password.
  if (code === 'ER_ACCESS_DENIED_ERROR') {
    if (!usesMysqlTls(connection)) {
      return `if the password is right, the server may require TLS of this user (REQUIRE SSL) or of every client (require_secure_transport): give the file of its CA as ${MYSQL_SSL_CA_NAME}`;
    }
    const client = clientCertificateSource(connection);
    if (client === undefined) {
      return `if the password is right, the server may require a client certificate of this user (REQUIRE X509, SUBJECT or ISSUER): give its files as ${MYSQL_SSL_CERT_NAME} and ${MYSQL_SSL_KEY_NAME}`;
    }
    return `if the password is right, the user's REQUIRE SUBJECT or ISSUER (SHOW CREATE USER) may name another subject or issuer than those of the client certificate of ${client}`;
  }
  if (code === 'HANDSHAKE_NO_SSL_SUPPORT') {
    return `the server has TLS off: turn it on there, or give none of ${MYSQL_SSL_CA_NAME}, ${MYSQL_SSL_CERT_NAME} and ?ssl= in MYSQL_URL`;
  }
  // The server's alert about the client certificate, which node:tls names by OpenSSL's words for
  // it. OpenSSL 3.0 (Node 20) says "sslv3 alert unsupported certificate"; 3.2 and later (Node 24 and
  // 26) say "ssl/tls alert …" for the same alerts, so the code's prefix is no guide: its alert is.
  const client = clientCertificateSource(connection);
  const alert =
    typeof code === 'string' ? /^ERR_SSL_(?:\w+|SSL\/TLS)_ALERT_(\w+)$/.exec(code)?.[1] : undefined;
  if (client !== undefined && alert !== undefined) {
    if (alert === 'UNKNOWN_CA') {
      return `the server refused the client certificate of ${client}: it is not issued by a CA the server trusts (its ssl_ca)`;
    }
    if (alert === 'UNSUPPORTED_CERTIFICATE') {
      return `the server refused the client certificate of ${client}: it is not for client authentication (its extendedKeyUsage lacks clientAuth)`;
    }
    if (alert === 'CERTIFICATE_EXPIRED') {
      return `the server refused the client certificate of ${client}: it has expired: renew it`;
    }
    if (alert === 'BAD_CERTIFICATE') {
      const small = keyTooSmallForServers(clientCertificate);
      if (small !== undefined) return `the server refused the client certificate of ${client}: ${small}`;
    }
    if (/^(BAD_CERTIFICATE|CERTIFICATE_\w+|ACCESS_DENIED)$/.test(alert)) {
      return `the server refused the client certificate of ${client}`;
    }
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
