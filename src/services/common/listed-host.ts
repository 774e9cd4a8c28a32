import { isIP } from 'node:net';
import { parseHostPort } from '../../common/config.js';
import {
  type HostLookup,
  lookupAll,
  lookupWithin,
  START_LOOKUP_TIMEOUT_MS,
} from '../../common/host-lookup.js';
import { familyNotListenedOn } from '../../common/listen-family.js';
import type { Logger } from '../../common/logger.js';
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

/** What {@link registeredHostOf} decides from. */
export interface ListingOptions {
  /** --host. */
  readonly host: string;
  /** --advertise-host ('' for none). */
  readonly advertiseHost: string;
  /** --distributor, host:port. */
  readonly distributor: string;
  /** The addresses the service's gRPC server bound, in grpc-js's order. */
  readonly boundAddresses: readonly string[];
  readonly log: Logger;
}

/**
 * The host a service registers (see listedHostOfName; '' for the address the distributor sees it
 * call from), with a warning at start, `unreachable-address`, when the distributor would list it
 * where others cannot reach it: listening on a link-local address alone, on loopback with the
 * distributor elsewhere, at a loopback --advertise-host, or at an address of a family it does not
 * listen on.
 */
export async function registeredHostOf({
  host,
  advertiseHost,
  distributor,
  boundAddresses,
  log,
}: ListingOptions): Promise<string> {
  const distributorHost = parseHostPort(distributor, 'the distributor').host;
  const distributorRemote = !(await dialsThisMachineByName(distributorHost));
  // Without --advertise-host, the one address it listens on (see listedHostOfName), else the address
  // the distributor sees it call from, of the family of the distributor's own address.
  const registeredHost = advertiseHost || listedHostOfName(host, !distributorRemote, boundAddresses);
  const listedHost = registeredHost || distributorHost;
  // A distributor on this machine too: one dialled at [::1] sees a service on 0.0.0.0 call from ::1,
  // and lists it there, where the gateways beside it are refused.
  const missedFamily = familyNotListenedOn(host, listedHost);
  // A name bound on loopback alone is loopback too: a machine's own name in a Debian /etc/hosts
  // (127.0.1.1), given as --host, was listed at the address it called from without a word.
  const onLoopback =
    isLoopbackHost(host) || (boundAddresses.length > 0 && boundAddresses.every(isLoopbackHost));
  // Found running a service on `SERVICE_HOST=fe80::1%eth0`: listed at the address it called the
  // distributor from, where nothing listens, it warned of IPv4 connections (a distributor on
  // 127.0.0.1), or of nothing (one on IPv6); no address would do, grpc-js dialling no zone id.
  const onLinkLocal =
    isLinkLocalHost(host) || (boundAddresses.length > 0 && boundAddresses.every(isLinkLocalHost));
  if (onLinkLocal) {
    const listed = advertiseHost
      ? `at ${advertiseHost} (--advertise-host)`
      : 'at the address it sees it call from';
    log.warn(
      {
        event: 'unreachable-address',
        host,
        ...(advertiseHost ? { advertiseHost } : {}),
        distributor,
      },
      `listening on ${host} only, a link-local address, which no gateway reaches: gRPC here dials no zone id, and the distributor lists this service ${listed}, where nothing listens; ` +
        'set --host (SERVICE_HOST) to another address of this machine, or :: (every one)',
    );
  } else if (distributorRemote && onLoopback) {
    const listed = advertiseHost
      ? `at ${advertiseHost} (--advertise-host), where nothing listens`
      : 'at the address it sees it call from, where nothing listens';
    log.warn(
      { event: 'unreachable-address', host: host, distributor: distributor },
      `listening on ${host} only, while the distributor at ${distributor} is not on loopback: it lists ` +
        `this service ${listed}; set --host (SERVICE_HOST) to an address others reach (0.0.0.0: all)` +
        (advertiseHost ? '' : ', or --advertise-host'),
    );
  } else if (distributorRemote && advertiseHost && isLoopbackHost(advertiseHost)) {
    // Listed at loopback, the service is dialled by every gateway at its own machine.
    log.warn(
      {
        event: 'unreachable-address',
        host: host,
        advertiseHost: advertiseHost,
        distributor: distributor,
      },
      `--advertise-host (ADVERTISE_HOST) ${advertiseHost} is loopback, while the distributor at ${distributor} ` +
        'is not: others dial it as their own machine and never reach this service; give an address of this machine ' +
        'they reach, or leave it unset',
    );
  } else if (missedFamily !== undefined) {
    const listed = advertiseHost
      ? `at ${advertiseHost} (--advertise-host)`
      : `at its IPv${missedFamily} address, the one it calls the distributor at ${distributor} from,`;
    log.warn(
      {
        event: 'unreachable-address',
        host: host,
        ...(advertiseHost ? { advertiseHost: advertiseHost } : {}),
        distributor: distributor,
      },
      `listening on ${host}, which takes no IPv${missedFamily} connections, while the distributor lists this service ${listed} ` +
        `where nothing listens: set --host (SERVICE_HOST) to ${missedFamily === 6 ? ':: (every address, IPv6 and IPv4)' : '0.0.0.0 or ::'} ` +
        `or an IPv${missedFamily} address of this machine` +
        (advertiseHost ? `, or --advertise-host to an IPv${missedFamily === 6 ? 4 : 6} one` : ''),
    );
  }
  return registeredHost;
}
