import { describe, expect, it } from 'vitest';
import {
  dialsThisMachine,
  hostNameKey,
  isLoopbackHost,
  loopbackIfUnspecified,
  sameIpAddress,
} from '../../src/common/loopback.js';

describe('loopback, however it is written', () => {
  it.each([
    '127.0.0.1',
    '127.255.0.9',
    '::1',
    '0:0:0:0:0:0:0:1',
    '0000::0001',
    '::ffff:127.0.0.1',
    '::FFFF:7f00:1',
    'localhost',
    'LocalHost',
    'localhost.',
    'shop.localhost',
  ])('%s is loopback: no other machine reaches it', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
    expect(dialsThisMachine(host)).toBe(true);
  });

  it.each(['0.0.0.0', '::', '0:0:0:0:0:0:0:0', '::ffff:0.0.0.0'])(
    '%s listens everywhere, and dialled it reaches this machine',
    (host) => {
      expect(isLoopbackHost(host)).toBe(false);
      expect(dialsThisMachine(host)).toBe(true);
    },
  );

  // ::1 does not reach a server on ::ffff:0.0.0.0 (it takes IPv4 alone): the launcher, asking a
  // gateway listening there at ::1, never heard that the shop was ready.
  it.each([
    ['0.0.0.0', '127.0.0.1'],
    ['::ffff:0.0.0.0', '127.0.0.1'],
    ['::ffff:0:0', '127.0.0.1'],
    ['::', '::1'],
    ['0:0:0:0:0:0:0:0', '::1'],
    ['10.0.0.1', '10.0.0.1'],
    ['fe80::1%eth0', 'fe80::1%eth0'],
    ['shop.test', 'shop.test'],
  ])('a server listening on %s is dialled on this machine at %s', (host, dialled) => {
    expect(loopbackIfUnspecified(host)).toBe(dialled);
  });

  it.each([
    '10.0.0.1',
    '192.0.2.1',
    '::2',
    'fe80::1',
    '::ffff:10.0.0.1',
    'localhost.example',
    'mylocalhost',
    'shop',
  ])('%s is another machine, or may be', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
    expect(dialsThisMachine(host)).toBe(false);
  });
});

describe('one address in two spellings', () => {
  it.each([
    ['::1', '0:0:0:0:0:0:0:1', true],
    ['10.0.0.1', '::ffff:10.0.0.1', true],
    ['10.0.0.1', '10.0.0.2', false],
    ['shop', 'shop', true],
    ['shop', '10.0.0.1', false],
  ])('%s and %s: %s', (one, other, same) => {
    expect(sameIpAddress(one, other)).toBe(same);
    expect(sameIpAddress(other, one)).toBe(same);
  });

  it('a host name is compared as DNS does: any case, trailing dot or not', () => {
    expect(hostNameKey('Shop.Example.')).toBe('shop.example');
  });
});
