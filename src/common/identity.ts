/**
 * Who a component is, in a certificate: a URI SAN `spiffe://shop/<name>`, where `<name>` is the
 * name it registers under ("distributor", "gateway", "goods", ...). The distributor requires it of
 * a registering node's client certificate, and the gateway of a service's server certificate
 * (secure naming), so that a certificate issued for one component cannot speak for another.
 */
export const TRUST_DOMAIN = 'shop';

/**
 * The name of people's tools (grpcurl, scripts): `npm run certs` issues it a certificate that every
 * mTLS server accepts, so no node may register under it. The same as OPERATOR in scripts/certs.mjs.
 */
export const OPERATOR_NAME = 'operator';

/** The URI SAN a component named `name` carries. */
export function identityForName(name: string): string {
  return `spiffe://${TRUST_DOMAIN}/${name}`;
}

/**
 * The URI SANs of a certificate, from Node's `subjectaltname` string
 * (`"DNS:localhost, URI:spiffe://shop/goods, IP Address:127.0.0.1"`).
 */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice('URI:'.length));
}
