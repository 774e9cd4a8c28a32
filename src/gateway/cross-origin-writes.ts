import type { IncomingMessage } from 'node:http';

// Cross-site request forgery: CORS keeps a page of another origin from reading the gateway's
// answers, not from sending it requests. An HTML form, or a `fetch` in `no-cors` mode, POSTs a
// urlencoded body with no preflight: a page on any site that a visitor inside the network opens
// (the gateway at 127.0.0.1:8000 on a laptop, 10.0.0.3 inside a network, both names the host
// allowlist takes) made the visitor's browser create goods, members and purchases. Browsers say
// where a request comes from (Sec-Fetch-Site, or at least Origin, on every POST); tools, scripts
// and servers send neither and are not concerned. Go's net/http CrossOriginProtection decides the
// same way.

/** Methods that change nothing, which a page may send from anywhere (its answer is still kept from it). */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Whether a request by `method` is one a page of another origin may be refused (see isCrossOriginWrite). */
export function mayBeCrossOriginWrite(method: string): boolean {
  return !SAFE_METHODS.has(method);
}

/**
 * Whether a request that may write comes from a browser page of another origin than the gateway's:
 * `Sec-Fetch-Site` other than `same-origin` or `none` (a person's own navigation), or, from a
 * browser that sends no `Sec-Fetch-Site`, an `Origin` whose host and port are not the request's
 * `Host`. `allowed` tells whether the request's Origin is one the REST API is open to
 * (`--cors-origins`), whose pages may write as they may read.
 */
export function isCrossOriginWrite(
  request: IncomingMessage,
  method: string,
  allowed: (request: IncomingMessage) => boolean,
): boolean {
  if (!mayBeCrossOriginWrite(method)) return false;
  // Empty is none at all, as Go reads it: Origin decides.
  const site = request.headers['sec-fetch-site'] || undefined;
  const crossOrigin =
    site !== undefined
      ? site !== 'same-origin' && site !== 'none'
      : request.headers.origin !== undefined && !sameHost(request.headers.origin, request.headers.host);
  return crossOrigin && !allowed(request);
}

/** Whether an Origin ("http://127.0.0.1:8000", or "null") names the host and port of `host`. */
function sameHost(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const originUrl = new URL(origin);
    // Read with the origin's scheme, so that a default port written or left out compares alike.
    return originUrl.host === new URL(`${originUrl.protocol}//${host}`).host;
  } catch {
    return false;
  }
}
