import { status } from '@grpc/grpc-js';
import { REGISTRY_TOKEN_ENV } from '../common/common-settings.js';

/**
 * A hint to append to a refusal about the registry token; '' for any other. The distributor's
 * words are for any client ("send the registry token as metadata …"); a component's operator needs
 * the setting to fix, and whether this component had a token at all tells which mistake it is.
 */
export function tokenRefusalHint(code: number, details: string | undefined, hasToken: boolean): string {
  if (code !== status.UNAUTHENTICATED || !details?.includes('registry token')) return '';
  return hasToken
    ? ` — this component's ${REGISTRY_TOKEN_ENV} is not the distributor's: give it the distributor's token`
    : ` — this component has no registry token: set ${REGISTRY_TOKEN_ENV} to the distributor's`;
}
