import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { type DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { issuedBy } from './issued-by.js';

/**
 * The certificates of a TLS connection's peer, its own first, then the issuers node:tls knows of
 * (those it sent, and the CA it was verified against): getPeerCertificate(true), as X509Certificate.
 * [] when the peer presented none.
 */
export function peerChainOf(socket: Pick<TLSSocket, 'getPeerCertificate'>): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  // A self-signed root is its own issuerCertificate: the walk ends at the first certificate seen twice.
  let link: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (link?.raw && !seen.has(link)) {
    seen.add(link);
    try {
      chain.push(new X509Certificate(link.raw));
    } catch {
      break;
    }
    link = link.issuerCertificate;
  }
  return chain;
}

/**
 * Whether a peer's chain, verified at its handshake against the CAs of that time, still chains to
 * `authorities` (the CA file as it is now): some certificate of it is one of them, or is signed by
 * one. Node can verify a chain only within a handshake; one already verified needs no more than a
 * link to a CA still trusted. Dates are not looked at: a certificate that expired since its
 * handshake is a renewal's business, not a withdrawal of trust.
 */
export function chainTrustedBy(
  chain: readonly X509Certificate[],
  authorities: readonly X509Certificate[],
): boolean {
  return chain.some((certificate) =>
    authorities.some(
      (authority) => certificate.raw.equals(authority.raw) || issuedBy(certificate, authority),
    ),
  );
}

/**
 * Whether the server of a connection made before the CA file changed still chains to `authorities`
 * (see chainTrustedBy). A connection without TLS, or whose server showed no certificate, was
 * trusted for no CA: it is left alone.
 */
export function serverStillTrusted(connection: Socket, authorities: readonly X509Certificate[]): boolean {
  if (!(connection instanceof TLSSocket)) return true;
  const chain = peerChainOf(connection);
  return chain.length === 0 || chainTrustedBy(chain, authorities);
}
