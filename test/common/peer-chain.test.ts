import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { DetailedPeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { chainTrustedBy, peerChainOf } from '../../src/common/peer-chain.js';
import { useTestPki } from '../helpers/certs.js';

const testPki = useTestPki('peer-chain-', { names: ['goods'] });

const certificate = (file: string): X509Certificate => new X509Certificate(readFileSync(file));

describe('chainTrustedBy', () => {
  it('trusts a leaf its CA signed, as long as that CA is among the authorities, whatever else they hold', () => {
    const { pki } = testPki;
    const ca = certificate(pki.caFile);
    const other = certificate(pki.otherCaFile);
    const leafOfCa = certificate(pki.files('goods').certFile);
    const leafOfOther = certificate(pki.foreignFiles('goods').certFile);
    expect(chainTrustedBy([leafOfCa], [ca])).toBe(true);
    expect(chainTrustedBy([leafOfCa], [other, ca])).toBe(true);
    expect(chainTrustedBy([leafOfOther], [ca, other])).toBe(true);
    // The other CA removed: its leaf chains to nothing left.
    expect(chainTrustedBy([leafOfOther], [ca])).toBe(false);
    expect(chainTrustedBy([leafOfCa], [other])).toBe(false);
    expect(chainTrustedBy([leafOfCa], [])).toBe(false);
  });

  it('trusts a chain one of whose certificates is an authority itself, and not one whose CA is only named alike', () => {
    const { pki } = testPki;
    const ca = certificate(pki.caFile);
    const other = certificate(pki.otherCaFile);
    const leafOfOther = certificate(pki.foreignFiles('goods').certFile);
    // As node:tls reports a peer's chain: the leaf, then the CA it was verified against.
    expect(chainTrustedBy([leafOfOther, other], [other])).toBe(true);
    expect(chainTrustedBy([leafOfOther, other], [ca])).toBe(false);
    // A CA named as the CA is, with a key of its own (another `npm run certs` run): its leaf names
    // the CA as its issuer but is not signed by it.
    const twin = certificate(pki.twinFiles('goods').certFile);
    expect(twin.issuer).toBe(ca.subject);
    expect(chainTrustedBy([twin], [ca])).toBe(false);
  });
});

describe('peerChainOf', () => {
  it("walks node:tls's detailed peer certificate to its self-signed root, once", () => {
    const { pki } = testPki;
    const leafRaw = readFileSync(pki.files('goods').certFile);
    const leaf = new X509Certificate(leafRaw);
    const ca = certificate(pki.caFile);
    const root = { raw: ca.raw } as DetailedPeerCertificate;
    (root as { issuerCertificate: DetailedPeerCertificate }).issuerCertificate = root;
    const detailed = { raw: leaf.raw, issuerCertificate: root } as DetailedPeerCertificate;
    const chain = peerChainOf({ getPeerCertificate: () => detailed } as never);
    expect(chain.map((link) => link.fingerprint256)).toEqual([leaf.fingerprint256, ca.fingerprint256]);
  });

  it('is empty when the peer presented no certificate', () => {
    expect(peerChainOf({ getPeerCertificate: () => ({}) } as never)).toEqual([]);
  });
});
