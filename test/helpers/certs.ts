import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type CertificateFiles, createCa, issueCertificate } from '../../scripts/certs.mjs';
import type { TlsFilePaths } from '../../src/common/tls.js';

/** A throwaway PKI for TLS tests, made by the same code as `npm run certs`. */
export interface TestPki {
  readonly dir: string;
  /** The CA that issued the certificates of `files`. */
  readonly caFile: string;
  /** A second CA that nothing trusts unless a test says so. */
  readonly otherCaFile: string;
  /** A CA file of both CAs, as a CA rotation makes one before it renews the certificates. */
  readonly bothCasFile: string;
  /** A component's certificate and key, issued by the CA, with the CA file: as a component runs. */
  files(name: string): Required<TlsFilePaths>;
  /**
   * A certificate and key for `name` (its URI SAN says so) issued by the OTHER CA, with a CA file
   * of both CAs: an impostor that trusts the real servers but whom they must not trust (a
   * component refuses to start with a certificate that its own CA file does not issue).
   */
  foreignFiles(name: string): Required<TlsFilePaths>;
  /**
   * A certificate and key for `name` issued by a CA named as the CA is but with a key of its own,
   * as another `npm run certs` run makes it, with the CA's file: what a host given the ca.crt of
   * one run and the certificates of another holds. Made on first use.
   */
  twinFiles(name: string): Required<TlsFilePaths>;
  /**
   * Issues one more certificate as `<file>.crt`/`<file>.key`: by the CA or the other one, for the
   * identity `identity` (default: `file`), with extra `hosts`, valid for `days` (default: the PKI's
   * leafDays) from now and since `notBefore` (default: as `npm run certs` starts them).
   */
  issue(
    file: string,
    options?: {
      identity?: string;
      by?: 'ca' | 'other';
      hosts?: readonly string[];
      days?: number;
      notBefore?: Date;
    },
  ): CertificateFiles;
}

/**
 * Makes a CA, a second CA, and for each of `names` a certificate from each CA (the URI SAN
 * spiffe://shop/<name>, localhost, 127.0.0.1 and `hosts`), valid for `leafDays` (default: as
 * `npm run certs` issues them), in `dir`, which must exist.
 */
export function makeTestPki(
  dir: string,
  {
    names,
    hosts = [],
    leafDays,
    leafNotBefore,
  }: {
    names: readonly string[];
    hosts?: readonly string[];
    leafDays?: number;
    /** The start of the certificates of `files` (default: as `npm run certs` starts them). */
    leafNotBefore?: Date;
  },
): TestPki {
  const ca = createCa(dir, { name: 'ca', commonName: 'test CA' });
  const other = createCa(dir, { name: 'other-ca', commonName: 'other test CA' });
  const issue: TestPki['issue'] = (
    file,
    { identity = file, by = 'ca', hosts: extra = [], days = leafDays, notBefore = leafNotBefore } = {},
  ) =>
    issueCertificate(by === 'ca' ? ca : other, dir, {
      name: file,
      identity,
      hosts: [...hosts, ...extra],
      ...(days === undefined ? {} : { days }),
      ...(notBefore === undefined ? {} : { notBefore }),
    });
  const withCa = (certificate: CertificateFiles): Required<TlsFilePaths> => ({
    caFile: ca.certFile,
    ...certificate,
  });
  const own = new Map(names.map((name) => [name, withCa(issue(name))]));
  const bothCas = join(dir, 'both-cas.crt');
  writeFileSync(bothCas, Buffer.concat([readFileSync(ca.certFile), readFileSync(other.certFile)]));
  const foreign = new Map(
    names.map((name) => [
      name,
      { caFile: bothCas, ...issue(`foreign-${name}`, { identity: name, by: 'other' }) },
    ]),
  );
  let twinCa: CertificateFiles | undefined;
  const twinFiles = (name: string): Required<TlsFilePaths> => {
    twinCa ??= createCa(dir, { name: 'twin-ca', commonName: 'test CA' });
    return {
      caFile: ca.certFile,
      ...issueCertificate(twinCa, dir, { name: `twin-${name}`, identity: name, hosts }),
    };
  };
  const lookup = (map: Map<string, Required<TlsFilePaths>>, name: string): Required<TlsFilePaths> => {
    const files = map.get(name);
    if (!files) throw new Error(`makeTestPki: no certificate for "${name}"; add it to names`);
    return files;
  };
  return {
    dir,
    caFile: ca.certFile,
    otherCaFile: other.certFile,
    bothCasFile: bothCas,
    files: (name) => lookup(own, name),
    foreignFiles: (name) => lookup(foreign, name),
    twinFiles,
    issue,
  };
}

/**
 * Replaces `target` with a copy of `source` in one rename, as a rotation tool should: a process
 * reading the file sees the old or the new contents, never half of them.
 */
export function replaceFile(source: string, target: string): void {
  const staged = `${target}.staged`;
  copyFileSync(source, staged);
  renameSync(staged, target);
}

/** A copy of `file` in `dir` under `name`, which a test may replace. */
export function copyIn(dir: string, file: string, name: string): string {
  const copy = join(dir, name);
  copyFileSync(file, copy);
  return copy;
}

/** A folder of a test's own under a PKI's, for files it rewrites. */
export function runFolder(pki: TestPki): string {
  return mkdtempSync(join(pki.dir, 'run-'));
}

/** Points `target` (a folder) at a certificate and key: `<target>/<name>.crt` and `.key`. */
export function installCertificate(from: CertificateFiles, target: string, name: string): CertificateFiles {
  const installed = { certFile: join(target, `${name}.crt`), keyFile: join(target, `${name}.key`) };
  replaceFile(from.certFile, installed.certFile);
  replaceFile(from.keyFile, installed.keyFile);
  return installed;
}

/**
 * A test PKI (see makeTestPki) made before a file's tests in a folder of its own under the system's
 * temporary folder, and removed after them: `pki` is set once they run.
 */
export function useTestPki(
  prefix: string,
  options: Parameters<typeof makeTestPki>[1],
): { readonly pki: TestPki } {
  let dir: string | undefined;
  const made: { pki: TestPki } = { pki: undefined as unknown as TestPki };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    made.pki = makeTestPki(dir, options);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return made;
}
