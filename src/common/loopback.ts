import { BlockList, isIP } from 'node:net';

/** Loopback in every spelling an address may take: 127/8, ::1, and 127/8 mapped into IPv6. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** The any-address, which a dial takes for this machine: 0.0.0.0 and :: however written. */
const UNSPECIFIED = new BlockList();
UNSPECIFIED.addAddress('0.0.0.0', 'ipv4');
UNSPECIFIED.addAddress('::', 'ipv6');
UNSPECIFIED.addAddress('::ffff:0.0.0.0', 'ipv6');

function inList(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Whether a host to listen on is this machine's loopback, which no other machine reaches: an
 * address of 127/8 or ::1 however written (0:0:0:0:0:0:0:1, ::ffff:127.0.0.1), or `localhost` and
 * its subdomains (RFC 6761), in any case, with or without the trailing dot.
 */
export function isLoopbackHost(host: string): boolean {
  if (isIP(host) !== 0) return inList(LOOPBACK, host);
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

/** Whether a host to listen on is the any-address (every interface), however written. */
export function isUnspecifiedHost(host: string): boolean {
  return inList(UNSPECIFIED, host);
}

/** Whether a host to dial is this machine: its loopback, or the any-address, which dials it too. */
export function dialsThisMachine(host: string): boolean {
  return isLoopbackHost(host) || isUnspecifiedHost(host);
}
