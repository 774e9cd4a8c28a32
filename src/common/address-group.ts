import { isIPv4, isIPv6 } from 'node:net';

/**
 * The group a peer's address belongs to when what one client holds is shared out: an IPv4 address
 * is its own group, also when it comes inside IPv6 (mapped, "::ffff:192.0.2.7"; compatible; or
 * translated by NAT64, "64:ff9b::192.0.2.7", each its IPv4 client); an IPv6 address is grouped by
 * its /64, the least a site is given, within which one client can pick a new address for every
 * connection ("2001:db8:0:1::/64", written as RFC 5952 has it), and a 6to4 one ("2002::/16") by its /48, which one IPv4 host
 * holds. Anything else (a Unix socket's empty address) is returned as it came.
 */
export function addressGroupOf(address: string): string {
  const unzoned = address.split('%', 1)[0] ?? address;
  if (isIPv4(unzoned)) return unzoned;
  if (!isIPv6(unzoned)) return address;
  const h = hextetsOf(unzoned);
  const zeroes = (from: number, to: number): boolean => h.slice(from, to).every((hextet) => hextet === 0);
  const mapped = zeroes(0, 5) && h[5] === 0xffff;
  const compatible = zeroes(0, 6) && h[6] !== 0;
  const nat64 = h[0] === 0x64 && h[1] === 0xff9b && zeroes(2, 6);
  if (mapped || compatible || nat64) return ipv4Of(h[6]!, h[7]!);
  if (h[0] === 0x2002) return `${prefixText([...h.slice(0, 3), 0, 0, 0, 0, 0])}/48`;
  return `${prefixText([...h.slice(0, 4), 0, 0, 0, 0])}/64`;
}

/**
 * An address as its owner knows it: an IPv4 client of a dual-stack socket ("::ffff:192.0.2.7", as
 * Node gives it on a port bound to "::") as its IPv4 address, which logs then name as everywhere else.
 */
export function unmappedAddress(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/**
 * An address's text as RFC 5952 gives it, which logs and messages show: the longest run of two or
 * more zero groups (the first of equals) as "::", lower case ("2001:db8::/64", not
 * "2001:db8:0:0::/64", which a search for the prefix as written elsewhere would miss).
 */
function prefixText(h: readonly number[]): string {
  let start = -1;
  let length = 0;
  for (let i = 0; i < h.length; ) {
    if (h[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < h.length && h[j] === 0) j += 1;
    if (j - i > length) [start, length] = [i, j - i];
    i = j;
  }
  const hex = h.map((hextet) => hextet.toString(16));
  if (length < 2) return hex.join(':');
  return `${hex.slice(0, start).join(':')}::${hex.slice(start + length).join(':')}`;
}

function ipv4Of(high: number, low: number): string {
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/** The eight 16-bit groups of a valid IPv6 address, "::" expanded and a dotted IPv4 tail split in two. */
function hextetsOf(address: string): number[] {
  const [head = '', tail] = address.split('::', 2);
  const parts = (text: string): number[] =>
    text === ''
      ? []
      : text.split(':').flatMap((part) => {
          if (!part.includes('.')) return [Number.parseInt(part, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = part.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const front = parts(head);
  if (tail === undefined) return front;
  const back = parts(tail);
  return [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
}
