import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { REGISTRY_TOKEN_REFUSALS } from '../../src/common/registry-words.js';
import { tokenRefusalHint } from '../../src/registry-client/token-refusal-hint.js';

describe('tokenRefusalHint', () => {
  it('names the setting to fix for each of the distributor refusals about the token', () => {
    const { UNAUTHENTICATED } = status;
    expect(tokenRefusalHint(UNAUTHENTICATED, REGISTRY_TOKEN_REFUSALS.missing, false)).toBe(
      " — this component has no registry token: set SHOP_REGISTRY_TOKEN to the distributor's",
    );
    expect(tokenRefusalHint(UNAUTHENTICATED, REGISTRY_TOKEN_REFUSALS.wrong, true)).toBe(
      " — this component's SHOP_REGISTRY_TOKEN is not the distributor's: give it the distributor's token",
    );
    // Proven, but the distributor asked for a bearer: an older distributor, not a wrong token.
    expect(tokenRefusalHint(UNAUTHENTICATED, REGISTRY_TOKEN_REFUSALS.missing, true)).toContain(
      'a distributor that asks for it as a bearer is older than this component (upgrade the distributor first)',
    );
  });

  it('says that something relays the connection when the proof names another one', () => {
    expect(tokenRefusalHint(status.UNAUTHENTICATED, REGISTRY_TOKEN_REFUSALS.connection, true)).toContain(
      'something between the two (a TCP proxy, NAT, a port forward',
    );
  });

  it('adds nothing to any other refusal', () => {
    expect(tokenRefusalHint(status.UNAUTHENTICATED, 'a client certificate is required', false)).toBe('');
    expect(tokenRefusalHint(status.PERMISSION_DENIED, REGISTRY_TOKEN_REFUSALS.wrong, true)).toBe('');
    expect(tokenRefusalHint(status.UNAUTHENTICATED, undefined, true)).toBe('');
  });
});
