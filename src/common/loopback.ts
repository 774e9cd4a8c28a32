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

/** IPv6 link-local addresses, which a connect reaches only on the interface a zone id names. */
const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');

function familyOf(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

function inList(list: BlockList, address: string): boolean {
  return isIP(address) !== 0 && list.check(address, familyOf(address));
}

/** A host name as DNS compares it: in any case, with or without the trailing dot. */
export function hostNameKey(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

/**
 * Whether two IP addresses are one, however written (::1 and 0:0:0:0:0:0:0:1, an IPv4 address and
 * its IPv6-mapped form); anything that is not an IP address is compared as it is.
 */
export function sameIpAddress(one: string, other: string): boolean {
  if (isIP(one) === 0 || isIP(other) === 0) return one === other;
  const list = new BlockList();
  list.addAddress(one, familyOf(one));
  return inList(list, other);
}

/**
 * Whether a host to listen on is this machine's loopback, which no other machine reaches: an
 * address of 127/8 or ::1 however written (0:0:0:0:0:0:0:1, ::ffff:127.0.0.1), or `localhost` and
 * its subdomains (RFC 6761), in any case, with or without the trailing dot.
 */
export function isLoopbackHost(host: string): boolean {
  if (isIP(host) !== 0) return inList(LOOPBACK, host);
  const name = hostNameKey(host);
  return name === 'localhost' || name.endsWith('.localhost');
}

/** Whether a host to listen on is the any-address (every interface), however written. */
export function isUnspecifiedHost(host: string): boolean {
  return inList(UNSPECIFIED, host);
}

/** The IPv4 any-address mapped into IPv6: a server listening there takes IPv4 connections alone. */
const MAPPED_UNSPECIFIED = new BlockList();
MAPPED_UNSPECIFIED.addAddress('::ffff:0.0.0.0', 'ipv6');

/**
 * Where to dial, on this machine, a server listening on `host`: its loopback when `host` is the
 * any-address (127.0.0.1 for 0.0.0.0, and for ::ffff:0.0.0.0, which ::1 does not reach; ::1 for
 * ::), however written; `host` itself otherwise.
 */
export function loopbackIfUnspecified(host: string): string {
  if (!isUnspecifiedHost(host)) return host;
  return isIP(host) === 4 || inList(MAPPED_UNSPECIFIED, host) ? '127.0.0.1' : '::1';
}

/** Whether a host to dial is this machine: its loopback, or the any-address, which dials it too. */
export function dialsThisMachine(host: string): boolean {
  return isLoopbackHost(host) || isUnspecifiedHost(host);
}

/**
 * Whether a host is an IPv6 link-local address (fe80::/10), with a zone id (fe80::1%eth0) or
 * without: other machines cannot dial it as written (without a zone id the system refuses the
 * connect, EINVAL), nor can grpc-js with one (its target becomes a URL, which takes no zone id).
 */
export function isLinkLocalHost(host: string): boolean {
  const unzoned = host.split('%', 1)[0]!;
  return isIP(unzoned) === 6 && LINK_LOCAL.check(unzoned, 'ipv6');
}
