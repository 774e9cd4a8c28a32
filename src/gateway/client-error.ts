import { maxHeaderSize, STATUS_CODES } from 'node:http';
import { errorBody } from './envelope.js';
import { type GatewayError, gatewayErrors } from './gateway-error.js';

/**
 * What the gateway answers to bytes Node's HTTP parser refused (its 'clientError'): 408 for a
 * request that took too long to arrive, 414 for a request line over Node's limit for the whole head
 * and 431 for headers over it, 400 for anything else that is not HTTP (garbage after a request, a bad
 * chunk size, a malformed header).
 */
export function clientErrorAnswer(error: NodeJS.ErrnoException): GatewayError {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return gatewayErrors.requestTimeout();
    case 'HPE_HEADER_OVERFLOW':
      return requestLineOverflowed(error) ? gatewayErrors.uriTooLong() : gatewayErrors.headersTooLarge();
    default:
      return gatewayErrors.malformedRequest();
  }
}

/** A request's method and a space: what a request line starts with. */
const REQUEST_LINE_START = /^[A-Z]{1,16} /;

/**
 * Whether Node's limit on a request's head was passed by its request line alone, a URL too long
 * (RFC 9110: 414), rather than by its headers. Node counts the line and the headers together and
 * says HPE_HEADER_OVERFLOW for both; the bytes it was parsing (`rawPacket`) tell them apart when
 * they begin with the request line, as they do for one written at once. Otherwise 431 stays: not
 * wrong, as the line is part of the head.
 */
function requestLineOverflowed(error: NodeJS.ErrnoException): boolean {
  const packet = (error as { rawPacket?: unknown }).rawPacket;
  if (!Buffer.isBuffer(packet)) return false;
  if (!REQUEST_LINE_START.test(packet.toString('latin1', 0, 17))) return false;
  const lineEnd = packet.indexOf(0x0a);
  return lineEnd === -1 || lineEnd >= maxHeaderSize;
}

/**
 * A whole HTTP/1.1 answer with the book's envelope (`"key":null`) and `Connection: close`, written
 * straight to a socket whose parser has failed, so there is no ServerResponse to write it with.
 */
export function rawErrorResponse(error: GatewayError, requestId?: string): string {
  const body = errorBody(null, error.message);
  // A request id is valid header text (see isValidRequestId): written as it is.
  const id = requestId === undefined ? '' : `X-Request-Id: ${requestId}\r\n`;
  return `HTTP/1.1 ${error.httpStatus} ${STATUS_CODES[error.httpStatus]}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${id}Connection: close\r\n\r\n${body}`;
}
