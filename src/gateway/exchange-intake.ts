import type { ServerResponse } from 'node:http';
import type { AnswerWriter } from './answer-writer.js';
import {
  BodyAbortedError,
  type BodyBudget,
  BodyBudgetError,
  BodyTooLargeError,
  declaredBodySize,
  readBody,
} from './body-reader.js';
import { type Connection, type ConnectionTracker, WORKED_AT_ONCE } from './connection-tracker.js';
import type { Dispatcher } from './dispatcher.js';
import { errorBody } from './envelope.js';
import type { Exchange } from './exchange.js';
import { GatewayError, gatewayErrors } from './gateway-error.js';
import { bodyFormat, bodyInput, bodyIsUnencoded, NO_INPUT, type RequestInput } from './request-input.js';
import type { Route } from './route-table.js';
import { lingerThenClose } from './socket-answers.js';

/** What the intake needs of the gateway around it. */
export interface ExchangeIntakeOptions {
  connections: Pick<ConnectionTracker, 'of'>;
  dispatcher: Pick<Dispatcher, 'dispatch'>;
  answers: Pick<AnswerWriter, 'answerError' | 'internalError' | 'write'>;
  /** The deadline of every upstream call, retry included (see GatewayOptions.deadlineMs). */
  deadlineMs: number;
  /** The largest request body read (see GatewayOptions.bodyLimitBytes). */
  bodyLimitBytes: number;
  /** The bytes of request bodies held at once, across every request (see GatewayOptions.bodyBudgetBytes). */
  bodyBudget: BodyBudget;
  /**
   * Whether the gateway serves, neither draining nor stopping: then requests pipelined on one
   * connection are worked on beside each other.
   */
  isServing(): boolean;
}

/**
 * A routed request's way from its exchange to its call: its body read (refused on its media type,
 * content coding, size or the bodies' budget; 100 Continue when it is wanted), its turn on its
 * connection awaited (HTTP/1.1 pipelining), its deadline counted from then, and the dispatcher.
 */
export class ExchangeIntake {
  readonly #options: ExchangeIntakeOptions;
  /**
   * Once the stop has begun, when a call must end for its answer to go before the stop's grace
   * closes the connections (a second before): a call made later, for a body that came meanwhile or
   * a pipelined request whose turn came, would be cut with its write made and no answer.
   */
  #callsEndBy = Number.POSITIVE_INFINITY;

  constructor(options: ExchangeIntakeOptions) {
    this.#options = options;
  }

  /** The stop has begun: calls end by `time` (ms since the epoch), see #callsEndBy. */
  endCallsBy(time: number): void {
    this.#callsEndBy = time;
  }

  /** Reads the body of a request that has one, then hands the request on in its turn (dispatchInTurn). */
  async readThenDispatch(exchange: Exchange, expectsContinue: boolean, turn: number): Promise<void> {
    const { request, response } = exchange;
    const size = declaredBodySize(request);
    if (size === 0) {
      this.dispatchInTurn(exchange, NO_INPUT, this.#options.connections.of(request.socket), turn);
      return;
    }
    const format = bodyFormat(request.headers['content-type']);
    if (!format) {
      this.#options.answers.answerError(exchange, gatewayErrors.unsupportedMediaType());
      return;
    }
    const contentEncoding = request.headers['content-encoding'];
    if (!bodyIsUnencoded(contentEncoding)) {
      response.setHeader('Accept-Encoding', 'identity');
      this.#options.answers.answerError(
        exchange,
        gatewayErrors.unsupportedContentEncoding(contentEncoding ?? ''),
      );
      return;
    }
    if (size !== 'chunked' && size > this.#options.bodyLimitBytes) {
      // Refused on its declared size, without reading a byte of it.
      this.#options.answers.answerError(exchange, gatewayErrors.bodyTooLarge(this.#options.bodyLimitBytes));
      return;
    }
    if (this.#options.bodyBudget.exhausted) {
      // Refused before a byte of it is read (and before 100 Continue invites it).
      this.#options.answers.answerError(exchange, gatewayErrors.bodiesOverBudget());
      return;
    }
    if (expectsContinue) {
      // An answer queued behind others (pipelining) has no socket yet: a 100 written now would
      // follow its final status on the wire. It goes when the answer reaches the socket, before
      // its final status, even if the body has come meanwhile: Node closes the connection after
      // an answer to Expect: 100-continue that no 100 preceded.
      if (response.socket) response.writeContinue();
      else
        response.once('socket', () => {
          if (!response.headersSent) response.writeContinue();
        });
    }
    // Stopped when the parser fails under it (see SocketAnswers.clientError): then the body never ends.
    const connection = this.#options.connections.of(request.socket);
    const reading = { request, requestId: exchange.requestId, stop: new AbortController() };
    if (connection) connection.readingBody = reading;
    let body: Buffer;
    try {
      body = await readBody(
        request,
        this.#options.bodyLimitBytes,
        reading.stop.signal,
        this.#options.bodyBudget,
      );
    } catch (error) {
      if (error instanceof GatewayError) {
        this.#options.answers.answerError(exchange, error);
        return;
      }
      if (error instanceof BodyTooLargeError || error instanceof BodyBudgetError) {
        // Reading has stopped and the socket is destroyed a little later (see lingerThenClose). The
        // answer says `Connection: close`, so that a client that has sent its whole body does not
        // send its next request on a connection about to go; once it is written, Node's destroy of
        // such a socket is turned into an end of the gateway's side alone (FIN): destroyed at once,
        // it would reset the connection under a client still sending, which then lost the answer.
        // The linger counts from when the answer is written: begun at once, it closed the connection
        // under the answers pipelined before it that were still on their way (a call of over 2 s).
        response.once('close', () => lingerThenClose(request));
        exchange.bodyRead = true;
        const socket = request.socket;
        socket.destroySoon = () => {
          if (socket.writable) socket.end();
        };
        const refusal =
          error instanceof BodyBudgetError
            ? gatewayErrors.bodiesOverBudget()
            : gatewayErrors.bodyTooLarge(this.#options.bodyLimitBytes);
        const retry = refusal.options.retryAfter === true;
        const body = errorBody(exchange.key, refusal.message);
        this.#options.answers.write(response, refusal.httpStatus, body, retry, true, exchange.requestId);
      } else if (!(error instanceof BodyAbortedError)) throw error;
      return;
    } finally {
      if (connection?.readingBody === reading) connection.readingBody = undefined;
    }
    exchange.bodyRead = true;
    if (exchange.gone) return;
    let input: RequestInput;
    try {
      input = bodyInput(format, body, takesBodyField(exchange.route));
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      this.#options.answers.answerError(exchange, error);
      return;
    }
    if (expectsContinue && !response.socket) {
      // Answered while queued behind other answers, it would go without its 100 Continue, and
      // Node closes the connection after such an answer: it is worked on once it has the socket
      // (the 100 is written then, above).
      await reachesSocket(response);
      if (exchange.gone || request.socket.destroyed) return;
    }
    // The call's deadline counts from here: a body that took the client longer than the deadline
    // to send (it has 30 s) left none, and its write was made, then answered 504. During a stop, it
    // ends in time for the answer to go; with no time left, the request is not worked on.
    exchange.deadline = Math.min(Date.now() + this.#options.deadlineMs, this.#callsEndBy);
    if (exchange.deadline <= Date.now()) {
      this.#options.answers.answerError(exchange, gatewayErrors.stopping());
      return;
    }
    this.dispatchInTurn(exchange, input, connection, turn);
  }

  /**
   * Hands a request that has been read to the dispatcher in its turn on its connection (see
   * Connection.mayStart): a client that pipelines gets two of its requests worked on at once, the
   * rest when the answers before them have gone. A request that waited gets its full deadline from
   * the moment its call starts.
   */
  dispatchInTurn(
    exchange: Exchange,
    input: RequestInput,
    connection: Connection | undefined,
    turn: number,
  ): void {
    // Draining or stopping, the answer before it closes the connection: worked on beside that one,
    // a pipelined write would be done and its answer never sent. It waits, and then finds the
    // connection closing, which tells the client it was not processed (RFC 9112, section 9.6).
    const atOnce = this.#options.isServing() && !connection?.closing ? WORKED_AT_ONCE : 1;
    if (connection === undefined || connection.mayStart(turn, atOnce)) {
      if (connection) connection.lastDispatched = Math.max(connection.lastDispatched, turn);
      this.#dispatch(exchange, input);
      return;
    }
    connection.waitTurn(turn, () => {
      // An answer before it closed the connection, or is closing it (Connection: close): this one
      // could never be sent.
      const { socket } = exchange.request;
      if (exchange.gone || socket.destroyed || socket.writableEnded) return;
      // Its full deadline from now, but during a stop one that ends in time for its answer to go
      // (see #callsEndBy), as for a body read meanwhile: with no time left, it is not worked on.
      exchange.deadline = Math.min(Date.now() + this.#options.deadlineMs, this.#callsEndBy);
      if (exchange.deadline <= Date.now()) {
        this.#options.answers.answerError(exchange, gatewayErrors.stopping());
        return;
      }
      connection.lastDispatched = Math.max(connection.lastDispatched, turn);
      this.#dispatch(exchange, input);
    });
  }

  #dispatch(exchange: Exchange, input: RequestInput): void {
    try {
      this.#options.dispatcher.dispatch(exchange, input);
    } catch (error) {
      this.#options.answers.internalError(exchange, error);
    }
  }
}

/**
 * Resolves once an answer queued behind others on its connection (HTTP/1.1 pipelining) has the
 * connection's socket, or has closed (with its connection: see Connection.track).
 */
function reachesSocket(response: ServerResponse): Promise<void> {
  if (response.socket) return Promise.resolve();
  return new Promise((resolve) => {
    const reached = (): void => {
      response.off('socket', reached);
      response.off('close', reached);
      resolve();
    };
    response.once('socket', reached);
    response.once('close', reached);
  });
}

/** Whether a route's body is one field (`body: "tags"`), whose JSON may be a list, a number or a string. */
function takesBodyField(route: Route): boolean {
  return route.serving.some((instance) => instance.plan.route.body.kind === 'field');
}
