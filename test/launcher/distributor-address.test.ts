import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/config.js';
import { derivedDistributorAddress } from '../../src/launcher/distributor-address.js';

describe("the distributor's address the launcher gives the others", () => {
  it.each([
    ['nothing moved: the default stands', {}, undefined],
    ['another port', { DISTRIBUTOR_PORT: '9100' }, '127.0.0.1:9100'],
    ['another address', { DISTRIBUTOR_HOST: '10.0.0.1' }, '10.0.0.1:9000'],
    [
      'every IPv4 interface: dialled on loopback',
      { DISTRIBUTOR_HOST: '0.0.0.0', DISTRIBUTOR_PORT: '9100' },
      '127.0.0.1:9100',
    ],
    ['every IPv6 interface: dialled on loopback', { DISTRIBUTOR_HOST: '::' }, '[::1]:9000'],
    [
      'every IPv6 interface, written long: dialled on loopback',
      { DISTRIBUTOR_HOST: '0:0:0:0:0:0:0:0' },
      '[::1]:9000',
    ],
    [
      'DISTRIBUTOR_ADDRESS given: left as it is',
      { DISTRIBUTOR_PORT: '9100', DISTRIBUTOR_ADDRESS: 'db:1' },
      undefined,
    ],
    ['a bad port: the distributor says so itself', { DISTRIBUTOR_PORT: 'abc' }, undefined],
  ])('%s', (_label, env, expected) => {
    expect(derivedDistributorAddress(env)).toBe(expected);
  });

  it('refuses a link-local host, which the others could not dial, unless DISTRIBUTOR_ADDRESS says where', () => {
    // Its zone id names an interface every Linux machine has: one naming none is the distributor's to refuse.
    expect(() => derivedDistributorAddress({ DISTRIBUTOR_HOST: 'fe80::1%lo' })).toThrow(
      /DISTRIBUTOR_HOST=fe80::1%lo: the other components cannot dial a link-local address/,
    );
    expect(
      derivedDistributorAddress({ DISTRIBUTOR_HOST: 'fe80::1%lo', DISTRIBUTOR_ADDRESS: '[fd00::1]:9000' }),
    ).toBeUndefined();
  });

  it('refuses port 0, which the others could not know', () => {
    expect(() => derivedDistributorAddress({ DISTRIBUTOR_PORT: '0' })).toThrow(ConfigError);
    expect(
      derivedDistributorAddress({ DISTRIBUTOR_PORT: '0', DISTRIBUTOR_ADDRESS: '127.0.0.1:1' }),
    ).toBeUndefined();
  });
});
