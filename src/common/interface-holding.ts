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

/** One spelling of an IPv6 address however it was written (fe80:0:0::1 and FE80::1 alike). */
function canonical(address: string): string {
  try {
    return new URL(`http://[${address}]/`).hostname;
  } catch {
    return address.toLowerCase();
  }
}
