import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { opensslCaConfig } from '../../scripts/certs.mjs';

/** What opensslCaSign signs, and how. */
export interface OpensslCaSigning {
  /** A folder that exists: the signing's throwaway database, serial and config go in a new one in it. */
  readonly dir: string;
  /** The certificate request (PEM) to sign. */
  readonly csr: string;
  /** Where the certificate is written (PEM). */
  readonly out: string;
  /** The signing CA's certificate and key files. */
  readonly issuer: { readonly certFile: string; readonly keyFile: string };
  /** The certificate's extensions, as lines of an OpenSSL config section (`basicConstraints = …`). */
  readonly extensions: readonly string[];
  /** Its validity, from and to, as `openssl ca` takes dates: YYYYMMDDHHMMSSZ (see opensslDate). */
  readonly startDate: string;
  readonly endDate: string;
  /** Keep the request's subject as it is (a cross-signed copy of a CA must keep its CA's name). */
  readonly preserveDn?: boolean;
}

/**
 * Signs a request with `openssl ca`, for certificates the tests need outside what scripts/certs.mjs
 * makes (an expired one, one valid from a set moment, a cross-signed copy, a server's of a test
 * MariaDB): OpenSSL 3.0's `x509 -req` cannot set the start of a validity.
 */
export function opensslCaSign(signing: OpensslCaSigning): void {
  const scratch = mkdtempSync(join(signing.dir, 'openssl-ca-'));
  writeFileSync(join(scratch, 'ca.cnf'), opensslCaConfig(['[ext]', ...signing.extensions]));
  writeFileSync(join(scratch, 'index.txt'), '');
  writeFileSync(join(scratch, 'serial'), `${Date.now().toString(16).padStart(16, '0')}\n`);
  execFileSync(
    'openssl',
    [
      'ca',
      '-batch',
      '-notext',
      '-config',
      'ca.cnf',
      '-extensions',
      'ext',
      '-cert',
      signing.issuer.certFile,
      '-keyfile',
      signing.issuer.keyFile,
      '-in',
      signing.csr,
      '-out',
      signing.out,
      '-startdate',
      signing.startDate,
      '-enddate',
      signing.endDate,
      ...(signing.preserveDn ? ['-preserveDN'] : []),
    ],
    { cwd: scratch, stdio: ['ignore', 'ignore', 'pipe'] },
  );
}

/** `YYYYMMDDHHMMSSZ`, as `openssl ca` takes dates. */
export function opensslDate(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/[-T:]/g, '')}Z`;
}
