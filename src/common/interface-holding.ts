import { readdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

/**
 * The interface of this machine that holds the IPv6 address `address` (written without a zone id),
 * by the name a zone id gives it (`eth0` in fe80::1%eth0); undefined when none holds it.
 */
export function interfaceHolding(address: string): string | undefined {
  const wanted = canonical(address);
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (addresses?.some((held) => held.address.includes(':') && canonical(held.address) === wanted)) {
      return name;
    }
  }
  return undefined;
}

/**
 * The names of this machine's network interfaces: those that hold an address, and on Linux every
 * one (/sys/class/net), since one without an address yet (down, or a VPN's not up) is still a name
 * a zone id can give; binding there fails with EADDRNOTAVAIL, a reason that may pass.
 */
export function interfaceNames(): string[] {
  const names = new Set(Object.keys(networkInterfaces()));
  try {
    for (const name of readdirSync('/sys/class/net')) names.add(name);
  } catch {
    // Not Linux (or no /sys): the interfaces holding an address are all that can be known.
  }
  return [...names].sort();
}

/** One spelling of an IPv6 address however it was written (fe80:0:0::1 and FE80::1 alike). */
function canonical(address: string): string {
  try {
    return new URL(`http://[${address}]/`).hostname;
  } catch {
    return address.toLowerCase();
  }
}
