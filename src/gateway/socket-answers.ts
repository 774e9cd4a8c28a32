import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../common/logger.js';
import { BodyAbortedError } from './body-reader.js';
import { clientErrorAnswer, rawErrorResponse } from './client-error.js';
import type { ConnectionTracker } from './connection-tracker.js';
import { gatewayErrors } from './gateway-error.js';
import type { GatewayTelemetry } from './gateway-telemetry.js';

/**
 * What the gateway answers straight on a socket, outside any route: bytes the parser refused, plain
 * HTTP sent to the HTTPS port, a client certificate that did not check out, CONNECT. Each answer is
 * the book's envelope in plain HTTP, counted as a request the gateway could not take, written after
 * the answers to the requests before it on the connection, which then closes once the client had
 * LINGER_MS to read it.
 */
export class SocketAnswers {
  readonly #log: Logger;
  readonly #telemetry: Pick<GatewayTelemetry, 'onUnseenRequest' | 'requestIdOf'>;
  readonly #connections: Pick<ConnectionTracker, 'of'>;
  /** Sockets whose parser has failed: answered once (see clientError). */
  readonly #failedSockets = new WeakSet<Socket>();

  constructor(options: {
    log: Logger;
    telemetry: Pick<GatewayTelemetry, 'onUnseenRequest' | 'requestIdOf'>;
    connections: Pick<ConnectionTracker, 'of'>;
  }) {
    this.#log = options.log;
    this.#telemetry = options.telemetry;
    this.#connections = options.connections;
  }

  /**
   * Plain HTTP sent to the HTTPS port: answered 400 in plain HTTP, saying to use https://, and
   * counted as any request the parser refuses. The rest of what the client sends is read and
   * dropped until it closes or the linger ends, so that closing with unread bytes does not reset
   * the connection under the answer.
   */
  plainHttp(socket: Socket): void {
    const refused = gatewayErrors.plainHttpOnHttpsPort();
    this.#log.debug({ status: refused.httpStatus }, refused.message);
    this.#telemetry.onUnseenRequest(refused.httpStatus);
    closeAfterLinger(socket);
    socket.resume();
    socket.end(rawErrorResponse(refused));
  }

  /**
   * A client whose certificate did not check out against --https-client-ca (none, or another CA's):
   * answered 403 over its TLS connection, saying which, and closed as plainHttp does. Its
   * request is never parsed: it reaches no route and no page.
   */
  clientCertificateRefused(socket: TLSSocket): void {
    // A client that sent none has no certificate to name (an empty object) and node:tls's code for it
    // (UNABLE_TO_GET_ISSUER_CERT) would mislead.
    const sent = Object.keys(socket.getPeerCertificate()).length > 0;
    const reason = sent ? String(socket.authorizationError) : undefined;
    const refused = gatewayErrors.clientCertificateRefused(reason);
    this.#log.debug({ status: refused.httpStatus, errorCode: reason }, refused.message);
    this.#telemetry.onUnseenRequest(refused.httpStatus);
    closeAfterLinger(socket);
    socket.resume();
    socket.end(rawErrorResponse(refused));
  }

  /**
   * Bytes that are not HTTP, a bad chunk, a request timeout, a reset: never throw, and lose no
   * answer. Requests complete before the bad bytes are answered first (their answers are on their
   * way); a request whose body was being read gets the error as its answer; then the error is
   * written and the connection closed, unless an answer has closed it already.
   */
  clientError(error: NodeJS.ErrnoException, socket: Socket): void {
    // A TLS handshake that did not finish in time: no answer can reach the client.
    if (error.code === 'ECONNRESET' || error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || socket.destroyed) {
      socket.destroy();
      return;
    }
    // The parser reports its error again on every later chunk: answer once.
    if (this.#failedSockets.has(socket)) return;
    this.#failedSockets.add(socket);
    const connection = this.#connections.of(socket);
    const reading = connection?.readingBody;
    // A failure in the body of a request being read is about that request: its line names it.
    const requestId = reading && !reading.request.complete ? reading.requestId : undefined;
    if (error.code === 'HPE_INVALID_EOF_STATE') {
      this.#log.debug(
        { errorCode: error.code, requestId },
        'the client closed its side in the middle of a request',
      );
      // The client closed its side in the middle of a request: it left, as a reset would say (499),
      // and is owed no answer to it. Answers to requests it completed before are still written.
      if (reading && !reading.request.complete) {
        reading.stop.abort(new BodyAbortedError());
        // With no answer before it to write, nothing is left to send: closed now, not after the
        // linger, which recorded its 499 as 2 s long and held its connection's room as long. Else
        // once the answers before it are written (this one never ends by itself); a linger begun
        // now closed the connection under those still on their way (a call of over 2 s).
        if (connection) connection.whenIdle(() => socket.destroy(), 1);
        else socket.destroy();
      } else if (connection) connection.whenIdle(() => socket.destroy());
      else socket.destroy();
      return;
    }
    const answer = clientErrorAnswer(error);
    this.#log.debug({ errorCode: error.code, status: answer.httpStatus, requestId }, answer.message);
    if (reading && !reading.request.complete) reading.stop.abort(answer);
    // A failure in the body of a request already handed on is that request's, answered and counted
    // as it; else the parser refused a request before it was one. A connection that sent nothing at
    // all (a browser's preconnect never used) made no request: told 408, it is not counted as one.
    const latest = connection?.latestRequest;
    if ((!latest || latest.complete) && socket.bytesRead > 0) {
      this.#telemetry.onUnseenRequest(answer.httpStatus);
    }
    const writeAnswer = (): void => {
      // The client's LINGER_MS to read the answers and leave begins once they are written: begun at
      // the bad bytes, it cut off answers still on their way (a call of over 2 s: a write made, and
      // its connection closed with no answer).
      closeAfterLinger(socket);
      if (!socket.destroyed && !socket.writableEnded) socket.end(rawErrorResponse(answer));
    };
    if (connection) connection.whenIdle(writeAnswer);
    else writeAnswer();
  }

  /**
   * CONNECT, which the gateway does not proxy: 501 with its envelope and a request id, counted as a
   * request it could not take (Node's own answer is a closed socket).
   */
  connect(request: IncomingMessage, socket: Socket): void {
    socket.on('error', () => {});
    // Read and dropped, and closed a while after its answer even if the client keeps its side open.
    socket.resume();
    // A request like any other: it has an id, answered in X-Request-Id and named in its line.
    const requestId = this.#telemetry.requestIdOf(request);
    const refused = gatewayErrors.connectNotSupported();
    this.#log.debug({ requestId, method: 'CONNECT', status: refused.httpStatus }, refused.message);
    // Answers to requests before it on the connection go first.
    const refuse = (): void => {
      // From here: begun at once, it closed the connection under answers still on their way.
      closeAfterLinger(socket);
      if (!socket.destroyed && !socket.writableEnded) {
        socket.end(rawErrorResponse(refused, requestId));
      }
    };
    const connection = this.#connections.of(socket);
    if (connection) connection.whenIdle(refuse);
    else refuse();
    // A 501 like any other: counted (as a request the gateway could not take), and in the error rates.
    this.#telemetry.onUnseenRequest(501, 'CONNECT');
  }
}

/**
 * A socket whose parser has failed is closed once its answers are written; if the client neither
 * reads them nor leaves, it is closed after LINGER_MS all the same.
 */
function closeAfterLinger(socket: Socket): void {
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** How long a client may hold its connection to read an answer that closes it (a refusal, a 413). */
const LINGER_MS = 2_000;

/**
 * After a 413 on a body of unknown size, reading stops for good: the request stays paused, so no
 * more of the body enters the process. The socket is not closed at once, because closing it with
 * unread bytes makes the kernel reset it, and the reset can reach a client still sending before it
 * has read the answer; the client gets LINGER_MS to read it and leave, then the socket goes.
 */
export function lingerThenClose(request: IncomingMessage): void {
  const timer = setTimeout(() => request.socket.destroy(), LINGER_MS);
  timer.unref();
  request.socket.once('close', () => clearTimeout(timer));
}
