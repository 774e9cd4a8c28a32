import { parsePemFilePath } from '../../common/pem-file-path.js';
import { optionalSetting, settingName } from '../../common/settings.js';

// The TLS files of the services' MySQL connections, as settings: apart from mysql-tls.ts, which
// reads them, so that MYSQL_URL's parser can name them in its messages without importing that.

/**
 * The CA file of the MySQL server's certificate. mysql2 takes a CA only as PEM text, which in
 * MYSQL_URL means JSON inside a URL (`?ssl={"ca":"-----BEGIN..."}`), percent-encoded: a file path,
 * as mysql clients take it (`--ssl-ca`), is what users have and what a rotation replaces.
 */
export const MYSQL_SSL_CA_SETTING = optionalSetting({
  flag: 'mysql-ssl-ca',
  env: 'MYSQL_SSL_CA',
  help: "CA certificate (PEM file) that must have issued the MySQL server's certificate: with it the services reach MySQL over TLS, checking the certificate names MYSQL_URL's host. Re-read when the file changes",
  parse: parsePemFilePath,
});

/** MYSQL_SSL_CA as messages name it. */
export const MYSQL_SSL_CA_NAME = settingName(MYSQL_SSL_CA_SETTING);

/**
 * The client certificate and its key, for a MySQL user created `REQUIRE X509` (or SUBJECT, ISSUER),
 * as mysql clients take them (`--ssl-cert`, `--ssl-key`): in MYSQL_URL they were PEM texts inside
 * `?ssl=`, a private key in a URL, which goes where URLs go (the environment, a shell's history).
 */
export const MYSQL_SSL_CERT_SETTING = optionalSetting({
  flag: 'mysql-ssl-cert',
  env: 'MYSQL_SSL_CERT',
  help: 'client certificate (PEM file) the services show the MySQL server, for a user created REQUIRE X509 (or SUBJECT, ISSUER); needs --mysql-ssl-key, and turns TLS on as --mysql-ssl-ca does. Re-read when the file changes',
  parse: parsePemFilePath,
});

/** The private key of MYSQL_SSL_CERT's certificate. */
export const MYSQL_SSL_KEY_SETTING = optionalSetting({
  flag: 'mysql-ssl-key',
  env: 'MYSQL_SSL_KEY',
  help: 'private key (unencrypted PEM file) of the --mysql-ssl-cert certificate. Re-read when the file changes',
  parse: parsePemFilePath,
});

/** MYSQL_SSL_CERT as messages name it. */
export const MYSQL_SSL_CERT_NAME = settingName(MYSQL_SSL_CERT_SETTING);

/** MYSQL_SSL_KEY as messages name it. */
export const MYSQL_SSL_KEY_NAME = settingName(MYSQL_SSL_KEY_SETTING);
