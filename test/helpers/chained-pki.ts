import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import {
  type CertificateFiles,
  createCa,
  createIntermediateCa,
  type IntermediateCaFiles,
  issueCertificate,
} from '../../scripts/certs.mjs';
import type { TlsFilePaths } from '../../src/common/tls.js';

/**
 * A throwaway PKI as real ones issue (step-ca, Vault PKI, cert-manager with a CA issuer chain, a
 * corporate PKI): a root that signs an intermediate CA, which signs the components' certificates.
 * A component's certificate file holds its certificate then the intermediate; its CA file the root.
 */
export interface ChainedPki {
  readonly dir: string;
  /** The root's certificate alone: every component's CA file. */
  readonly rootFile: string;
  /** The intermediate that issued the certificates of `files`. */
  readonly intermediate: IntermediateCaFiles;
  /** A component's certificate then the intermediate, its key, and the root as CA file. */
  files(name: string): Required<TlsFilePaths>;
  /** Another intermediate CA under the root (a renewed one, or a second issuer), or under `root`. */
  newIntermediate(
    name: string,
    options?: { commonName?: string; under?: CertificateFiles; days?: number },
  ): IntermediateCaFiles;
  /** Another root, named `commonName`, that may sign intermediates: a PKI nothing here trusts. */
  newRoot(name: string, commonName: string): CertificateFiles;
  /**
   * Issues `<file>.crt` (the certificate then `by`'s chain) and `<file>.key` for `identity`
   * (default: `file`), by `by` (default: the intermediate), valid `days` (default as `npm run certs`).
   */
  issue(
    file: string,
    options?: { identity?: string; by?: IntermediateCaFiles; days?: number; notBefore?: Date },
  ): CertificateFiles;
  /** A copy of the certificate file `certFile` without its intermediates: `<file>.crt`. */
  leafOnly(certFile: string, file: string): string;
}

/** Makes a chained PKI (see ChainedPki) in `dir`, which must exist, with certificates for `names`. */
export function makeChainedPki(dir: string, { names }: { names: readonly string[] }): ChainedPki {
  const root = createCa(dir, { name: 'root', commonName: 'test root CA', pathLength: 1 });
  const newIntermediate: ChainedPki['newIntermediate'] = (
    name,
    { commonName = 'test intermediate CA', under = root, days } = {},
  ) => createIntermediateCa(under, dir, { name, commonName, ...(days === undefined ? {} : { days }) });
  const intermediate = newIntermediate('intermediate');
  const issue: ChainedPki['issue'] = (file, { identity = file, by = intermediate, days, notBefore } = {}) =>
    issueCertificate(by, dir, {
      name: file,
      identity,
      ...(days === undefined ? {} : { days }),
      ...(notBefore === undefined ? {} : { notBefore }),
    });
  const own = new Map(names.map((name) => [name, { caFile: root.certFile, ...issue(name) }]));
  return {
    dir,
    rootFile: root.certFile,
    intermediate,
    files: (name) => {
      const files = own.get(name);
      if (!files) throw new Error(`makeChainedPki: no certificate for "${name}"; add it to names`);
      return files;
    },
    newIntermediate,
    newRoot: (name, commonName) => createCa(dir, { name, commonName, pathLength: 1 }),
    issue,
    leafOnly: (certFile, file) => {
      const leaf = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(
        readFileSync(certFile, 'utf8'),
      )?.[0];
      if (!leaf) throw new Error(`${certFile} holds no certificate`);
      const target = join(dir, `${file}.crt`);
      writeFileSync(target, leaf);
      return target;
    },
  };
}

/** A chained PKI made before a file's tests in a folder of its own, removed after them. */
export function useChainedPki(
  prefix: string,
  options: { names: readonly string[] },
): { readonly pki: ChainedPki } {
  let dir: string | undefined;
  const made: { pki: ChainedPki } = { pki: undefined as unknown as ChainedPki };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    made.pki = makeChainedPki(dir, options);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return made;
}
