import type { IncomingMessage } from 'node:http';
import { type HostAllowlist, namesSeveralHosts } from '../common/host-allowlist.js';
import { type GatewayError, gatewayErrors } from './gateway-error.js';

// How the gateway reads a request's line and framing headers before it routes it: what Node's parser
// leaves to the server (the absolute form, a second Host line, HTTP/1.0 framing, an Upgrade).

/** Whether a request asks for an Upgrade, as Node's parser reads it: `Upgrade` and `Connection: upgrade`. */
export function asksForUpgrade(request: IncomingMessage): boolean {
  const { upgrade, connection } = request.headers;
  return upgrade !== undefined && connection !== undefined && /(?:^|,)\s*upgrade\s*(?:,|$)/i.test(connection);
}

/** Whether a request was sent in HTTP/1.0. */
export function isHttp10(request: IncomingMessage): boolean {
  return request.httpVersionMajor === 1 && request.httpVersionMinor === 0;
}

/**
 * A request target in origin form, `/path?query`. RFC 9112 (section 3.2.2) has a server accept the
 * absolute form too, `http://host:port/path?query`, which an HTTP client sends when it is told to
 * use the gateway as its proxy: routed as it was, no route ever matched it (404). The scheme and
 * authority choose nothing here (the gateway serves one site), so they are dropped; an empty path
 * is `/`, as in `http://host?query`.
 */
export function originForm(target: string): string {
  if (target.startsWith('/')) return target;
  const absolute = ABSOLUTE_FORM.exec(target);
  if (absolute === null) return target;
  const rest = target.slice(absolute[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** The scheme and authority of an absolute-form request target (http or https, any case). */
const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*/i;

/** A request target's path, and where its query begins (-1: it has none). */
export function splitQuery(url: string): { path: string; queryStart: number } {
  const queryStart = url.indexOf('?');
  return { path: queryStart < 0 ? url : url.slice(0, queryStart), queryStart };
}

/**
 * A request path as the gateway routes it: escapes of unreserved characters decoded (RFC 3986,
 * section 6.2.2.2: "/go%6Fds" is "/goods"), so that a path a client escaped more than it had to
 * meets the literal route it names, as it already met a templated one. Undefined when a "%" escapes
 * no two hex digits or the escaped bytes are not UTF-8: no route could take such a path, so it is a
 * bad request (400), not a missing resource (404).
 */
export function routingPath(path: string): string | undefined {
  if (!path.includes('%')) return path;
  try {
    decodeURIComponent(path);
  } catch {
    return undefined;
  }
  return path.replace(ESCAPED_UNRESERVED, (escaped) =>
    String.fromCharCode(Number.parseInt(escaped.slice(1), 16)),
  );
}

/** An escape of an unreserved character: a letter, a digit, "-", ".", "_" or "~". */
const ESCAPED_UNRESERVED = /%(?:4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2[DE]|5F|7E)/gi;

/**
 * Why a request's framing headers refuse it before it is routed (400, or 421 for a host not
 * allowed), as Node's parser leaves them to the server; undefined when they are sound.
 */
export function framingRefusal(
  request: IncomingMessage,
  allowedHosts: HostAllowlist,
): GatewayError | undefined {
  const { host } = request.headers;
  if (host === undefined && request.httpVersionMajor === 1 && request.httpVersionMinor >= 1) {
    return gatewayErrors.missingHost();
  }
  if (namesSeveralHosts(request)) return gatewayErrors.duplicateHost();
  if (!allowedHosts.allows(host)) return gatewayErrors.hostNotAllowed();
  // Transfer-Encoding came with HTTP/1.1: a 1.0 message that carries it may have passed a 1.0
  // intermediary that took its body for a length-less one, so its framing cannot be trusted, and
  // RFC 9112 (section 6.1) has it treated as faulty and the connection closed. Node's parser
  // reads it as chunked all the same: refused before any service sees it.
  if (request.headers['transfer-encoding'] !== undefined && isHttp10(request)) {
    return gatewayErrors.transferEncodingInHttp10();
  }
  return undefined;
}
