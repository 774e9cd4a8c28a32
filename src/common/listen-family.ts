import { BlockList, isIP } from 'node:net';
import { isUnspecifiedHost } from './loopback.js';

const IPV4_MAPPED = new BlockList();
IPV4_MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/** An address's family as a socket bound to it takes connections: an IPv4-mapped one is IPv4. */
function familyOf(address: string): 4 | 6 | undefined {
  const family = isIP(address);
  if (family === 0) return undefined;
  return family === 6 && !IPV4_MAPPED.check(address, 'ipv6') ? 6 : 4;
}

/**
 * The IP family (4 or 6) that a port bound to `listenHost` takes no connections of, when peers are
 * to dial it at `listedHost`; undefined when they can, or when either is a host name (what it
 * resolves to is not known here). Found by probing across IPv6 hosts: a service on `--host 0.0.0.0`
 * (as the README's IPv4 layout has it) registered at its IPv6 address, and every gateway's connect
 * was refused. `::` takes both families (dual stack, the default on Linux and most systems).
 */
export function familyNotListenedOn(listenHost: string, listedHost: string): 4 | 6 | undefined {
  const listened = familyOf(listenHost);
  const listed = familyOf(listedHost);
  if (listened === undefined || listed === undefined || listened === listed) return undefined;
  if (listened === 6 && isUnspecifiedHost(listenHost)) return undefined;
  return listed;
}
