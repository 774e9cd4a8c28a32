import { describe, expect, it } from 'vitest';
import { dialsThisMachine, isLoopbackHost } from '../../src/common/loopback.js';

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
