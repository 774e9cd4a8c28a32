import { describe, expect, it } from 'vitest';
import { familyNotListenedOn } from '../../src/common/listen-family.js';

describe('the IP family a listening address takes no connections of', () => {
  it.each([
    ['0.0.0.0', 'fd12:212::2', 6],
    ['0.0.0.0', '2001:DB8::7', 6],
    ['192.0.2.7', 'fd12:212::2', 6],
    ['::ffff:0.0.0.0', 'fd12:212::2', 6],
    ['fd12:212::2', '192.0.2.7', 4],
    ['fd12:212::2', '::ffff:192.0.2.7', 4],
    ['fd12:212::2', '::FFFF:c000:207', 4],
  ] as const)('%s is not dialled at %s (IPv%i)', (listenHost, listedHost, family) => {
    expect(familyNotListenedOn(listenHost, listedHost)).toBe(family);
  });

  it.each([
    ['::', 'fd12:212::2'],
    ['::', '192.0.2.7'],
    ['0:0:0:0:0:0:0:0', '192.0.2.7'],
    ['0.0.0.0', '192.0.2.7'],
    ['0.0.0.0', '::ffff:192.0.2.7'],
    ['fd12:212::2', 'fd12:212::3'],
    ['0.0.0.0', 'goods.example'],
    ['shop.example', 'fd12:212::2'],
  ])('%s may be dialled at %s', (listenHost, listedHost) => {
    expect(familyNotListenedOn(listenHost, listedHost)).toBeUndefined();
  });
});
