import { STATUS_CODES } from 'node:http';
import { errorBody } from './envelope.js';
import { type GatewayError, gatewayErrors } from './gateway-error.js';

/**
 * What the gateway answers to bytes Node's HTTP parser refused (its 'clientError'): 408 for a
 * request that took too long to arrive, 431 for headers over Node's limit, 400 for anything else
 * that is not HTTP (garbage after a request, a bad chunk size, a malformed header).
 */
export function clientErrorAnswer(error: NodeJS.ErrnoException): GatewayError {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return gatewayErrors.requestTimeout();
    case 'HPE_HEADER_OVERFLOW':
      return gatewayErrors.headersTooLarge();
    default:
      return gatewayErrors.malformedRequest();
  }
}

/**
 * A whole HTTP/1.1 answer with the book's envelope (`"key":null`) and `Connection: close`, written
 * straight to a socket whose parser has failed, so there is no ServerResponse to write it with.
 */
export function rawErrorResponse(error: GatewayError): string {
  const body = errorBody(null, error.message);
  return `HTTP/1.1 ${error.httpStatus} ${STATUS_CODES[error.httpStatus]}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
}
