import { status } from '@grpc/grpc-js';
import { REGISTRY_TOKEN_ENV } from '../common/common-settings.js';
import { CALLER_PROOF_HEADER } from '../common/registry-proof.js';
import { REGISTRY_TOKEN_REFUSALS } from '../common/registry-words.js';

/**
 * A hint to append to a refusal about the registry token; '' for any other. The distributor's
 * words are for any client ("send the registry token as metadata …"); a component's operator needs
 * the setting to fix, and whether this component sent a token tells which mistake it is.
 */
export function tokenRefusalHint(code: number, details: string | undefined, hasToken: boolean): string {
  if (code !== status.UNAUTHENTICATED || details === undefined) return '';
  if (details.startsWith(REGISTRY_TOKEN_REFUSALS.wrong)) {
    return ` — this component's ${REGISTRY_TOKEN_ENV} is not the distributor's: give it the distributor's token`;
  }
  if (details.startsWith(REGISTRY_TOKEN_REFUSALS.connection)) {
    return " — the distributor sees this component come from another address or port than its own: something between the two (a TCP proxy, NAT, a port forward, or a process holding the distributor's address) relays the connection; the token needs a direct one, mutual TLS works through any";
  }
  if (!details.startsWith(REGISTRY_TOKEN_REFUSALS.missing)) return '';
  return hasToken
    ? ` — this component proves its ${REGISTRY_TOKEN_ENV} (metadata ${CALLER_PROOF_HEADER}) and never sends the token itself; a distributor that asks for it as a bearer is older than this component (upgrade the distributor first), or something between the two drops the metadata`
    : ` — this component has no registry token: set ${REGISTRY_TOKEN_ENV} to the distributor's`;
}

/**
 * Whether a refusal asks a component that holds a token for the token itself, as a bearer: the
 * words of a distributor older than the proofs (or of one whose caller's metadata something
 * dropped). Upgrading that distributor clears it, as the README has operators do first, so the
 * component retries rather than stopping for good: one upgraded before its distributor, over TLS
 * too, then registers once the distributor is, without a restart.
 */
export function asksForTheBearer(code: number, details: string | undefined, hasToken: boolean): boolean {
  return (
    hasToken &&
    code === status.UNAUTHENTICATED &&
    details?.startsWith(REGISTRY_TOKEN_REFUSALS.missing) === true
  );
}
