import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mysqlTlsHint } from '../../src/services/common/mysql-tls.js';
import type { MysqlConnectionOptions } from '../../src/services/common/mysql-url.js';
import { makeDatabaseCa } from '../helpers/tls-mariadb.js';

// The server's alerts about a client certificate, as node:tls codes them with each OpenSSL: 3.0
// (Node 20) names some "sslv3 alert …", 3.2 and later (Node 24 and 26) "ssl/tls alert …". The suite
// runs on one Node, so both spellings are given here; the real handshakes are in
// mysql-client-certificate.test.ts, which under Node 24 found the second one unexplained.
const withCertificate: MysqlConnectionOptions = {
  host: 'db.example',
  port: 3306,
  user: 'shop',
  password: 'pw',
  database: 'shop',
  sslCaFile: '/etc/mysql/ca.pem',
  sslCertFile: '/etc/mysql/shop.crt',
  sslKeyFile: '/etc/mysql/shop.key',
};
const refused = (code: string, words: string): Error =>
  Object.assign(new Error(`…:SSL routines:ssl3_read_bytes:${words}:…`), { code });

describe('mysqlTlsHint: the server refused the client certificate', () => {
  it.each([
    [
      'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
      'tlsv1 alert unknown ca',
      'it is not issued by a CA the server trusts',
    ],
    [
      'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE',
      'sslv3 alert unsupported certificate',
      'it is not for client authentication',
    ],
    [
      'ERR_SSL_SSL/TLS_ALERT_UNSUPPORTED_CERTIFICATE',
      'ssl/tls alert unsupported certificate',
      'it is not for client authentication',
    ],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'sslv3 alert certificate expired', 'it has expired'],
    ['ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_EXPIRED', 'ssl/tls alert certificate expired', 'it has expired'],
    ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'sslv3 alert bad certificate', 'MYSQL_SSL_CERT'],
    ['ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE', 'ssl/tls alert bad certificate', 'MYSQL_SSL_CERT'],
  ])('%s is named', (code, words, hint) => {
    expect(mysqlTlsHint(refused(code, words), withCertificate)).toContain(
      `the server refused the client certificate of --mysql-ssl-cert (MYSQL_SSL_CERT)`,
    );
    expect(mysqlTlsHint(refused(code, words), withCertificate)).toContain(hint);
  });

  it('names a key too small for the server as the reason of a bad certificate, and only then', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shop-alert-hint-'));
    try {
      const ca = makeDatabaseCa(dir);
      const small = readFileSync(ca.issueClient('small', undefined, 'rsa:1024').certFile);
      const enough = readFileSync(ca.issueClient('enough').certFile);
      for (const code of ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE']) {
        const error = refused(code, 'alert bad certificate');
        expect(mysqlTlsHint(error, withCertificate, small)).toBe(
          "the server refused the client certificate of --mysql-ssl-cert (MYSQL_SSL_CERT): its key, RSA of 1024 bits, is smaller than the 2048 bits a server at OpenSSL's security level 2 takes (as MariaDB's is): issue it again with a key of 2048 bits or more",
        );
        expect(mysqlTlsHint(error, withCertificate, enough)).toBe(
          'the server refused the client certificate of --mysql-ssl-cert (MYSQL_SSL_CERT)',
        );
      }
      // Another alert is not put down to the key.
      expect(
        mysqlTlsHint(
          refused('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'tlsv1 alert unknown ca'),
          withCertificate,
          small,
        ),
      ).not.toContain('bits');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says nothing of a client certificate when none was given', () => {
    const { sslCertFile: _cert, sslKeyFile: _key, ...withoutCertificate } = withCertificate;
    expect(
      mysqlTlsHint(refused('ERR_SSL_SSL/TLS_ALERT_UNSUPPORTED_CERTIFICATE', 'x'), withoutCertificate),
    ).toBeUndefined();
  });
});
