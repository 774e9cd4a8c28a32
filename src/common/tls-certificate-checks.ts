import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { ConfigError } from './config.js';
import { TRUST_DOMAIN, uriSans } from './identity.js';
import { issuedBy } from './issued-by.js';
import { authoritiesOf, certificateBlocks, leafOf, oneLine, parseCertificate } from './pem-certificates.js';
import { named, type TlsFiles, type TlsMaterial } from './tls-file-types.js';

export const NOT_PEM_CERTIFICATES = ': expected PEM certificates';

/**
 * What is wrong with `pem` as CA certificates, said after the name of where it came from
 * (": expected PEM certificates"), or undefined when every block is a certificate that may issue.
 */
export function caCertificatesProblem(pem: Buffer): string | undefined {
  const certificates = certificateBlocks(pem).map(parseCertificate);
  // A CA file is handed to every host (and a MySQL URL's "ca" sits in its environment): a key in
  // it goes with it, and node:tls took such a file without a word (`cat ca.key ca.crt > ca.pem`).
  const keys = privateKeyBlocks(pem);
  if (keys.length > 0) {
    // Only a CA's key issues: a component's own certificate and key given as the CA file (a
    // combined PEM) was named the key of its CA, and told to make a new CA.
    const authorities = certificates.filter(
      (certificate): certificate is X509Certificate => certificate !== undefined && canIssue(certificate),
    );
    const theCas = keys
      .map(readableKey)
      .flatMap((key) => (key ? authorities.filter((certificate) => certificate.checkPrivateKey(key)) : []));
    return theCas[0]
      ? ` holds the private key of its CA (${oneLine(theCas[0].subject)}): whoever is given the file can issue certificates its peers trust; take the key out (it belongs on the machine that issues certificates alone) and, if the file was handed out, make a new CA`
      : ' holds a private key: a CA file is handed to every host, and the key with it; give the CA certificates alone';
  }
  if (certificates.length === 0 || certificates.includes(undefined)) return NOT_PEM_CERTIFICATES;
  // node:tls takes a component's own certificate given as the CA, and every handshake then fails
  // with an error about the peer's issuer that does not say why: said here instead.
  const notCa = certificates.find((certificate) => certificate !== undefined && !canIssue(certificate));
  if (notCa) {
    return ` holds a certificate that is not a CA (${notCa.subject.replaceAll('\n', ', ')}): give the certificate of the CA that issued the peers' certificates`;
  }
  return undefined;
}

/**
 * The private key blocks of a PEM (PKCS #8, PKCS #1, SEC 1, encrypted or not). A block's body stops
 * at the first "-----" (no PEM body holds one): searched up to any END line, each BEGIN without its
 * own read on to the end of the file, and a 1 MiB CA file of such lines took over 10 s at every read.
 */
function privateKeyBlocks(pem: Buffer): string[] {
  return (
    pem
      .toString('utf8')
      .match(/-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----(?:(?!-----)[\s\S])+-----END \1PRIVATE KEY-----/g) ?? []
  );
}

/** A key block as a KeyObject, or undefined when it cannot be read without a passphrase (or at all). */
function readableKey(block: string): KeyObject | undefined {
  try {
    return createPrivateKey(block);
  } catch {
    return undefined;
  }
}

/**
 * What is wrong with CA certificates (every one a CA, see caCertificatesProblem) that hold no root,
 * said as caCertificatesProblem says it, or undefined when one of them is a root (see isRoot).
 * Node verifies a peer's chain only up to a root of its CA file (OpenSSL's partial chains are off):
 * a CA file of an intermediate alone, as an operator whose PKI issues from an intermediate may give
 * it, accepts no peer, even one that sends the root after its intermediate, and every handshake
 * failed with "unable to get issuer certificate" (UNABLE_TO_GET_ISSUER_CERT) while the component
 * itself started. A root beside intermediates whose own root is missing is left alone: it anchors
 * the chains it issued.
 */
export function rootlessCaProblem(pem: Buffer): string | undefined {
  const certificates = authoritiesOf(pem);
  if (certificates.length === 0 || certificates.some(isRoot)) return undefined;
  const [intermediate] = certificates as [X509Certificate];
  return ` holds no root CA, only an intermediate (${oneLine(intermediate.subject)}, issued by ${oneLine(intermediate.issuer)}): a peer's chain is checked up to a root (a self-signed CA) of the CA file, so every peer would be refused; give the root (a certificate file holds the certificate then its intermediates, the CA file the root)`;
}

/**
 * Whether a certificate ends a chain as OpenSSL takes a root: self-issued (its subject is its issuer,
 * and no key identifier says another key signed it), its own signature left unchecked, as OpenSSL
 * leaves it for a trust anchor. A root whose self-signature does not verify (signed by another key
 * of the same name, or broken) anchors chains all the same: refused for it, a CA file that works
 * stopped the component at start.
 */
export function isRoot(certificate: X509Certificate): boolean {
  return certificate.checkIssued(certificate);
}

/**
 * A renewed certificate is taken only once it has started. The clock skew allowed at start (when
 * nothing else could be served) is no reason to take it on a re-read: peers check its start against
 * their own clocks, and every new handshake would fail ("certificate is not yet valid") until then,
 * while the certificate in use still works. The next read after its start takes it, as the files
 * still differ from the material in use. Unless the one in use has expired: then nothing works, and
 * the new one works at least for peers whose clocks run ahead.
 */
export function checkStarted(files: TlsFiles, current: TlsMaterial, next: TlsMaterial): void {
  const offered = next.cert === undefined ? undefined : leafOf(next.cert);
  if (!offered || Date.parse(offered.validFrom) <= Date.now()) return;
  const held = current.cert === undefined ? undefined : leafOf(current.cert);
  if (!held || Date.parse(held.validTo) < Date.now()) return;
  throw new ConfigError(
    `${named(files, 'certFile')} is not valid before ${new Date(offered.validFrom).toISOString()}: peers would refuse it until then, and it is taken at the first read after`,
  );
}

/**
 * A renewed certificate must name the component the one in use names (`spiffe://shop/<name>`): the
 * name a node registered under and its peers check (secure naming) stays the same while it runs,
 * so a certificate of another component, taken on a re-read, would fail every new handshake with
 * a peer and every registration again (PERMISSION_DENIED).
 */
export function checkSameIdentity(files: TlsFiles, current: TlsMaterial, next: TlsMaterial): void {
  if (!current.cert || !next.cert) return;
  const held = shopIdentities(current.cert);
  if (held.length === 0) return;
  const offered = shopIdentities(next.cert);
  if (offered.length === held.length && offered.every((identity) => held.includes(identity))) return;
  throw new ConfigError(
    `${named(files, 'certFile')} names ${offered.join(', ') || 'no identity'}, not ${held.join(', ')} as the certificate in use does: a component keeps its identity while it runs; restart it with a certificate of another name`,
  );
}

/**
 * A renewed certificate must chain to a root of the CA file (read with it) when the one in use does:
 * every component is given the same ca.crt, so peers trust no other issuer, and a certificate of
 * another CA (say, copied from an `npm run certs --new-ca` run or another shop), or of an
 * intermediate whose root the CA file lacks (a PKI moved to a new root, its intermediate added to
 * ca.crt but not the root), taken on a re-read, would fail every new handshake, with peers and with
 * the distributor, while the one in use still works. A CA rotation that first adds the new CA to
 * ca.crt, then renews the certificates, then drops the old CA passes at every step; one that
 * replaces ca.crt first is left alone (the certificate in use no longer chains either).
 */
export function checkIssuedByTrustedCa(files: TlsFiles, current: TlsMaterial, next: TlsMaterial): void {
  if (!next.ca || !current.cert || !next.cert) return;
  const authorities = authoritiesOf(next.ca);
  if (!anchoringOf(current.cert, authorities).anchored) return;
  const { anchored, authority, chain } = anchoringOf(next.cert, authorities);
  if (anchored) return;
  if (authority) {
    throw new ConfigError(
      `${named(files, 'certFile')} chains to the intermediate CA ${quoted(authority.subject)} of ${named(files, 'caFile')}, which lacks the root above it (${quoted(chain.at(-1)?.issuer)}), where the certificate in use chains to a root of it: a chain is checked up to a root of the CA file, so peers given the same CA file would refuse it; add that root to every component's CA file first (a CA rotation's first step)`,
    );
  }
  // A renewer that writes the certificate alone, without the intermediate its PKI issued it from
  // (the intermediate handed apart, as a "ca_chain" or "issuing_ca"): the CA is right, the file is not.
  const top = chainOf(next.cert).at(-1);
  const missing = chainOf(current.cert)
    .slice(1)
    .find((held) => held.subject === top?.issuer && !isRoot(held));
  if (missing) {
    throw new ConfigError(
      `${named(files, 'certFile')} lacks the intermediate CA that issued it (${oneLine(missing.subject)}), which the certificate in use has after it: peers would refuse it; put the intermediates after the certificate in the file`,
    );
  }
  throw new ConfigError(
    `${named(files, 'certFile')} is not issued by a CA of ${named(files, 'caFile')}, as the certificate in use is (its chain ends at ${quoted(top?.subject)}, issued by ${quoted(top?.issuer)}): peers given the same CA would refuse it; issue it with that CA (npm run certs keeps ca.key)`,
  );
}

/**
 * Checks at start that a component's certificate chains, through the intermediates after it in its
 * file, to a root of its CA file, as peers given the same CA file check it; every peer refused the
 * handshakes of one that does not, while the component itself listened and dialled without a word.
 * Refused (ConfigError) when the CA file claims the certificate's issuer and peers given it would
 * still refuse it: a CA of the same name that did not sign it (another `npm run certs` run: every
 * run names its CA alike), or an intermediate CA of the CA file whose root the file lacks. A chain
 * that reaches nothing of the CA file is only told to `warn`: a shop may give its kinds of
 * components certificates of different CAs, each trusting the others' (split CAs: one CA for the
 * services, another for the gateways), so a component's own issuer need not be among the CAs it
 * checks its peers with, and its peers' CA files, which decide, are not known here. A certificate
 * file without its intermediate (handed apart by its PKI, as Vault's issuing_ca or cert-manager's
 * ca.crt) looks the same from here.
 */
export function checkOwnChain(
  files: TlsFiles,
  material: TlsMaterial,
  warn: (warning: string) => void = () => {},
): void {
  if (!material.ca || !material.cert) return;
  const authorities = authoritiesOf(material.ca);
  const { anchored, authority, chain } = anchoringOf(material.cert, authorities);
  if (anchored) return;
  const top = chain.at(-1);
  if (authority) {
    throw new ConfigError(
      `${named(files, 'certFile')} chains to the intermediate CA ${quoted(authority.subject)} of ${named(files, 'caFile')}, which lacks the root above it (${quoted(top?.issuer)}): a chain is checked up to a root (a self-signed CA) of the CA file, so peers given the same CA file would refuse it; add that root to the CA file`,
    );
  }
  const links = certificateBlocks(material.cert).flatMap((block) => parseCertificate(block) ?? []);
  const claimed = links.find((link) => authorities.some((authority) => authority.subject === link.issuer));
  if (claimed) {
    // An intermediate after the certificate, when it is the one that names the CA (another PKI's,
    // named as this one's are).
    const naming = claimed === links[0] ? '' : ` holds an intermediate CA (${oneLine(claimed.subject)}) that`;
    throw new ConfigError(
      `${named(files, 'certFile')}${naming} names as its issuer "${oneLine(claimed.issuer)}", a CA of ${named(files, 'caFile')}, but was not signed by it: peers given the same CA would refuse it; use a certificate and a CA file of the same \`npm run certs\` run`,
    );
  }
  if (!top) return;
  warn(unanchoredWarning(files, chain, top));
}

/** What checkOwnChain warns of a chain that reaches no CA of the CA file, `top` its last link. */
function unanchoredWarning(files: TlsFiles, chain: readonly X509Certificate[], top: X509Certificate): string {
  const splitCas =
    'with split CAs, where the peers of this component hold its CA in their CA files, it is as meant';
  const peersRefuse = `peers given the same CA file would refuse it`;
  if (isRoot(top)) {
    return `${named(files, 'certFile')} chains to the root CA ${quoted(top.subject)}, which is not a CA of ${named(files, 'caFile')}: ${peersRefuse}; add that root to every component's CA file, or ${splitCas}`;
  }
  const held =
    chain.length === 1
      ? `holds the certificate (${oneLine(top.subject)}) without intermediates, and its issuer, ${quoted(top.issuer)}, is not a CA of ${named(files, 'caFile')}`
      : `holds the certificate (${oneLine(chain[0]!.subject)}) and intermediates up to ${quoted(top.subject)}, whose issuer, ${quoted(top.issuer)}, is not a CA of ${named(files, 'caFile')}`;
  return `${named(files, 'certFile')} ${held}: ${peersRefuse}. If that issuer is an intermediate CA, put it after the ${chain.length === 1 ? 'certificate' : 'intermediates'} in the file (a PKI may hand it apart, as Vault's issuing_ca or cert-manager's ca.crt); if it is a root, add it to every component's CA file; ${splitCas}`;
}

/** A certificate's subject or issuer in quotes, on one line. */
function quoted(name: string | undefined): string {
  return `"${oneLine(name ?? '')}"`;
}

/** How a certificate file's chain stands against the CAs of a CA file (see anchoringOf). */
interface Anchoring {
  /** The certificate, then each certificate (of its file, or of the CA file) that issued the one before. */
  readonly chain: readonly X509Certificate[];
  /** The first certificate of the CA file the chain reached, if any. */
  readonly authority?: X509Certificate;
  /** Whether the chain ends at a root of the CA file, as a peer given that file requires. */
  readonly anchored: boolean;
}

/**
 * Builds a PEM's chain as node:tls (OpenSSL) builds a peer's: from its first certificate, each issuer
 * taken from `authorities` (the CA file) first, else from the intermediates after it, chosen among
 * several as OpenSSL chooses (see issuerAmong). Node accepts it only when it ends at a root (see
 * isRoot) of the CA file, as OpenSSL's partial chains are off: an intermediate of the CA file whose
 * root the file lacks anchors nothing, nor does a root in the certificate file.
 */
export function anchoringOf(pem: Buffer, authorities: readonly X509Certificate[]): Anchoring {
  const certificates = certificateBlocks(pem).flatMap((block) => parseCertificate(block) ?? []);
  const chain: X509Certificate[] = [];
  let authority: X509Certificate | undefined;
  let link: X509Certificate | undefined = certificates[0];
  // At most as many links as certificates in all: a chain that loops ends here, not in an endless walk.
  const most = certificates.length + authorities.length;
  while (link !== undefined && chain.length < most) {
    chain.push(link);
    const subject: X509Certificate = link;
    if (authorities.includes(subject)) {
      authority ??= subject;
      if (isRoot(subject)) return { chain, authority, anchored: true };
    }
    link = issuerAmong(subject, authorities) ?? issuerAmong(subject, certificates.slice(1));
  }
  return { chain, ...(authority === undefined ? {} : { authority }), anchored: false };
}

/**
 * The issuer of `subject` among `candidates` that OpenSSL takes (X509_STORE_CTX_get1_issuer for the
 * CA file, find_issuer for the peer's chain): the first that issued it and is valid now, else the
 * one of them that expires last. The first by order alone was wrong: a CA file that keeps an
 * expired copy of an intermediate (cross-signed by a root since dropped) before the valid one works,
 * as node:tls passes over the copy, and was refused at start as a chain to a rootless intermediate.
 */
function issuerAmong(
  subject: X509Certificate,
  candidates: readonly X509Certificate[],
): X509Certificate | undefined {
  const now = Date.now();
  let lastToExpire: X509Certificate | undefined;
  for (const candidate of candidates) {
    if (candidate === subject || !issuedBy(subject, candidate)) continue;
    if (Date.parse(candidate.validFrom) <= now && now <= Date.parse(candidate.validTo)) return candidate;
    if (!lastToExpire || Date.parse(candidate.validTo) > Date.parse(lastToExpire.validTo)) {
      lastToExpire = candidate;
    }
  }
  return lastToExpire;
}

/**
 * A PEM's first certificate, then the intermediate after it that issued it, and so on for as long
 * as one of the file did: the chain a peer can build from the file alone, its top the last.
 */
function chainOf(pem: Buffer): X509Certificate[] {
  const certificates = certificateBlocks(pem).flatMap((block) => parseCertificate(block) ?? []);
  const chain: X509Certificate[] = [];
  let link: X509Certificate | undefined = certificates[0];
  // At most as many links as certificates: a chain that loops ends here, not in an endless walk.
  while (link !== undefined && chain.length < certificates.length) {
    chain.push(link);
    const subject: X509Certificate = link;
    link = certificates
      .slice(1)
      .find((intermediate) => intermediate !== subject && issuedBy(subject, intermediate));
  }
  return chain;
}

/** The `spiffe://shop/…` URI SANs of a PEM's first certificate. */
export function shopIdentities(pem: Buffer): string[] {
  return uriSans(leafOf(pem)?.subjectAltName)
    .filter((identity) => identity.startsWith(`spiffe://${TRUST_DOMAIN}/`))
    .sort();
}

/**
 * Whether a certificate may issue others: basicConstraints CA:TRUE, or an X.509 version 1 root,
 * which has no extensions to say so and which OpenSSL takes as a CA all the same (old roots are).
 */
function canIssue(certificate: X509Certificate): boolean {
  return certificate.ca || (isVersion1(certificate.raw) && certificate.checkIssued(certificate));
}

/** Whether DER `certificate` is X.509 version 1: its TBSCertificate starts without the [0] version. */
function isVersion1(certificate: Buffer): boolean {
  // Past the headers of the Certificate and TBSCertificate SEQUENCEs: a length byte of 0x8n is
  // followed by n bytes of length.
  let offset = 0;
  for (let header = 0; header < 2; header++) {
    const length = certificate[offset + 1] ?? 0;
    offset += 2 + (length & 0x80 ? length & 0x7f : 0);
  }
  return certificate[offset] !== 0xa0;
}
