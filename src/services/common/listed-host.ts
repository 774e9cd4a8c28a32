import { isIP } from 'node:net';
import {
  type HostLookup,
  lookupAll,
  lookupWithin,
  START_LOOKUP_TIMEOUT_MS,
} from '../../common/host-lookup.js';
import {
  dialsThisMachine,
  isLinkLocalHost,
  isLoopbackHost,
  isUnspecifiedHost,
} from '../../common/loopback.js';

/**
 * The host a service registers when --advertise-host is not given: the address it listens on when
 * that is one IP address others can dial, else '' (the distributor lists the address it sees the
 * service call from). Found by probing a host with two IPv6 addresses: a service on `--host
 * fd12:212::2` called the distributor from fd12:212::12, the source the system picked, and was
 * listed there, where nothing listened; so would one on a second IPv4 address. Loopback counts only
 * with the distributor on this machine too (else the service warns, unreachable-address); the
 * any-address, a link-local address and a host name do not (the distributor refuses the first two;
 * {@link listedHostOfName} takes a name's bound addresses).
 */
export function listedHostOf(listenHost: string, distributorOnThisMachine: boolean): string {
  if (isIP(listenHost) === 0 || isUnspecifiedHost(listenHost) || isLinkLocalHost(listenHost)) return '';
  if (isLoopbackHost(listenHost) && !distributorOnThisMachine) return '';
  // A zone id on any other address (fd00::2%eth0, which --host takes and the system binds as
  // fd00::2) means nothing to other machines, and the distributor refuses a host with one: listed
  // with it, the service that registered at the address it called from stopped, refused (exit 3).
  return listenHost.split('%', 1)[0]!;
}

/**
 * listedHostOf for any --host: a host name is taken as the first of the addresses the server bound
 * for it (grpc-js binds, in the order the name resolves, those it can) that listedHostOf would list.
 * Found probing hosts named by DNS: a service on `--host svc.shop.test` (10.216.0.12, its host's
 * second address) was listed at 10.216.0.2, the source address of its call to the distributor,
 * where nothing listened. The bound addresses, not the name's first address this machine holds:
 * with a name resolving to two of its addresses and the port taken on the first by another
 * process, grpc-js bound the second alone while the service was listed at the first, where that
 * other process answered. Not the name itself: it may resolve on this machine only (its own name
 * in /etc/hosts). None listable gives '' (the address the distributor sees it call from).
 */
export function listedHostOfName(
  listenHost: string,
  distributorOnThisMachine: boolean,
  boundAddresses: readonly string[],
): string {
  if (isIP(listenHost) !== 0) return listedHostOf(listenHost, distributorOnThisMachine);
  for (const address of boundAddresses) {
    const listed = listedHostOf(address, distributorOnThisMachine);
    if (listed) return listed;
  }
  return '';
}

/**
 * Whether a host to dial is this machine: dialsThisMachine, and a host name that resolves here to
 * loopback addresses alone (a machine's own name in its /etc/hosts, `shop.test` given 127.0.0.1).
 * Found probing a distributor named so: a service on 127.0.0.1 warned that the distributor was not
 * on loopback and would list it where nothing listens, while it was listed and reached there. A
 * name that does not resolve (within START_LOOKUP_TIMEOUT_MS) counts as another machine's.
 */
export async function dialsThisMachineByName(
  host: string,
  resolve: HostLookup = lookupAll,
  timeoutMs = START_LOOKUP_TIMEOUT_MS,
): Promise<boolean> {
  if (isIP(host) !== 0 || dialsThisMachine(host)) return dialsThisMachine(host);
  try {
    const addresses = await lookupWithin(resolve, host, timeoutMs);
    return addresses.length > 0 && addresses.every(dialsThisMachine);
  } catch {
    return false;
  }
}
