import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Cross-origin resource sharing for browsers, for an allow-list of origins (CORS_ORIGINS), off when
 * the list is empty. A request whose `Origin` is on the list gets `Access-Control-Allow-Origin` on
 * its answer, whatever the answer; a preflight (OPTIONS with `Access-Control-Request-Method`) gets
 * the methods of the path's routes, the request headers the gateway reads, and how long a browser may
 * keep the answer. An origin off the list gets no CORS header at all, so the browser refuses the
 * answer to the page; the request itself is served as any other (CORS protects browsers' users, it
 * is no access control).
 */
export class Cors {
  readonly #origins: ReadonlySet<string>;
  readonly #anyOrigin: boolean;

  /** `origins`: "scheme://host[:port]" each, or "*" for any origin. */
  constructor(origins: readonly string[]) {
    this.#origins = new Set(origins.filter((origin) => origin !== '*'));
    this.#anyOrigin = origins.includes('*');
  }

  /** The request's Origin when it is allowed, else undefined. */
  allowedOrigin(request: IncomingMessage): string | undefined {
    const origin = request.headers.origin;
    if (origin === undefined || !(this.#anyOrigin || this.#origins.has(origin))) return undefined;
    return origin;
  }

  /**
   * Sets the headers every answer to an allowed origin carries, before anything is written (they are
   * merged with those the answer writes). With a list of origins, every answer says `Vary: Origin`,
   * whatever its request's Origin, an allowed one, another or none: the Fetch standard ("CORS
   * protocol and HTTP caches") asks it of a server whose Access-Control-Allow-Origin depends on the
   * request, since a cache would otherwise hand an answer kept for one origin (or for none, without
   * the header) to a page of another, which the browser then refuses. With "*" the header is the
   * same for every request, and nothing varies.
   */
  decorate(request: IncomingMessage, response: ServerResponse): void {
    if (!this.#anyOrigin) response.setHeader('Vary', 'Origin');
    const origin = this.allowedOrigin(request);
    if (origin === undefined) return;
    response.setHeader('Access-Control-Allow-Origin', this.#anyOrigin ? '*' : origin);
    response.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
  }

  /** Whether a request is a CORS preflight. */
  static isPreflight(request: IncomingMessage): boolean {
    return (
      request.method === 'OPTIONS' &&
      request.headers.origin !== undefined &&
      request.headers['access-control-request-method'] !== undefined
    );
  }

  /** The method a preflight asks about (empty for a request that is none). */
  static requestedMethod(request: IncomingMessage): string {
    return request.headers['access-control-request-method'] ?? '';
  }

  /**
   * Sets the preflight headers for an allowed origin: `methods` are those of the path's routes;
   * `maxAgeSeconds`, how long the browser may keep the answer.
   */
  preflight(
    request: IncomingMessage,
    response: ServerResponse,
    methods: readonly string[],
    maxAgeSeconds = MAX_AGE_SECONDS,
  ): void {
    if (this.allowedOrigin(request) === undefined) return;
    response.setHeader('Access-Control-Allow-Methods', methods.join(', '));
    response.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
    response.setHeader('Access-Control-Max-Age', String(maxAgeSeconds));
  }
}

/**
 * The request headers a page may send: the body's type and the headers the gateway reads, W3C trace
 * context included (a page traced by OpenTelemetry's web instrumentation sends traceparent to the
 * origins it propagates to: without it here, the browser refused every such request at its preflight).
 */
const ALLOWED_HEADERS = 'Content-Type, Idempotency-Key, X-Request-Id, traceparent, tracestate';
/** The answer headers a page may read beyond the CORS-safelisted ones. */
const EXPOSED_HEADERS = 'Retry-After, X-Request-Id';
/** How long a browser may keep a preflight's answer: 10 minutes (Chromium's own cap is 2 hours). */
const MAX_AGE_SECONDS = 600;

/** Every method an HttpRule can route (google/api/http.proto): a preflight's answer before the routes are known. */
export const ROUTABLE_METHODS: readonly string[] = ['DELETE', 'GET', 'PATCH', 'POST', 'PUT'];

/** The methods to announce for a path's routes (Allow, Access-Control-Allow-Methods): HEAD with GET, and OPTIONS. */
export function allowedMethods(routeMethods: readonly string[]): string[] {
  const methods = new Set(routeMethods);
  if (methods.has('GET')) methods.add('HEAD');
  methods.add('OPTIONS');
  return [...methods].sort();
}
