import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CertificateFiles } from '../../scripts/certs.mjs';
import { ConfigError } from '../../src/common/config.js';
import { channelCredentials, serverCredentials } from '../../src/common/tls.js';
import { checkOwnIdentity, readTlsFiles, watchTlsFiles } from '../../src/common/tls-files.js';
import { tlsProblemLog } from '../../src/common/tls-problem-log.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { installCertificate } from '../helpers/certs.js';
import { type ChainedPki, useChainedPki } from '../helpers/chained-pki.js';
import { captureLog } from '../helpers/log-capture.js';
import { opensslCaSign } from '../helpers/openssl-ca.js';

// The start and reload checks of TLS files with certificates of an intermediate CA: the certificate
// file holds the certificate then the intermediate, the CA file the root (see docs/operations.md).

const REFRESH = { refreshIntervalMs: 20 };
const WAIT = { timeout: 5_000, interval: 20 };

const made = useChainedPki('tls-intermediate-ca-', { names: ['goods'] });

/** The certificates of a PEM file, as X509Certificate. */
function certificatesOf(file: string): X509Certificate[] {
  const blocks = readFileSync(file, 'utf8').match(
    /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
  );
  return (blocks ?? []).map((block) => new X509Certificate(block));
}

/**
 * What a peer given `caFile` makes of a TLS server holding `server`'s certificate file and key, over
 * a real handshake on loopback: 'accepted', or the client's error.
 */
async function peerVerdict(server: { certFile: string; keyFile: string }, caFile: string): Promise<string> {
  const listener = createServer(
    { cert: readFileSync(server.certFile), key: readFileSync(server.keyFile) },
    (socket) => socket.end(),
  );
  await new Promise<void>((listening) => listener.listen(0, '127.0.0.1', listening));
  try {
    return await new Promise<string>((settled) => {
      const { port } = listener.address() as AddressInfo;
      const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(caFile) });
      socket.once('secureConnect', () => {
        settled('accepted');
        socket.destroy();
      });
      socket.once('error', (error: NodeJS.ErrnoException) => settled(String(error.code)));
    });
  } finally {
    listener.close();
  }
}

/** A PEM file in the PKI's folder of the files `parts`, one after the other. */
function bundle(dir: string, name: string, parts: readonly string[]): string {
  const file = join(dir, name);
  writeFileSync(file, parts.map((part) => readFileSync(part, 'utf8')).join(''));
  return file;
}

/**
 * Another certificate of `ca` (its name and key: a cross-signed copy, as a PKI moved to a new root
 * hands out) signed by `issuer`, valid from `notBefore` to `notAfter`: `<dir>/<name>.crt`.
 */
function crossSigned(
  ca: CertificateFiles,
  issuer: CertificateFiles,
  dir: string,
  name: string,
  { notBefore, notAfter }: { notBefore: string; notAfter: string },
): string {
  const scratch = mkdtempSync(join(dir, `${name}-`));
  const path = (file: string) => join(scratch, file);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: scratch, stdio: 'ignore' });
  const subject = `/${new X509Certificate(readFileSync(ca.certFile)).subject.replaceAll('\n', '/')}`;
  openssl('req', '-new', '-key', ca.keyFile, '-subj', subject, '-out', path('copy.csr'));
  const out = join(dir, `${name}.crt`);
  opensslCaSign({
    dir: scratch,
    csr: path('copy.csr'),
    out,
    issuer,
    extensions: [
      'basicConstraints = critical, CA:TRUE, pathlen:0',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
    ],
    startDate: notBefore,
    endDate: notAfter,
    preserveDn: true,
  });
  return out;
}

/** A copy of the PKI's intermediate cross-signed by a root since dropped, expired in 2021. */
function expiredCrossSignedIntermediate(pki: ChainedPki, name: string): string {
  const droppedRoot = pki.newRoot(`${name}-dropped-root`, 'dropped test root CA');
  return crossSigned(pki.intermediate, droppedRoot, pki.dir, name, {
    notBefore: '20200101000000Z',
    notAfter: '20210101000000Z',
  });
}

describe('a certificate file of the certificate then its intermediate, with the root as CA file', () => {
  it('passes every start check', () => {
    const files = made.pki.files('goods');
    expect(certificatesOf(files.certFile).map((certificate) => certificate.subject)).toEqual([
      'CN=goods',
      'CN=test intermediate CA',
    ]);
    expect(() => readTlsFiles(files)).not.toThrow();
    expect(() => checkOwnIdentity(files, 'goods')).not.toThrow();
    const onStartWarning = vi.fn();
    expect(() => serverCredentials(files, { onStartWarning })).not.toThrow();
    expect(() => channelCredentials(files, { expectedName: 'goods', onStartWarning })).not.toThrow();
    expect(onStartWarning).not.toHaveBeenCalled();
  });

  it("is refused at start when its intermediate was signed by another root named as the CA file's", () => {
    const { pki } = made;
    // Another PKI made the same way: its root and intermediate are named as this one's are.
    const twinRoot = pki.newRoot('twin-root', 'test root CA');
    const twinIntermediate = pki.newIntermediate('twin-intermediate', { under: twinRoot });
    const files = {
      caFile: pki.rootFile,
      ...pki.issue('twin-goods', { identity: 'goods', by: twinIntermediate }),
    };
    expect(() => serverCredentials(files)).toThrow(
      `TLS certificate file "${files.certFile}" holds an intermediate CA (CN=test intermediate CA) that names as its issuer "CN=test root CA", a CA of TLS CA file "${pki.rootFile}", but was not signed by it`,
    );
  });

  it('starts without its intermediate, or with one of a root the CA file does not name, as a split CA looks the same, and warns once, naming the files and the issuer', async () => {
    // A component may hold a certificate of another CA than those it checks its peers with (README,
    // Trust): an issuer the CA file does not name is left to the peers, which refuse the chain when
    // they are given the same CA file. Before, nothing was said at start.
    const { pki } = made;
    const otherRoot = pki.newRoot('unnamed-root', 'unnamed root CA');
    const otherIntermediate = pki.newIntermediate('unnamed-intermediate', {
      under: otherRoot,
      commonName: 'unnamed intermediate CA',
    });
    const ofOtherRoot = {
      caFile: pki.rootFile,
      ...pki.issue('goods-of-unnamed', { identity: 'goods', by: otherIntermediate }),
    };
    const own = pki.files('goods');
    const leafAlone = { ...own, certFile: pki.leafOnly(own.certFile, 'goods-leaf-alone') };
    // Peers given the same CA file refuse both (a real handshake on loopback).
    expect(await peerVerdict(leafAlone, pki.rootFile)).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(await peerVerdict(ofOtherRoot, pki.rootFile)).toBe('UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
    const splitCas =
      'with split CAs, where the peers of this component hold its CA in their CA files, it is as meant';
    for (const [files, said] of [
      [
        leafAlone,
        `TLS certificate file "${leafAlone.certFile}" holds the certificate (CN=goods) without intermediates, and its issuer, "CN=test intermediate CA", is not a CA of TLS CA file "${pki.rootFile}": peers given the same CA file would refuse it. If that issuer is an intermediate CA, put it after the certificate in the file (a PKI may hand it apart, as Vault's issuing_ca or cert-manager's ca.crt); if it is a root, add it to every component's CA file; ${splitCas}`,
      ],
      [
        ofOtherRoot,
        `TLS certificate file "${ofOtherRoot.certFile}" holds the certificate (CN=goods) and intermediates up to "CN=unnamed intermediate CA", whose issuer, "CN=unnamed root CA", is not a CA of TLS CA file "${pki.rootFile}": peers given the same CA file would refuse it. If that issuer is an intermediate CA, put it after the intermediates in the file (a PKI may hand it apart, as Vault's issuing_ca or cert-manager's ca.crt); if it is a root, add it to every component's CA file; ${splitCas}`,
      ],
    ] as const) {
      // A component's server and channels check the same files: one warning in its log.
      const { log, lines } = captureLog('goods');
      const problems = tlsProblemLog(log);
      expect(() => serverCredentials(files, problems)).not.toThrow();
      expect(() => channelCredentials(files, { ...problems, expectedName: 'distributor' })).not.toThrow();
      expect(lines.filter((line) => (line.level as number) >= 40)).toEqual([
        expect.objectContaining({ level: 40, event: 'tls-certificate-unanchored', msg: said }),
      ]);
      expect(lines.map((line) => line.msg).join('\n')).not.toContain('PRIVATE KEY');
    }
  });

  it('starts without a word when the CA file holds an expired copy of its intermediate before the valid one, as node:tls passes over it', async () => {
    // A CA bundle that kept the intermediate cross-signed by a root since dropped, expired, before
    // the intermediate signed by its root: node:tls takes the issuer that is valid now. Before, the
    // start check took the first by order and refused it (exit 2) as a chain to a rootless intermediate.
    const { pki } = made;
    const expiredCopy = expiredCrossSignedIntermediate(pki, 'start-expired-copy');
    const caFile = bundle(pki.dir, 'expired-copy-intermediate-root.crt', [
      expiredCopy,
      pki.intermediate.certFile,
      pki.rootFile,
    ]);
    const own = pki.files('goods');
    const leafAlone = { ...own, certFile: pki.leafOnly(own.certFile, 'goods-leaf-beside-expired-copy') };
    // So too among a certificate file's intermediates (the copy, then the intermediate), the root
    // as CA file: node:tls takes the valid one of the peer's chain as well.
    const withCopy = bundle(pki.dir, 'goods-with-expired-copy.crt', [
      leafAlone.certFile,
      expiredCopy,
      pki.intermediate.certFile,
    ]);
    for (const files of [
      { ...own, caFile },
      { ...leafAlone, caFile },
      { ...own, certFile: withCopy },
    ]) {
      expect(await peerVerdict(files, files.caFile)).toBe('accepted');
      const onStartWarning = vi.fn();
      expect(() => serverCredentials(files, { onStartWarning })).not.toThrow();
      expect(() => channelCredentials(files, { expectedName: 'goods', onStartWarning })).not.toThrow();
      expect(onStartWarning).not.toHaveBeenCalled();
    }
    // Without the valid intermediate, node:tls takes the expired copy and refuses; so does the check.
    const copyAndRoot = bundle(pki.dir, 'expired-copy-root.crt', [expiredCopy, pki.rootFile]);
    expect(await peerVerdict(own, copyAndRoot)).toBe('UNABLE_TO_GET_ISSUER_CERT');
    expect(() => serverCredentials({ ...own, caFile: copyAndRoot })).toThrow(
      'chains to the intermediate CA "CN=test intermediate CA" of TLS CA file',
    );
  });

  it('is refused at start when it chains to an intermediate of the CA file whose root the file lacks', async () => {
    // A PKI moved to a new root: its new intermediate (the "issuing_ca" a renewer hands over) added
    // to ca.crt, its root not. Node checks a chain up to a root of the CA file, so peers refuse it.
    const { pki } = made;
    const newRoot = pki.newRoot('start-new-root', 'new test root CA');
    const newIntermediate = pki.newIntermediate('start-new-intermediate', {
      under: newRoot,
      commonName: 'new test intermediate CA',
    });
    const caFile = bundle(pki.dir, 'root-and-new-intermediate.crt', [pki.rootFile, newIntermediate.certFile]);
    const files = { caFile, ...pki.issue('goods-of-new-root', { identity: 'goods', by: newIntermediate }) };
    expect(await peerVerdict(files, caFile)).toBe('UNABLE_TO_GET_ISSUER_CERT');
    const said = `TLS certificate file "${files.certFile}" chains to the intermediate CA "CN=new test intermediate CA" of TLS CA file "${caFile}", which lacks the root above it ("CN=new test root CA"): a chain is checked up to a root (a self-signed CA) of the CA file, so peers given the same CA file would refuse it; add that root to the CA file`;
    expect(() => serverCredentials(files)).toThrow(new ConfigError(said, { showUsage: false }));
    expect(() => channelCredentials(files)).toThrow(new ConfigError(said, { showUsage: false }));
    // With the root added, peers take it, and so does the start check.
    const withRoot = bundle(pki.dir, 'both-roots-and-new-intermediate.crt', [caFile, newRoot.certFile]);
    expect(await peerVerdict(files, withRoot)).toBe('accepted');
    const onStartWarning = vi.fn();
    expect(() => serverCredentials({ ...files, caFile: withRoot }, { onStartWarning })).not.toThrow();
    expect(onStartWarning).not.toHaveBeenCalled();
  });

  it('is read again at start for a moment, as a CA file written a block at a time holds the new intermediate before its root', () => {
    const { pki } = made;
    const newRoot = pki.newRoot('settling-new-root', 'new test root CA');
    const newIntermediate = pki.newIntermediate('settling-new-intermediate', {
      under: newRoot,
      commonName: 'new test intermediate CA',
    });
    const folder = mkdtempSync(join(pki.dir, 'new-root-block-at-a-time-'));
    const caFile = join(folder, 'ca.crt');
    // `cat root.crt new-intermediate.crt new-root.crt > ca.crt` caught before its last write.
    writeFileSync(
      caFile,
      readFileSync(bundle(folder, 'first-two.crt', [pki.rootFile, newIntermediate.certFile])),
    );
    const whole = bundle(folder, 'whole.crt', [pki.rootFile, newIntermediate.certFile, newRoot.certFile]);
    const files = {
      caFile,
      ...pki.issue('goods-while-settling', { identity: 'goods', by: newIntermediate }),
    };
    const writer = spawn('sh', ['-c', `sleep 0.3; cat "${whole}" > "${caFile}"`]);
    try {
      const startedAt = performance.now();
      const onStartWarning = vi.fn();
      expect(() => serverCredentials(files, { onStartWarning })).not.toThrow();
      expect(performance.now() - startedAt).toBeGreaterThan(200);
      expect(onStartWarning).not.toHaveBeenCalled();
    } finally {
      writer.kill();
    }
  });
});

describe('a CA file that holds the intermediate instead of the root', () => {
  it('is refused at start, saying that the root belongs there', () => {
    const { pki } = made;
    const files = { ...pki.files('goods'), caFile: pki.intermediate.certFile };
    const said = `TLS CA file "${pki.intermediate.certFile}" holds no root CA, only an intermediate (CN=test intermediate CA, issued by CN=test root CA): a peer's chain is checked up to a root (a self-signed CA) of the CA file, so every peer would be refused; give the root (a certificate file holds the certificate then its intermediates, the CA file the root)`;
    // Once it has stayed so for settleMs (see the test after this one).
    const startedAt = performance.now();
    expect(() => readTlsFiles(files, { settleMs: 300 })).toThrow(said);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(300);
    expect(() => serverCredentials(files)).toThrow(said);
  });

  it('is read again at start for a moment, as a bundle written a block at a time holds it alone before its root', () => {
    const { pki } = made;
    const folder = mkdtempSync(join(pki.dir, 'block-at-a-time-'));
    const caFile = join(folder, 'ca.crt');
    // `cat intermediate.crt root.crt > ca.crt` caught between its two writes.
    writeFileSync(caFile, readFileSync(pki.intermediate.certFile));
    const writer = spawn('sh', [
      '-c',
      `sleep 0.3; cat "${pki.intermediate.certFile}" "${pki.rootFile}" > "${caFile}"`,
    ]);
    try {
      const startedAt = performance.now();
      const material = readTlsFiles({ ...pki.files('goods'), caFile });
      expect(performance.now() - startedAt).toBeGreaterThan(200);
      expect(material.ca).toEqual(
        Buffer.concat([readFileSync(pki.intermediate.certFile), readFileSync(pki.rootFile)]),
      );
    } finally {
      writer.kill();
    }
  });

  it('is taken beside its root', () => {
    const { pki } = made;
    const bundle = join(pki.dir, 'intermediate-and-root.crt');
    writeFileSync(
      bundle,
      Buffer.concat([readFileSync(pki.intermediate.certFile), readFileSync(pki.rootFile)]),
    );
    expect(() => readTlsFiles({ ...pki.files('goods'), caFile: bundle })).not.toThrow();
  });
});

describe('a CA file whose root does not verify its own signature', () => {
  it('is taken, as node:tls takes such a root as the end of a chain without checking it', async () => {
    // A self-issued root (its subject its issuer, no key identifiers) signed by another key of the
    // same name, and a certificate it issued: OpenSSL checks no signature of a trust anchor.
    const folder = mkdtempSync(join(made.pki.dir, 'unverified-root-'));
    const path = (file: string) => join(folder, file);
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    for (const key of ['root', 'other', 'leaf']) {
      openssl(
        'genpkey',
        '-algorithm',
        'EC',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-out',
        path(`${key}.key`),
      );
    }
    writeFileSync(
      path('ext.cnf'),
      [
        '[ca]',
        'basicConstraints=critical,CA:TRUE',
        'keyUsage=critical,keyCertSign',
        'subjectKeyIdentifier=none',
        'authorityKeyIdentifier=none',
        '[leaf]',
        'basicConstraints=CA:FALSE',
        'subjectAltName=DNS:localhost',
        'subjectKeyIdentifier=none',
        'authorityKeyIdentifier=none',
      ].join('\n'),
    );
    const subject = '/CN=unverified root';
    openssl(
      'req',
      '-x509',
      '-new',
      '-key',
      path('other.key'),
      '-subj',
      subject,
      '-days',
      '2',
      '-out',
      path('other.crt'),
    );
    openssl('req', '-new', '-key', path('root.key'), '-subj', subject, '-out', path('root.csr'));
    openssl('req', '-new', '-key', path('leaf.key'), '-subj', '/CN=leaf', '-out', path('leaf.csr'));
    const sign = (csr: string, ca: string, extensions: string, out: string) =>
      openssl(
        'x509',
        '-req',
        '-in',
        path(csr),
        '-CA',
        path(`${ca}.crt`),
        '-CAkey',
        path(`${ca}.key`),
        '-days',
        '2',
        '-extfile',
        path('ext.cnf'),
        '-extensions',
        extensions,
        '-out',
        path(out),
      );
    sign('root.csr', 'other', 'ca', 'root.crt');
    sign('leaf.csr', 'root', 'leaf', 'leaf.crt');
    const root = new X509Certificate(readFileSync(path('root.crt')));
    expect(root.verify(root.publicKey)).toBe(false);

    const server = createServer(
      { cert: readFileSync(path('leaf.crt')), key: readFileSync(path('leaf.key')) },
      (socket) => socket.end(),
    );
    await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
    try {
      const handshake = await new Promise<string>((settled) => {
        const { port } = server.address() as AddressInfo;
        const socket = connect({
          port,
          host: '127.0.0.1',
          servername: 'localhost',
          ca: readFileSync(path('root.crt')),
        });
        socket.once('secureConnect', () => {
          settled('accepted');
          socket.destroy();
        });
        socket.once('error', (error) => settled(String(error)));
      });
      expect(handshake).toBe('accepted');
    } finally {
      server.close();
    }
    expect(() => readTlsFiles({ caFile: path('root.crt') })).not.toThrow();
    const url = `mysql://shop@db.example:3306/shop?ssl=${encodeURIComponent(JSON.stringify({ ca: readFileSync(path('root.crt'), 'utf8') }))}`;
    expect(() => parseMysqlUrl(url, 'MYSQL_URL')).not.toThrow();
  });
});

describe('a MySQL URL whose ?ssl= "ca" is an intermediate', () => {
  it('is refused at start without its root, and taken with it as a second text', () => {
    const { pki } = made;
    const intermediate = readFileSync(pki.intermediate.certFile, 'utf8');
    const url = (ca: unknown) =>
      `mysql://shop@db.example:3306/shop?ssl=${encodeURIComponent(JSON.stringify({ rejectUnauthorized: true, ca }))}`;
    expect(() => parseMysqlUrl(url(intermediate), 'MYSQL_URL')).toThrow(
      'MYSQL_URL: the "ssl" parameter\'s "ca" holds no root CA, only an intermediate (CN=test intermediate CA, issued by CN=test root CA)',
    );
    expect(() =>
      parseMysqlUrl(url([intermediate, readFileSync(pki.rootFile, 'utf8')]), 'MYSQL_URL'),
    ).not.toThrow();
  });
});

describe('a renewal from an intermediate', () => {
  it('is taken when a new intermediate of the same root issued it', async () => {
    const { pki } = made;
    const folder = mkdtempSync(join(pki.dir, 'renewal-'));
    const files = { caFile: pki.rootFile, ...installCertificate(pki.files('goods'), folder, 'goods') };
    const next = pki.newIntermediate('next-intermediate', { commonName: 'test intermediate CA 2' });
    const onChange = vi.fn();
    const onReloadError = vi.fn();
    const stop = watchTlsFiles(files, readTlsFiles(files), onChange, { ...REFRESH, onReloadError });
    try {
      installCertificate(pki.issue('goods-of-next', { identity: 'goods', by: next }), folder, 'goods');
      await vi.waitFor(() => expect(onChange).toHaveBeenCalledOnce(), WAIT);
      expect(onChange.mock.calls[0]![0].cert).toEqual(readFileSync(files.certFile));
      expect(onReloadError).not.toHaveBeenCalled();
    } finally {
      stop();
    }
  });

  it('is taken when the CA file holds an expired copy of its intermediate before the valid one', async () => {
    // The certificate in use of another intermediate of the root, the renewal of the intermediate
    // whose expired cross-signed copy the CA file holds first: node:tls passes over the copy. Before,
    // the renewal was refused as a chain to an intermediate of the CA file without its root.
    const { pki } = made;
    const folder = mkdtempSync(join(pki.dir, 'renewal-beside-expired-copy-'));
    const caFile = bundle(folder, 'ca.crt', [
      expiredCrossSignedIntermediate(pki, 'renewal-expired-copy'),
      pki.intermediate.certFile,
      pki.rootFile,
    ]);
    const other = pki.newIntermediate('in-use-intermediate', { commonName: 'in-use intermediate CA' });
    const inUse = pki.issue('goods-in-use', { identity: 'goods', by: other });
    const files = { caFile, ...installCertificate(inUse, folder, 'goods') };
    const renewal = pki.issue('goods-beside-expired-copy', { identity: 'goods' });
    expect(await peerVerdict(renewal, caFile)).toBe('accepted');
    const onChange = vi.fn();
    const onReloadError = vi.fn();
    const stop = watchTlsFiles(files, readTlsFiles(files), onChange, { ...REFRESH, onReloadError });
    try {
      installCertificate(renewal, folder, 'goods');
      await vi.waitFor(() => expect(onChange).toHaveBeenCalledOnce(), WAIT);
      expect(onReloadError).not.toHaveBeenCalled();
    } finally {
      stop();
    }
  });

  it('is refused, and the certificate in use kept, when it comes without its intermediate or from another root', async () => {
    const { pki } = made;
    const folder = mkdtempSync(join(pki.dir, 'bad-renewal-'));
    const files = { caFile: pki.rootFile, ...installCertificate(pki.files('goods'), folder, 'goods') };
    const otherRoot = pki.newRoot('other-root', 'other test root CA');
    const foreign = pki.newIntermediate('foreign-intermediate', {
      under: otherRoot,
      commonName: 'foreign intermediate CA',
    });
    const renewed = pki.issue('goods-renewed', { identity: 'goods' });
    const withoutIntermediate = {
      ...renewed,
      certFile: pki.leafOnly(renewed.certFile, 'goods-renewed-leaf'),
    };
    for (const [renewal, said] of [
      [
        withoutIntermediate,
        'lacks the intermediate CA that issued it (CN=test intermediate CA), which the certificate in use has after it: peers would refuse it; put the intermediates after the certificate in the file',
      ],
      [pki.issue('goods-foreign', { identity: 'goods', by: foreign }), 'is not issued by a CA of'],
    ] as const) {
      const onChange = vi.fn();
      const onReloadError = vi.fn();
      installCertificate(pki.files('goods'), folder, 'goods');
      const stop = watchTlsFiles(files, readTlsFiles(files), onChange, { ...REFRESH, onReloadError });
      try {
        installCertificate(renewal, folder, 'goods');
        await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
        expect(onReloadError.mock.calls[0]![0].message).toContain(said);
        expect(onChange).not.toHaveBeenCalled();
      } finally {
        stop();
      }
    }
  });
});

describe('a renewal onto an intermediate whose root the CA file lacks', () => {
  it('is refused, and the certificate in use kept, saying to add the root first', async () => {
    // A PKI moved to a new intermediate under a new root, the intermediate added to ca.crt beside the
    // old root but not its own root: peers given that CA file refuse the renewed certificate, as
    // node:tls checks a chain up to a root of it. Before, it was taken.
    const { pki } = made;
    const newRoot = pki.newRoot('renewal-new-root', 'renewal root CA');
    const newIntermediate = pki.newIntermediate('renewal-new-intermediate', {
      under: newRoot,
      commonName: 'renewal intermediate CA',
    });
    const folder = mkdtempSync(join(pki.dir, 'rootless-renewal-'));
    const caFile = bundle(folder, 'ca.crt', [pki.rootFile, newIntermediate.certFile]);
    const files = { caFile, ...installCertificate(pki.files('goods'), folder, 'goods') };
    const renewal = pki.issue('goods-of-renewal-root', { identity: 'goods', by: newIntermediate });
    expect(await peerVerdict(renewal, caFile)).toBe('UNABLE_TO_GET_ISSUER_CERT');
    const onChange = vi.fn();
    const onReloadError = vi.fn();
    const stop = watchTlsFiles(files, readTlsFiles(files), onChange, { ...REFRESH, onReloadError });
    try {
      installCertificate(renewal, folder, 'goods');
      await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
      expect(onReloadError.mock.calls[0]![0].message).toBe(
        `TLS certificate file "${files.certFile}" chains to the intermediate CA "CN=renewal intermediate CA" of TLS CA file "${caFile}", which lacks the root above it ("CN=renewal root CA"), where the certificate in use chains to a root of it: a chain is checked up to a root of the CA file, so peers given the same CA file would refuse it; add that root to every component's CA file first (a CA rotation's first step)`,
      );
      expect(onChange).not.toHaveBeenCalled();
      // The root added to the CA file: the renewal is taken, and peers given that file accept it.
      writeFileSync(caFile, readFileSync(caFile, 'utf8') + readFileSync(newRoot.certFile, 'utf8'));
      await vi.waitFor(() => expect(onChange).toHaveBeenCalledOnce(), WAIT);
      expect(await peerVerdict(renewal, caFile)).toBe('accepted');
    } finally {
      stop();
    }
  });
});

describe('an intermediate in use that nears its end', () => {
  afterEach(() => vi.useRealTimers());

  it('is told of by its name, and the log says to renew the intermediate', async () => {
    const { pki } = made;
    const shortLived = pki.newIntermediate('short-intermediate', {
      commonName: 'short intermediate CA',
      days: 30,
    });
    const files = {
      caFile: pki.rootFile,
      ...pki.issue('goods-short', { identity: 'goods', by: shortLived }),
    };
    const validTo = new Date(new X509Certificate(readFileSync(shortLived.certFile)).validTo);
    const { log, lines } = captureLog('goods');
    const problems = tlsProblemLog(log);
    const onExpiry = vi.fn(problems.onExpiry);
    vi.useFakeTimers({ toFake: ['Date'] });
    const stop = watchTlsFiles(files, readTlsFiles(files), () => {}, { ...REFRESH, onExpiry });
    try {
      vi.setSystemTime(validTo.getTime() - 24 * 60 * 60 * 1000);
      await vi.waitFor(() => expect(onExpiry).toHaveBeenCalledOnce(), WAIT);
      expect(onExpiry).toHaveBeenLastCalledWith({
        file: files.certFile,
        validTo,
        expired: false,
        intermediate: 'CN=short intermediate CA',
      });
      expect(lines.at(-1)).toMatchObject({
        event: 'tls-certificate-expiring',
        intermediate: 'CN=short intermediate CA',
        msg: `TLS certificate file "${files.certFile}" holds the intermediate CA "CN=short intermediate CA" after its certificate, which expires on ${validTo.toISOString()}: have its PKI renew the intermediate, and renew the certificate with the new chain before then`,
      });
      vi.setSystemTime(validTo.getTime() + 1_000);
      await vi.waitFor(() => expect(onExpiry).toHaveBeenCalledTimes(2), WAIT);
      expect(lines.at(-1)).toMatchObject({
        event: 'tls-certificate-expired',
        msg: `TLS certificate file "${files.certFile}" holds the intermediate CA "CN=short intermediate CA" after its certificate, which expired on ${validTo.toISOString()}: peers refuse the chain; have its PKI renew the intermediate, and renew the certificate with the new chain`,
      });
    } finally {
      stop();
    }
  });
});

describe('a certificate file that holds the root after the intermediate', () => {
  afterEach(() => vi.useRealTimers());

  it("tells of the root's end as the CA's to rotate, not as an intermediate's to renew", async () => {
    const { pki } = made;
    const goods = pki.files('goods');
    const dir = mkdtempSync(join(pki.dir, 'whole-chain-'));
    const certFile = join(dir, 'goods.crt');
    writeFileSync(certFile, readFileSync(goods.certFile, 'utf8') + readFileSync(pki.rootFile, 'utf8'));
    const files = { ...goods, certFile };
    const rootEnd = new Date(new X509Certificate(readFileSync(pki.rootFile)).validTo);
    const { log, lines } = captureLog('goods');
    const onExpiry = vi.fn(tlsProblemLog(log).onExpiry);
    vi.useFakeTimers({ toFake: ['Date'] });
    const stop = watchTlsFiles(files, readTlsFiles(files), () => {}, { ...REFRESH, onExpiry });
    try {
      vi.setSystemTime(rootEnd.getTime() - 24 * 60 * 60 * 1000);
      const rootLine = () => lines.find((line) => line.file === certFile && line.root !== undefined);
      await vi.waitFor(() => expect(rootLine()).toBeDefined(), WAIT);
      expect(rootLine()).toMatchObject({
        event: 'tls-certificate-expiring',
        root: 'CN=test root CA',
        msg: `TLS certificate file "${certFile}" holds the root CA "CN=test root CA" after its certificate, which expires on ${rootEnd.toISOString()}: rotate the CA, in three steps (docs/operations.md) before then`,
      });
      expect(lines.filter((line) => line.intermediate === 'CN=test root CA')).toEqual([]);
    } finally {
      stop();
    }
  });
});

describe("a CA file's CA that nears its end", () => {
  afterEach(() => vi.useRealTimers());

  it('is told of as the CA to rotate, in the words of a CA file, not as a certificate to renew', async () => {
    const { pki } = made;
    const files = pki.files('goods');
    const caEnd = new Date(new X509Certificate(readFileSync(files.caFile!)).validTo);
    const { log, lines } = captureLog('goods');
    vi.useFakeTimers({ toFake: ['Date'] });
    const stop = watchTlsFiles(files, readTlsFiles(files), () => {}, {
      ...REFRESH,
      onExpiry: tlsProblemLog(log).onExpiry,
    });
    try {
      vi.setSystemTime(caEnd.getTime() - 24 * 60 * 60 * 1000);
      const caLine = () => lines.find((line) => line.file === files.caFile);
      await vi.waitFor(() => expect(caLine()).toBeDefined(), WAIT);
      expect(caLine()).toMatchObject({
        event: 'tls-certificate-expiring',
        ca: 'CN=test root CA',
        msg: `TLS CA file "${files.caFile}" holds the CA "CN=test root CA", which expires on ${caEnd.toISOString()}: rotate the CA, in three steps (docs/operations.md) before then`,
      });
      vi.setSystemTime(caEnd.getTime() + 1_000);
      const expiredLine = () =>
        lines.find((line) => line.file === files.caFile && line.event === 'tls-certificate-expired');
      await vi.waitFor(() => expect(expiredLine()).toBeDefined(), WAIT);
      expect(expiredLine()!.msg).toBe(
        `TLS CA file "${files.caFile}" holds the CA "CN=test root CA", which expired on ${caEnd.toISOString()}: peers it issued are refused; rotate the CA, in three steps (docs/operations.md)`,
      );
    } finally {
      stop();
    }
  });
});

describe("the database server's CA file, nearing its end", () => {
  it("is told as the database's CA to take beside the old one, not the shop's CA to rotate", () => {
    const { log, lines } = captureLog('goods');
    const { onExpiry } = tlsProblemLog(log, { peers: 'database' });
    const validTo = new Date('2027-01-01T00:00:00.000Z');
    const notice = {
      file: '/etc/mysql/ca.pem',
      setting: '--mysql-ssl-ca (MYSQL_SSL_CA)',
      validTo,
      ca: 'CN=db CA',
    };
    onExpiry({ ...notice, expired: false });
    onExpiry({ ...notice, expired: true });
    expect(lines.map((line) => line.msg)).toEqual([
      `TLS CA file "/etc/mysql/ca.pem" from --mysql-ssl-ca (MYSQL_SSL_CA) holds the CA "CN=db CA", which expires on 2027-01-01T00:00:00.000Z: put the database server's new CA in the file beside this one before then`,
      `TLS CA file "/etc/mysql/ca.pem" from --mysql-ssl-ca (MYSQL_SSL_CA) holds the CA "CN=db CA", which expired on 2027-01-01T00:00:00.000Z: the database server's certificate is refused; put the database server's new CA in the file beside this one`,
    ]);
  });
});
