import { isIP } from 'node:net';
import { type ChannelOptions, experimental } from '@grpc/grpc-js';
import { dialsThisMachine } from './loopback.js';

/**
 * The URI schemes whose target names no host a proxy could reach: unix sockets (grpc-js itself
 * takes no proxy for `unix:` alone, not for `unix-abstract:`), and the `distributor:///` resolver's,
 * whose path is a service or node name: proxied, grpc-js never asks the resolver and sends the
 * proxy `CONNECT shop.v1.GoodsService:443`; the instances it resolves to are dialled directly.
 */
const HOSTLESS_SCHEMES = new Set(['unix', 'unix-abstract', 'distributor']);

/** The schemes whose path grpc-js reads as addresses; any other (or none) is a DNS name, whole. */
const ADDRESS_SCHEMES = new Set(['dns', 'ipv4', 'ipv6']);

/** grpc-js's reading of a target URI: `scheme:`, `//authority/`, then the path. */
const TARGET_URI = /^(?:([A-Za-z0-9+.-]+):)?(?:\/\/([^/]*)\/)?(.+)$/;

/** The hosts a TCP target dials (grpc-js's own reading), or undefined for a target that names none. */
function hostsOf(target: string): string[] | undefined {
  const match = TARGET_URI.exec(target);
  const scheme = match?.[1];
  if (scheme !== undefined && HOSTLESS_SCHEMES.has(scheme)) return undefined;
  // "127.0.0.1:9000" and "localhost:9000" read as a scheme too, which no resolver serves: grpc-js
  // then takes the whole target as a DNS name, as here.
  const path = match && scheme !== undefined && ADDRESS_SCHEMES.has(scheme) ? match[3]! : target;
  const addresses = scheme === 'ipv4' || scheme === 'ipv6' ? path.split(',') : [path];
  return addresses.map((address) => experimental.splitHostPort(address)?.host ?? address);
}

/** One part of an IPv4 address as inet_aton reads it: hexadecimal (0x), octal (leading 0), decimal. */
const INET_ATON_PART = /^(?:0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)$/i;

/**
 * The dotted-quad address a host the system resolver reads as an IPv4 address in inet_aton's
 * shorter spellings (`127.1`, `0x7f.1`, `2130706433`, `0177.0.0.1`, `0`): grpc-js takes such a host
 * for a name and asks getaddrinfo, which answers that address without asking DNS; undefined for any
 * other host (a name, or a dotted quad already).
 */
export function inetAtonAddress(host: string): string | undefined {
  if (isIP(host) !== 0) return undefined;
  const parts = host.split('.');
  if (parts.length > 4 || !parts.every((part) => INET_ATON_PART.test(part))) return undefined;
  const values = parts.map((part) => (/^0[0-7]/.test(part) ? Number.parseInt(part, 8) : Number(part)));
  const last = values.pop()!;
  if (values.some((value) => value > 255) || last >= 256 ** (4 - values.length)) return undefined;
  const bytes = [...values];
  for (let shift = 3 - values.length; shift >= 0; shift -= 1)
    bytes.push(Math.floor(last / 256 ** shift) % 256);
  return bytes.join('.');
}

/**
 * Whether grpc-js must dial `target` directly, whatever proxy the environment names (`grpc_proxy`,
 * `https_proxy`, `http_proxy`): a target on this machine (127.0.0.0/8, ::1, `localhost` and its
 * subdomains, the any-address, however written, inet_aton's `127.1` and `0x7f.1` included: proxied,
 * the proxy would dial its own loopback), a unix socket, or a `distributor:///` one (see
 * HOSTLESS_SCHEMES). grpc-js sends every other channel through such a proxy unless `no_grpc_proxy`
 * (or, without it, `no_proxy`) names the host, loopback included: behind a corporate proxy,
 * every component of `npm start` was sent to it to reach the distributor on 127.0.0.1 and none
 * registered. Go's gRPC (golang.org/x/net/http/httpproxy) never proxies loopback either. Another
 * machine's address keeps grpc-js's rules, proxy and no_proxy, as its users expect. A host name
 * other than `localhost` is not resolved here (grpc-js decides before it resolves): one that names
 * this machine (its own name in /etc/hosts) takes no_proxy.
 */
export function dialsDirectly(target: string): boolean {
  const hosts = hostsOf(target);
  return (
    hosts === undefined ||
    (hosts.length > 0 && hosts.every((host) => dialsThisMachine(inetAtonAddress(host) ?? host)))
  );
}

/**
 * The channel options to make a channel to `target` with: `options`, and, for a target grpc-js must
 * dial directly (see dialsDirectly), `grpc.enable_http_proxy: 0`. Every channel the shop makes
 * takes its options from here. An `options` that turns the proxy off already keeps it off.
 */
export function channelOptionsFor(target: string, options: ChannelOptions = {}): ChannelOptions {
  return dialsDirectly(target) ? { ...options, 'grpc.enable_http_proxy': 0 } : options;
}
