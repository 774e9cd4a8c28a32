import { isIPv4, isIPv6 } from 'node:net';
import { experimental } from '@grpc/grpc-js';
import { dialsDirectly } from './proxy-choice.js';

/** The variables grpc-js takes a proxy from, in its order; lowercase only, as it reads them. */
const PROXY_VARIABLES = ['grpc_proxy', 'https_proxy', 'http_proxy'] as const;

/**
 * The address the OTLP/gRPC trace exporter dials, read as it reads it: the trimmed
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4317;
 * without a scheme, https:// is assumed; the URL's host and port, normalized by URL (lower case,
 * `127.1` as `127.0.0.1`). Undefined for a unix:// socket (grpc-js takes no proxy for one) or an
 * endpoint that is no URL (checkEndpoints refuses it first).
 */
export function grpcCollectorAddress(env: NodeJS.ProcessEnv): string | undefined {
  const endpoint =
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() ||
    env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() ||
    'http://localhost:4317';
  try {
    const url = new URL(/^\w{1,8}:\/\//.test(endpoint) ? endpoint : `https://${endpoint}`);
    return url.protocol === 'unix:' ? undefined : url.host;
  } catch {
    return undefined;
  }
}

/** What {@link keepLocalCollectorOffProxy} did, for the component to log once. */
export type CollectorProxyNote =
  | { readonly event: 'otlp-collector-no-proxy'; readonly entry: string; readonly message: string }
  | { readonly event: 'otlp-collector-through-proxy'; readonly message: string };

/**
 * Makes grpc-js dial a trace collector on this machine directly when the environment names a proxy,
 * as every channel the shop makes does (see proxy-choice.ts), by naming its host in `no_grpc_proxy`
 * of `env` (the process's environment, which grpc-js reads when the exporter makes its channel, at
 * its first export and again after it gives a channel up). Call it in the traced process before the
 * OTLP/gRPC exporter is made; nothing is changed when no proxy is set (or the one set is no http://
 * URL, for which grpc-js takes none), when the collector is on another machine (grpc-js's rules,
 * proxy and no_proxy, stay whole), or when grpc-js's list takes its host directly already
 * (`127.0.0.0/8`, or `::1` as the IPv6 note advises).
 *
 * Why this and not a channel of the shop's: the exporter (@opentelemetry/otlp-grpc-exporter-base
 * 0.223) makes its grpc-js client itself, with fixed channel options, and takes no client, channel,
 * transport or options from its user; giving it ours would mean rebuilding the exporter from that
 * package's inner parts (its transport is not exported), which would follow each release by hand.
 * The list is grpc-js's own, documented way to say "this host directly", and holds for the channel
 * the exporter makes again after repeated deadlines too.
 *
 * grpc-js reads `no_grpc_proxy` alone when it is set (not empty), else `no_proxy`: so the entries of
 * `no_proxy` are copied in first, as they are, and every other channel keeps the list it had. It
 * matches an entry as a suffix of the host, or as an IPv4 network (`a.b.c.d/n`): an IPv4 collector is
 * named as `address/32`, which matches that address alone; `localhost` (and its subdomains) by name,
 * which a host name ending in "localhost" (`notlocalhost`) would match too. An IPv6 address is not
 * added: as a suffix, `::1` would send `fd00::1` around the proxy as well; the note says what to set
 * instead.
 */
export function keepLocalCollectorOffProxy(env: NodeJS.ProcessEnv): CollectorProxyNote | undefined {
  const proxy = PROXY_VARIABLES.find((name) => env[name]);
  // grpc-js takes the first one set and, when it is no http:// URL, no proxy at all (it logs why).
  if (proxy === undefined || !isHttpUrl(env[proxy]!)) return undefined;
  const address = grpcCollectorAddress(env);
  if (address === undefined || !dialsDirectly(address)) return undefined;
  const host = experimental.splitHostPort(address)?.host;
  if (!host) return undefined;
  const list = env.no_grpc_proxy || env.no_proxy || '';
  // Dialled directly already (an operator's entry, `127.0.0.0/8`, an empty entry): nothing to say or add.
  if (noProxyListMatches(list, host)) return undefined;
  if (isIPv6(host)) {
    // The list grpc-js reads: an operator who set no_grpc_proxy alone would lose no_proxy's entries.
    const listName = !env.no_grpc_proxy && env.no_proxy ? 'no_proxy' : 'no_grpc_proxy';
    return {
      event: 'otlp-collector-through-proxy',
      message: `the trace collector at ${address} is on this machine, but grpc-js sends the OTLP/gRPC exporter through the proxy ${proxy} names: give the collector's endpoint as 127.0.0.1 or localhost, or add ${host} to ${listName} (grpc-js matches it as a suffix: other IPv6 addresses ending in it too)`,
    };
  }
  const entry = isIPv4(host) ? `${host}/32` : host;
  // An empty entry would match every host (grpc-js tests host.endsWith(entry)): none is added.
  env.no_grpc_proxy = list === '' ? entry : `${list},${entry}`;
  return {
    event: 'otlp-collector-no-proxy',
    entry,
    message: `no_grpc_proxy now ends with ${entry} in this process: the OTLP/gRPC exporter dials the trace collector at ${address}, on this machine, directly, not through the proxy ${proxy} names`,
  };
}

/** Whether a proxy variable's value is one grpc-js uses: a URL whose scheme is http. */
function isHttpUrl(value: string): boolean {
  try {
    return new URL(value).protocol === 'http:';
  } catch {
    return false;
  }
}

/**
 * Whether grpc-js (1.14, http_proxy.ts hostMatchesNoProxyList) dials `host` directly for the no-proxy
 * `list` (no_grpc_proxy, else no_proxy): an entry of the comma-separated list, not trimmed, that is
 * an IPv4 network holding `host`, or that `host` ends with (an empty entry, so, matches every host).
 * Exported for tests, which hold it to grpc-js's own answer.
 */
export function noProxyListMatches(list: string, host: string): boolean {
  if (list === '') return false;
  return list.split(',').some((entry) => {
    const network = cidrOf(entry);
    return (isIPv4(host) && network !== undefined && inNetwork(host, network)) || host.endsWith(entry);
  });
}

/** An entry as grpc-js reads an IPv4 network: `a.b.c.d/n`, n from 0 to 32 as parseInt reads it. */
function cidrOf(entry: string): { address: string; prefix: number } | undefined {
  const parts = entry.split('/');
  if (parts.length !== 2) return undefined;
  const prefix = Number.parseInt(parts[1]!, 10);
  if (!isIPv4(parts[0]!) || Number.isNaN(prefix) || prefix < 0 || prefix > 32) return undefined;
  return { address: parts[0]!, prefix };
}

/**
 * grpc-js's test of an IPv4 address against a network, its 32-bit arithmetic and all: a shift by 32
 * is a shift by 0 there, so `/0` holds its own address alone, not every address.
 */
function inNetwork(host: string, network: { address: string; prefix: number }): boolean {
  const bits = (address: string) =>
    address.split('.').reduce((value, octet) => (value << 8) + Number.parseInt(octet, 10), 0);
  const mask = -1 << (32 - network.prefix);
  return (bits(host) & mask) === (bits(network.address) & mask);
}
