/**
 * An answer the gateway makes itself rather than a service: a proper HTTP status with the book's
 * envelope, `errorcode: 1` and a message saying what went wrong.
 */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';

  constructor(
    readonly httpStatus: number,
    message: string,
    readonly options: {
      /** Send `Retry-After`: the condition is temporary. */
      retryAfter?: boolean;
      /** Close the connection after answering (its request body was not read to the end). */
      closeConnection?: boolean;
    } = {},
  ) {
    super(message);
  }
}

/** A path is echoed in messages up to this length. */
const MAX_ECHOED_PATH = 200;

/** The catalogue of the gateway's own answers, so that their words stay in one place. */
export const gatewayErrors = {
  notFound: (method: string, path: string) =>
    new GatewayError(404, `No route for ${method} ${path.slice(0, MAX_ECHOED_PATH)}`),
  /** `allow`: what the `Allow` header says, repeated for a client that shows only the body. */
  methodNotAllowed: (method: string, path: string, allow: string) =>
    new GatewayError(
      405,
      `Method ${method.slice(0, 16)} not allowed on ${path.slice(0, MAX_ECHOED_PATH)}: use ${allow}`,
    ),
  notReady: () =>
    new GatewayError(503, 'The gateway has not received the route table from the distributor yet', {
      retryAfter: true,
    }),
  noRouteYet: () =>
    new GatewayError(503, 'No service has registered a route with the gateway yet', { retryAfter: true }),
  noInstance: (method: string, path: string) =>
    new GatewayError(503, `No serving instance for ${method} ${path.slice(0, MAX_ECHOED_PATH)}`, {
      retryAfter: true,
    }),
  /** Every serving instance of the route has been out of this gateway's reach for long (Route.pick). */
  instancesOutOfReach: (method: string, path: string) =>
    new GatewayError(
      503,
      `No instance of ${method} ${path.slice(0, MAX_ECHOED_PATH)} can be reached from the gateway`,
      { retryAfter: true },
    ),
  unsupportedMediaType: () =>
    new GatewayError(
      415,
      'Unsupported Content-Type: send application/json or application/x-www-form-urlencoded, in UTF-8',
      {
        closeConnection: true,
      },
    ),
  unsupportedContentEncoding: (coding: string) =>
    new GatewayError(
      415,
      `Unsupported Content-Encoding ${JSON.stringify(coding.slice(0, MAX_ECHOED_PATH))}: send the body unencoded`,
      { closeConnection: true },
    ),
  bodyTooLarge: (limit: number) =>
    new GatewayError(413, `Request body larger than ${limit} bytes`, { closeConnection: true }),
  malformedJson: () => new GatewayError(400, 'Malformed JSON body'),
  notAnObject: () => new GatewayError(400, 'The JSON body must be an object'),
  notUtf8: () => new GatewayError(400, 'The body is not valid UTF-8'),
  notAscii: () => new GatewayError(400, 'The body is not valid US-ASCII, its declared charset'),
  queryNotUtf8: () =>
    new GatewayError(400, 'The query string is not valid UTF-8 once its %-escapes are decoded'),
  unsupportedTransferCoding: (coding: string) =>
    new GatewayError(
      501,
      `Transfer-Encoding ${JSON.stringify(coding.slice(0, MAX_ECHOED_PATH))} is not supported: send the body with Content-Length or Transfer-Encoding: chunked`,
      { closeConnection: true },
    ),
  malformedPath: () =>
    new GatewayError(
      400,
      'Malformed request path: each "%" takes two hex digits, and the bytes escaped must be UTF-8',
    ),
  malformedRequest: () => new GatewayError(400, 'Malformed HTTP request', { closeConnection: true }),
  missingHost: () =>
    new GatewayError(400, 'An HTTP/1.1 request needs a Host header', { closeConnection: true }),
  hostNotAllowed: () =>
    new GatewayError(
      421,
      'This gateway does not answer to the host name in Host: add it to --allowed-hosts (GATEWAY_ALLOWED_HOSTS), or call it by IP address or localhost',
    ),
  statusNotForClient: () =>
    new GatewayError(
      403,
      "The status page lists the registry's nodes and answers clients on the gateway's machine only: list this client's address or network in --status-clients (GATEWAY_STATUS_CLIENTS)",
    ),
  crossOriginWrite: () =>
    new GatewayError(
      403,
      'A page of another origin may not send this request: add its origin to --cors-origins (CORS_ORIGINS)',
    ),
  duplicateHost: () =>
    new GatewayError(400, 'A request takes one Host header, not several', { closeConnection: true }),
  transferEncodingInHttp10: () =>
    new GatewayError(
      400,
      'An HTTP/1.0 request cannot carry Transfer-Encoding: send the body with Content-Length, or the request in HTTP/1.1',
      { closeConnection: true },
    ),
  expectationFailed: (expect: string) =>
    new GatewayError(
      417,
      `Expect ${JSON.stringify(expect.slice(0, MAX_ECHOED_PATH))} is not supported: send Expect: 100-continue, or none`,
      { closeConnection: true },
    ),
  connectNotSupported: () =>
    new GatewayError(501, 'CONNECT is not supported: the gateway is not a proxy', { closeConnection: true }),
  plainHttpOnHttpsPort: () =>
    new GatewayError(400, 'This port speaks HTTPS: use https://', { closeConnection: true }),
  /** `reason`: node:tls's code for a certificate that was sent (UNABLE_TO_VERIFY_LEAF_SIGNATURE), else undefined. */
  clientCertificateRefused: (reason: string | undefined) =>
    new GatewayError(
      403,
      `This port requires a client certificate issued by its client CA: ${reason === undefined ? 'none was sent' : `the one sent was refused (${reason})`}`,
      { closeConnection: true },
    ),
  requestTimeout: () =>
    new GatewayError(408, 'The request took too long to arrive', { closeConnection: true }),
  headersTooLarge: () =>
    new GatewayError(431, 'The request headers are too large', { closeConnection: true }),
  uriTooLong: () => new GatewayError(414, 'The request URL is too long', { closeConnection: true }),
  tooManyStreamedLists: () =>
    new GatewayError(503, 'The gateway is streaming too many long lists at once', { retryAfter: true }),
  bodiesOverBudget: () =>
    new GatewayError(503, 'The gateway is reading too many request bodies at once', {
      retryAfter: true,
      closeConnection: true,
    }),
  tooManyPipelined: (limit: number) =>
    new GatewayError(503, `More than ${limit} requests in flight on one connection`, {
      retryAfter: true,
      closeConnection: true,
    }),
  tooManyConnections: () =>
    new GatewayError(503, 'The gateway has too many connections open', {
      retryAfter: true,
      closeConnection: true,
    }),
  stopping: () =>
    new GatewayError(503, 'The gateway is stopping', { retryAfter: true, closeConnection: true }),
} as const;
