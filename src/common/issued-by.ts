import type { X509Certificate } from 'node:crypto';

/**
 * Whether `issuer` issued `subject`: its name is the subject's issuer (and its key identifier,
 * where the subject names one) and its key signed it. The name alone is not enough: every
 * `npm run certs` run names its CA alike.
 */
export function issuedBy(subject: X509Certificate, issuer: X509Certificate): boolean {
  return subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
}
