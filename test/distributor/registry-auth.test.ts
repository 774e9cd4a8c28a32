import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { ServiceError } from '../../src/common/service-error.js';
import {
  createRegistryAuth,
  type RegistryAuthOptions,
  type ServerSurfaceCall,
} from '../../src/distributor/registry-auth.js';

/** A call as far as authentication looks at it: metadata, and identities read by the fake below. */
function callWith(headers: Record<string, string | string[]>, identities: string[] = []): ServerSurfaceCall {
  const metadata = new Metadata();
  for (const [key, values] of Object.entries(headers)) {
    for (const value of [values].flat()) metadata.add(key, value);
  }
  return { metadata, identities } as unknown as ServerSurfaceCall;
}

const fakeIdentities = (call: ServerSurfaceCall) => (call as unknown as { identities: string[] }).identities;

function refusal(options: RegistryAuthOptions, call: ServerSurfaceCall): ServiceError {
  try {
    createRegistryAuth(options).authenticate(call);
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error('the call was authenticated');
}

describe('createRegistryAuth', () => {
  const token = 'c2VjcmV0LXRva2Vu';

  it('lets everyone in as anonymous when there is no token and no certificate check', () => {
    const auth = createRegistryAuth();
    const caller = auth.authenticate(callWith({ authorization: 'Bearer whatever' }));
    expect(auth.principalFor(caller, 'goods', '10.0.0.1')).toBe('anonymous@10.0.0.1');
  });

  it('takes the right token, with the scheme in any case, as the principal "token" at the peer address', () => {
    const auth = createRegistryAuth({ token });
    for (const header of [`Bearer ${token}`, `bearer ${token}`, `BEARER  ${token}`]) {
      const caller = auth.authenticate(callWith({ authorization: header }));
      expect(auth.principalFor(caller, 'goods', '10.0.0.1')).toBe('token@10.0.0.1');
      expect(auth.principalFor(caller, 'goods', '10.0.0.2')).not.toBe(
        auth.principalFor(caller, 'goods', '10.0.0.1'),
      );
    }
  });

  it.each([
    ['no authorization', {}, 'missing credentials'],
    ['a wrong token', { authorization: 'Bearer wrong' }, 'invalid credentials: the registry token is wrong'],
    ['a token with a suffix', { authorization: `Bearer ${token}x` }, 'invalid credentials'],
    ['a prefix of the token', { authorization: `Bearer ${token.slice(0, -1)}` }, 'invalid credentials'],
    ['another scheme', { authorization: `Basic ${token}` }, 'invalid credentials'],
    ['the bare token', { authorization: token }, 'invalid credentials'],
    ['the token twice', { authorization: [`Bearer ${token}`, `Bearer ${token}`] }, 'invalid credentials'],
  ])('refuses %s with UNAUTHENTICATED', (_label, headers, message) => {
    const error = refusal({ token }, callWith(headers));
    expect(error.code).toBe(status.UNAUTHENTICATED);
    expect(error.message).toContain(message);
    expect(error.message).not.toContain(token);
  });

  it('refuses to be built with an empty token or one with spaces', () => {
    expect(() => createRegistryAuth({ token: '' })).toThrow('expected a non-empty string without spaces');
    expect(() => createRegistryAuth({ token: 'a b' })).toThrow('expected a non-empty string without spaces');
  });

  it('with certificates required, needs an identity, and the one of the name registered', () => {
    const auth = createRegistryAuth({ peerIdentities: fakeIdentities, requireCertificateIdentity: true });
    expect(
      refusal({ peerIdentities: fakeIdentities, requireCertificateIdentity: true }, callWith({})).code,
    ).toBe(status.UNAUTHENTICATED);
    const members = auth.authenticate(callWith({}, ['spiffe://shop/members']));
    expect(auth.principalFor(members, 'members', '10.0.0.1')).toBe('spiffe://shop/members');
    expect(() => auth.principalFor(members, 'goods', '10.0.0.1')).toThrow(
      'certificate identity spiffe://shop/members does not match the name goods',
    );
    try {
      auth.principalFor(members, 'goods', '10.0.0.1');
    } catch (error) {
      expect((error as ServiceError).code).toBe(status.PERMISSION_DENIED);
    }
    const both = auth.authenticate(callWith({}, ['spiffe://shop/members', 'spiffe://shop/goods']));
    expect(auth.principalFor(both, 'goods', '10.0.0.1')).toBe('spiffe://shop/goods');
  });

  it('names the principal by the certificate when there is one, even without the check', () => {
    const auth = createRegistryAuth({ token, peerIdentities: fakeIdentities });
    const caller = auth.authenticate(
      callWith({ authorization: `Bearer ${token}` }, ['spiffe://shop/b', 'spiffe://shop/a']),
    );
    expect(auth.principalFor(caller, 'goods', '10.0.0.1')).toBe('spiffe://shop/a spiffe://shop/b');
    expect(auth.principalFor(caller, 'b', '10.0.0.1')).toBe('spiffe://shop/b');
  });
});
