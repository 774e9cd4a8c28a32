import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../common/logger.js';
import type { ConnectionTracker } from './connection-tracker.js';
import { errorBody } from './envelope.js';
import type { Exchange } from './exchange.js';
import type { GatewayError } from './gateway-error.js';
import { endInSlices } from './sliced-write.js';

/** What the answer writer needs of the gateway around it. */
export interface AnswerWriterOptions {
  log: Logger;
  /** The `Retry-After` of temporary failures, in seconds (see GatewayOptions.retryAfterSeconds). */
  retryAfterSeconds: number;
  /** Its connections, to tell whether a request pipelined behind an answer is with a service. */
  connections: Pick<ConnectionTracker, 'of'>;
  /** Whether the gateway serves, neither draining nor stopping: then answers may keep their connection. */
  isServing(): boolean;
}

/**
 * How the gateway writes its JSON answers: the book's envelope with its length, X-Request-Id,
 * Retry-After, and `Connection: close` when the connection is not to be kept; for a routed request
 * (its exchange), for one answered before it had one, and for a bug while handling either.
 */
export class AnswerWriter {
  readonly #options: AnswerWriterOptions;
  readonly #retryAfter: string;

  constructor(options: AnswerWriterOptions) {
    this.#options = options;
    this.#retryAfter = String(options.retryAfterSeconds);
  }

  answerError(exchange: Exchange, error: GatewayError): void {
    if (error.options.closeConnection) exchange.bodyRead = false;
    this.answer(
      exchange,
      error.httpStatus,
      errorBody(exchange.key, error.message),
      error.options.retryAfter === true,
    );
  }

  internalError(exchange: Exchange, error: unknown): void {
    this.#options.log.error(
      { err: error, key: exchange.key, requestId: exchange.requestId },
      'unexpected error while handling a request',
    );
    if (!exchange.gone && !exchange.response.headersSent) {
      exchange.bodyRead = false;
      this.answer(exchange, 500, errorBody(exchange.key, 'Internal error in the gateway'), false);
    }
  }

  answer(exchange: Exchange, httpStatus: number, body: Buffer, retryAfter: boolean | number): void {
    this.write(
      exchange.response,
      httpStatus,
      body,
      retryAfter,
      this.closesAfter(exchange),
      exchange.requestId,
    );
  }

  /**
   * Whether the answer to a routed request closes its connection: its body was left unread, or the
   * gateway drains or stops, unless a request pipelined behind it on the connection is already with
   * a service (a close now would drop that one's answer, its work done): the last one closes then.
   */
  closesAfter(exchange: Exchange): boolean {
    if (!exchange.bodyRead) return true;
    if (this.#options.isServing()) return false;
    const connection = this.#options.connections.of(exchange.request.socket);
    return connection === undefined || connection.lastDispatched <= exchange.turn;
  }

  /** Answers a request that has no exchange (no route, or the gateway not ready). */
  fail(
    request: IncomingMessage,
    response: ServerResponse,
    key: number | null,
    error: GatewayError,
    hasBody: boolean,
    // The id onRequest gave the request (answered in X-Request-Id); undefined when ids are off.
    requestId: string | undefined,
  ): void {
    this.#options.log.debug(
      { method: request.method, url: request.url, status: error.httpStatus, requestId },
      error.message,
    );
    // Its body, if any, is not read: the connection is closed rather than drained (and so it is
    // while the gateway drains or stops).
    this.write(
      response,
      error.httpStatus,
      errorBody(key, error.message),
      error.options.retryAfter === true,
      hasBody || !this.#options.isServing(),
      requestId,
    );
  }

  write(
    response: ServerResponse,
    httpStatus: number,
    body: Buffer,
    // true: the gateway's --retry-after; a number: a service's own wait, in seconds.
    retryAfter: boolean | number,
    close: boolean,
    requestId: string | undefined,
  ): void {
    if (response.headersSent || response.destroyed) return;
    // A flat [name, value, …] list: Node takes it as it is, without walking an object.
    const headers: (string | number)[] = ['Content-Type', 'application/json', 'Content-Length', body.length];
    pushRequestId(headers, requestId);
    if (retryAfter !== false)
      headers.push('Retry-After', retryAfter === true ? this.#retryAfter : retryAfter);
    if (close) headers.push('Connection', 'close');
    response.writeHead(httpStatus, headers as unknown as string[]);
    endInSlices(response, body);
  }
}

/** Adds an answer's `X-Request-Id` to its flat header list, when the request has an id. */
export function pushRequestId(headers: (string | number)[], requestId: string | undefined): void {
  if (requestId !== undefined) headers.push('X-Request-Id', requestId);
}
