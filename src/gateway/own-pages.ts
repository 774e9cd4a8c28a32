import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AnswerWriter, pushRequestId } from './answer-writer.js';
import type { ApiDocs } from './api-docs.js';
import { declaredBodySize } from './body-reader.js';
import type { ConnectionTracker } from './connection-tracker.js';
import { allowedMethods, Cors } from './cors.js';
import { gatewayErrors } from './gateway-error.js';
import { DOCUMENTATION_ROUTES, type GatewayTelemetry } from './gateway-telemetry.js';
import type { RequestTelemetry } from './request-telemetry.js';
import type { StatusClients } from './status-clients.js';

/** What the gateway's own pages need of the gateway around them. */
export interface OwnPagesOptions {
  telemetry: Pick<GatewayTelemetry, 'onPageRequest' | 'answerPage'>;
  apiDocs: Pick<ApiDocs, 'answer'>;
  cors: Cors | undefined;
  connections: Pick<ConnectionTracker, 'requestStarted' | 'isRefused'>;
  /** Requests one connection may have in flight at once (see GatewayOptions.maxPipelinedRequests). */
  maxPipelinedRequests: number;
  answers: Pick<AnswerWriter, 'fail'>;
  /** Who may read the status page, which lists every node with its address (status-clients.ts). */
  statusClients: Pick<StatusClients, 'allows'>;
  /** Whether the gateway serves, neither draining nor stopping: then answers may keep their connection. */
  isServing(): boolean;
}

/** The pages that show the registry's nodes with their addresses. */
const STATUS_PAGES: ReadonlySet<string> = new Set(['/status', '/status.json']);

/**
 * The pages the gateway answers itself, outside any route: the operators' (/healthz, /readyz,
 * /metrics, /status: see GatewayTelemetry.servesPage) and the documentation of the REST surface
 * (/openapi.json and /docs: see ApiDocs).
 */
export class OwnPages {
  readonly #options: OwnPagesOptions;

  constructor(options: OwnPagesOptions) {
    this.#options = options;
  }

  /**
   * Answers a GET or HEAD of one of the operators' pages, unless its connection is refused it, or
   * its client the status page (see status-clients.ts).
   */
  answerOperatorPage(request: IncomingMessage, response: ServerResponse, method: string, path: string): void {
    const page = this.#options.telemetry.onPageRequest(request, method, path);
    if (this.#pageAdmitted(request, response, page)) {
      if (STATUS_PAGES.has(path) && !this.#options.statusClients.allows(request.socket.remoteAddress)) {
        const error = gatewayErrors.statusNotForClient();
        this.#options.answers.fail(
          request,
          response,
          null,
          error,
          declaredBodySize(request) !== 0,
          page.requestId,
        );
        return;
      }
      // A page reads no body: with one, close after the answer, as every other answer does
      // (kept alive, Node would read and drop a body of any declared length until the request timeout).
      if (declaredBodySize(request) !== 0) response.setHeader('Connection', 'close');
      this.#options.telemetry.answerPage(response, path, page.requestId);
    }
  }

  /**
   * Counts a request for one of the operators' pages on its connection, as any request is: in the
   * bound on pipelined requests (one write could otherwise queue some 1,700 page answers), and on a
   * connection opened past the limit, refused. False when it was refused.
   */
  #pageAdmitted(request: IncomingMessage, response: ServerResponse, telemetry: RequestTelemetry): boolean {
    const { connections, maxPipelinedRequests, answers } = this.#options;
    const connection = connections.requestStarted(request, response);
    response.once('close', () => {
      telemetry.closed(response);
      connection?.requestEnded();
    });
    if (connections.isRefused(request)) {
      answers.fail(request, response, null, gatewayErrors.tooManyConnections(), true, telemetry.requestId);
      return false;
    }
    if (connection && connection.inFlight > maxPipelinedRequests) {
      const error = gatewayErrors.tooManyPipelined(maxPipelinedRequests);
      answers.fail(request, response, null, error, true, telemetry.requestId);
      return false;
    }
    return true;
  }

  /** Answers a request for the documentation (a path ApiDocs owns), of any method. */
  answerDocs(
    request: IncomingMessage,
    response: ServerResponse,
    method: string,
    path: string,
    telemetry: RequestTelemetry,
    hasBody: boolean,
  ): void {
    const { apiDocs, cors } = this.#options;
    telemetry.route = path === '/openapi.json' ? DOCUMENTATION_ROUTES.document : DOCUMENTATION_ROUTES.page;
    const answer = apiDocs.answer(
      method,
      path,
      request.headers['accept-encoding'],
      request.headers['if-none-match'],
    );
    if (answer.status === 204 && cors && Cors.isPreflight(request)) {
      // A preflight here is answered as on any path (MethodAnswers.answerOptions): without its
      // headers, a page of an allowed origin could not send X-Request-Id with its GET of the document.
      cors.preflight(request, response, allowedMethods(['GET']));
    }
    const headers: (string | number)[] = withVaryKept(response, answer.headers).flat();
    // Not on the 204 to OPTIONS, as in MethodAnswers.answerOptions, nor on a 304, whose length would
    // be the representation's (RFC 9110, section 8.6), not its empty body's.
    if (answer.status !== 204 && answer.status !== 304) headers.push('Content-Length', answer.body.length);
    pushRequestId(headers, telemetry.requestId);
    if (hasBody || !this.#options.isServing()) headers.push('Connection', 'close');
    response.writeHead(answer.status, headers as unknown as string[]);
    response.end(method === 'HEAD' ? undefined : answer.body);
  }
}

/**
 * A page's own headers for writeHead, its `Vary` joined to the one set before (CORS's `Vary:
 * Origin`): writeHead's headers replace those set with setHeader, and the docs' files, kept an hour
 * by caches, would vary by Accept-Encoding alone, their Access-Control-Allow-Origin handed to pages
 * of other origins.
 */
function withVaryKept(
  response: ServerResponse,
  headers: readonly (readonly [string, string])[],
): (readonly [string, string])[] {
  const set = response.getHeader('Vary');
  if (set === undefined) return [...headers];
  return headers.map(([name, value]) =>
    name.toLowerCase() === 'vary' ? ([name, `${String(set)}, ${value}`] as const) : [name, value],
  );
}
