import { isIPv4, isIPv6 } from 'node:net';

/**
 * The group a peer's address belongs to when what one client holds is shared out: an IPv4 address
 * is its own group (written as IPv4 also when it came mapped into IPv6, "::ffff:192.0.2.7"), an
 * IPv6 address is grouped by its /64, the least a site is given, within which one client can pick a
 * new address for every connection ("2001:db8:0:1::/64"). Anything else (a Unix socket's empty
 * address) is returned as it came.
 */
export function addressGroupOf(address: string): string {
  const unzoned = address.split('%', 1)[0] ?? address;
  if (isIPv4(unzoned)) return unzoned;
  if (!isIPv6(unzoned)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(unzoned);
  if (mapped?.[1] !== undefined) return mapped[1];
  const prefix = hextetsOf(unzoned)
    .slice(0, 4)
    .map((hextet) => Number.parseInt(hextet, 16).toString(16));
  return `${prefix.join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address, "::" expanded and a dotted IPv4 tail split in two. */
function hextetsOf(address: string): string[] {
  const [head = '', tail] = address.split('::', 2);
  const parts = (text: string): string[] =>
    text === ''
      ? []
      : text.split(':').flatMap((part) => {
          if (!part.includes('.')) return [part];
          const [a = 0, b = 0, c = 0, d = 0] = part.split('.').map(Number);
          return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
        });
  const front = parts(head);
  if (tail === undefined) return front;
  const back = parts(tail);
  return [...front, ...Array<string>(8 - front.length - back.length).fill('0'), ...back];
}
