import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { unmappedAddress } from '../common/address-group.js';
import { ConfigError } from '../common/config.js';

// The status page (/status, /status.json) shows the registry as the gateway sees it: every node,
// with its address. The distributor keeps that list from whoever lacks the token or a certificate;
// served to every client of the REST port (0.0.0.0 by default), the page handed it to anyone who
// could reach the shop. So it answers clients on this machine (loopback, or one of this machine's
// own addresses: the launcher asks there whether the shop is ready), and the networks an operator
// lists; any other client is answered 403.

/** `--status-clients`: "any", or the addresses and networks answered besides this machine's. */
export type StatusClientsSetting = 'any' | readonly string[];

/** Parses `--status-clients`: `local` (or empty), `*`/`any`, or IP addresses and CIDR networks, comma-separated. */
export function parseStatusClients(value: string, source: string): StatusClientsSetting {
  const entries = value
    .split(',')
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry.length > 0 && entry !== 'local');
  if (entries.includes('*') || entries.includes('any')) {
    if (entries.length > 1) throw new ConfigError(`${source}: "${value}": * (any client) goes alone`);
    return 'any';
  }
  for (const entry of entries) networkOf(entry, source);
  return Object.freeze(entries);
}

/** Which clients the status page answers (see the comment above). */
export class StatusClients {
  readonly #any: boolean;
  readonly #listed = new BlockList();
  readonly #ownAddresses: () => readonly string[];

  constructor(setting: StatusClientsSetting = [], ownAddresses: () => readonly string[] = machineAddresses) {
    this.#any = setting === 'any';
    if (setting !== 'any') {
      for (const entry of setting) {
        const { address, prefix, family } = networkOf(entry, 'status clients');
        this.#listed.addSubnet(address, prefix, family);
      }
    }
    this.#ownAddresses = ownAddresses;
  }

  /** Whether a client at `remoteAddress` (as its socket tells it) may read the status page. */
  allows(remoteAddress: string | undefined): boolean {
    if (this.#any) return true;
    if (remoteAddress === undefined) return false;
    const address = unmappedAddress(remoteAddress);
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (LOOPBACK.check(address, family) || this.#listed.check(address, family)) return true;
    // Read at each request: a page for operators, and the machine's addresses may change (DHCP).
    // A link-local address is compared with its zone, as the socket names it: the same address on
    // another link is another host's (one there may take the address of this machine's other link).
    return this.#ownAddresses().some((own) => unmappedAddress(own) === address);
  }
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * This machine's addresses as a client's socket names them: a scoped (link-local) one with its
 * zone, by the interface's name and by its index (Node gives the name when it can resolve it).
 */
export function machineAddresses(
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string[] {
  return Object.entries(interfaces).flatMap(([name, infos]) =>
    (infos ?? []).flatMap((info) =>
      info.family === 'IPv6' && info.scopeid !== undefined && info.scopeid !== 0
        ? [`${info.address}%${name}`, `${info.address}%${info.scopeid}`]
        : [info.address],
    ),
  );
}

/** An IP address (a network of one) or a CIDR network, as BlockList takes it; else a ConfigError. */
function networkOf(
  entry: string,
  source: string,
): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address = '', prefixText, extra] = entry.split('/');
  const version = isIP(address);
  const bits = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (
    version === 0 ||
    // A zone (fe80::1%eth0) would be taken and dropped: the entry would answer that address on every link.
    address.includes('%') ||
    extra !== undefined ||
    !/^\d{1,3}$/.test(prefixText ?? String(bits)) ||
    !Number.isInteger(prefix) ||
    prefix > bits
  ) {
    throw new ConfigError(
      `${source}: expected local, * (any client), or IP addresses and networks such as 10.0.0.5 or 10.0.0.0/8, comma-separated, got "${entry}"`,
    );
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}
