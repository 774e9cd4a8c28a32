import type { RequestOptions } from 'node:http';
import { isIP } from 'node:net';
import { isHostNameOrAddress } from './config.js';

/**
 * Where an HTTP server of the shop listens (the gateway, a metrics port): its scheme, host and port,
 * kept apart rather than as a URL. WHATWG URL (`new URL`, and Node's http.get given a string) takes
 * no IPv6 zone id: a gateway on `--host fe80::1%eth0` announced `http://[fe80::1%eth0]:8000`, and
 * the launcher, parsing it to ask the gateway whether the shop was ready, threw and exited. The
 * host goes to http.request as it is, which connects on the interface the zone id names.
 */
export interface HttpEndpoint {
  readonly protocol: 'http' | 'https';
  /** A host name, or an IP address without brackets (an IPv6 one with its zone id, if any). */
  readonly host: string;
  readonly port: number;
}

/**
 * The endpoint as a URL (with `path`, e.g. `/metrics`), for people and for the launcher to read
 * back ({@link parseHttpEndpoint}): an IPv6 host in brackets, a zone id written as RFC 6874 writes
 * it, `%25` (`http://[fe80::1%25eth0]:8000`), which curl takes as it is.
 */
export function httpEndpointUrl({ protocol, host, port }: HttpEndpoint, path = ''): string {
  const written = isIP(host) === 6 ? `[${host.replace('%', '%25')}]` : host;
  return `${protocol}://${written}:${port}${path}`;
}

const ENDPOINT_URL = /^(https?):\/\/(?:\[([^\]]+)\]|([^:/[\]]+)):(\d{1,5})\/?$/;

/**
 * The endpoint a URL names, as {@link httpEndpointUrl} writes it (scheme, host, port, no path), a
 * zone id written `%25eth0` or bare `%eth0`; undefined for anything else.
 */
export function parseHttpEndpoint(url: string): HttpEndpoint | undefined {
  const match = ENDPOINT_URL.exec(url);
  if (!match) return undefined;
  const port = Number(match[4]);
  if (port > 65535) return undefined;
  const bracketed = match[2];
  const host = bracketed === undefined ? match[3]! : zoneAsTheSystemWritesIt(bracketed);
  if (bracketed === undefined ? !isHostNameOrAddress(host) : isIP(host) !== 6) return undefined;
  return { protocol: match[1] as 'http' | 'https', host, port };
}

/** `fe80::1%25eth0` (RFC 6874) as the system writes it, `fe80::1%eth0`. */
function zoneAsTheSystemWritesIt(literal: string): string {
  const at = literal.indexOf('%');
  if (at < 0) return literal;
  const zone = literal.slice(at + 1);
  return `${literal.slice(0, at)}%${zone.startsWith('25') ? zone.slice(2) : zone}`;
}

/**
 * What http.request (or https.request) takes to ask the endpoint for `path`: the host as it is, so
 * that a zone id reaches the connect (libuv binds the socket to the interface it names), and an IP
 * address's family with it.
 */
export function httpRequestOptions(endpoint: HttpEndpoint, path: string): RequestOptions {
  const family = isIP(endpoint.host);
  return {
    protocol: `${endpoint.protocol}:`,
    host: endpoint.host,
    port: endpoint.port,
    path,
    ...(family === 0 ? {} : { family }),
  };
}
