import { isIP } from 'node:net';
import { isLinkLocalHost, isLoopbackHost, isUnspecifiedHost } from '../../common/loopback.js';

/**
 * The host a service registers when --advertise-host is not given: the address it listens on when
 * that is one IP address others can dial, else '' (the distributor lists the address it sees the
 * service call from). Found by probing a host with two IPv6 addresses: a service on `--host
 * fd12:212::2` called the distributor from fd12:212::12, the source the system picked, and was
 * listed there, where nothing listened; so would one on a second IPv4 address. Loopback counts only
 * with the distributor on this machine too (else the service warns, unreachable-address); the
 * any-address, a link-local address and a host name do not (the distributor refuses the first two;
 * what a name resolves to is the name's business).
 */
export function listedHostOf(listenHost: string, distributorOnThisMachine: boolean): string {
  if (isIP(listenHost) === 0 || isUnspecifiedHost(listenHost) || isLinkLocalHost(listenHost)) return '';
  if (isLoopbackHost(listenHost) && !distributorOnThisMachine) return '';
  // A zone id on any other address (fd00::2%eth0, which --host takes and the system binds as
  // fd00::2) means nothing to other machines, and the distributor refuses a host with one: listed
  // with it, the service that registered at the address it called from stopped, refused (exit 3).
  return listenHost.split('%', 1)[0]!;
}
