import { describe, expect, it } from 'vitest';
import { addressGroupOf } from '../../src/common/address-group.js';
import { AddressShares } from '../../src/common/address-shares.js';

describe('addressGroupOf', () => {
  it.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['::FFFF:192.0.2.7', '192.0.2.7'],
    ['2001:db8:0:1:aaaa::1', '2001:db8:0:1::/64'],
    ['2001:db8:0:1:bbbb:cccc:dddd:eeee', '2001:db8:0:1::/64'],
    ['2001:DB8:0000:0001::1', '2001:db8:0:1::/64'],
    ['2001:db8::1', '2001:db8::/64'],
    ['2001:db8:1:2:3:4:5::', '2001:db8:1:2::/64'],
    ['::1', '::/64'],
    ['::', '::/64'],
    ['fe80::1%eth0', 'fe80::/64'],
    ['fd63:163::2', 'fd63:163::/64'],
    ['fd63:0:0:1::2', 'fd63:0:0:1::/64'],
    ['0:0:5:0::1', '0:0:5::/64'],
    ['2002:c000::1', '2002:c000::/48'],
    ['64:ff9b::192.0.2.1', '192.0.2.1'],
    ['64:ff9b::c000:201', '192.0.2.1'],
    ['0:0:0:0:0:ffff:192.0.2.7', '192.0.2.7'],
    ['::ffff:c000:207', '192.0.2.7'],
    ['::192.0.2.7', '192.0.2.7'],
    ['2002:c000:207::1', '2002:c000:207::/48'],
    ['2002:c000:207:5::1', '2002:c000:207::/48'],
    ['1:2:3::4.5.6.7', '1:2:3::/64'],
    ['1:2:3:4:5:6:7.8.9.10', '1:2:3:4::/64'],
    ['', ''],
    ['not an address', 'not an address'],
  ])('%s is in group %s', (address, group) => {
    expect(addressGroupOf(address)).toBe(group);
  });
});

describe('AddressShares', () => {
  it('knows the group holding the most as members come and go, and the oldest member of each', () => {
    const shares = new AddressShares<string>();
    expect(shares.largest()).toBeUndefined();
    shares.add('a', 'a1');
    shares.add('a', 'a2');
    shares.add('a', 'a2');
    shares.add('b', 'b1');
    expect(shares.largest()).toEqual({ group: 'a', held: 2 });
    expect(shares.heldBy('a')).toBe(2);
    expect(shares.heldBy('c')).toBe(0);
    expect(shares.oldestOf('a')).toBe('a1');
    expect(shares.newestOf('a')).toBe('a2');
    shares.add('b', 'b2');
    shares.add('b', 'b3');
    expect(shares.largest()).toEqual({ group: 'b', held: 3 });
    shares.delete('b', 'b1');
    shares.delete('b', 'b1');
    expect(shares.oldestOf('b')).toBe('b2');
    expect(shares.largest()?.held).toBe(2);
    shares.delete('b', 'b2');
    expect(shares.largest()).toEqual({ group: 'a', held: 2 });
    shares.delete('a', 'a1');
    shares.delete('a', 'a2');
    expect(shares.largest()).toEqual({ group: 'b', held: 1 });
    shares.delete('b', 'b3');
    expect(shares.largest()).toBeUndefined();
    expect(shares.oldestOf('a')).toBeUndefined();
    expect(shares.newestOf('b')).toBeUndefined();
  });

  it('holds a member in one group: adding it again, or deleting it from another, changes nothing', () => {
    const shares = new AddressShares<string>();
    shares.add('a', 'm');
    shares.add('b', 'm');
    shares.delete('b', 'm');
    expect(shares.heldBy('a')).toBe(1);
    expect(shares.heldBy('b')).toBe(0);
    expect(shares.largest()).toEqual({ group: 'a', held: 1 });
  });

  it('agrees with a count made by hand over random adds and deletes', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const shares = new AddressShares<string>();
    const model = new Map<string, string[]>();
    for (let step = 0; step < 5_000; step++) {
      const group = `g${random(6)}`;
      const member = `${group}#${random(12)}`;
      const members = model.get(group) ?? [];
      if (random(2) === 0) {
        shares.add(group, member);
        if (!members.includes(member)) members.push(member);
      } else {
        shares.delete(group, member);
        const at = members.indexOf(member);
        if (at >= 0) members.splice(at, 1);
      }
      model.set(group, members);
      const most = Math.max(0, ...[...model.values()].map((held) => held.length));
      const largest = shares.largest();
      expect(largest?.held ?? 0).toBe(most);
      if (largest) expect(model.get(largest.group)?.length).toBe(most);
      expect(shares.heldBy(group)).toBe(members.length);
      expect(shares.oldestOf(group)).toBe(members[0]);
      expect(shares.newestOf(group)).toBe(members.at(-1));
    }
  });
});
