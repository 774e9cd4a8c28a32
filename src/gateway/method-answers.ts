import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AnswerWriter, pushRequestId } from './answer-writer.js';
import { ApiDocs } from './api-docs.js';
import { allowedMethods, Cors } from './cors.js';
import { type GatewayError, gatewayErrors } from './gateway-error.js';
import type { GatewayTelemetry } from './gateway-telemetry.js';
import type { RouteTable } from './route-table.js';

/** What the method answers need of the gateway around them. */
export interface MethodAnswersOptions {
  table: Pick<RouteTable, 'ready' | 'knowsAnyRoute' | 'methodsOf' | 'live'>;
  telemetry: Pick<GatewayTelemetry, 'servesPage'>;
  apiDocs: Pick<ApiDocs, 'has'>;
  cors: Cors | undefined;
  answers: Pick<AnswerWriter, 'fail'>;
  /** Whether the gateway serves, neither draining nor stopping: then answers may keep their connection. */
  isServing(): boolean;
}

/**
 * What the gateway says of the methods a path answers (its routes', or GET for its own pages):
 * OPTIONS as 204 with `Allow` (with the CORS preflight for an allowed origin), 405 with `Allow` for
 * a method the path lacks, and which preflights are answered for every method a route can have.
 */
export class MethodAnswers {
  readonly #options: MethodAnswersOptions;

  constructor(options: MethodAnswersOptions) {
    this.#options = options;
  }

  /**
   * Whether a CORS preflight from an allowed origin is answered for every method a route can have,
   * kept by the browser for no time: before any route is known (the request then gets its 503), or
   * when the request will be refused (a path no route or page has: 404; a method its path lacks: 405). A
   * browser takes anything but a 2xx to its preflight for a network error: the page would see
   * "Failed to fetch", not the answer and its Retry-After.
   */
  letsPreflightThrough(request: IncomingMessage, path: string): boolean {
    const { cors, telemetry, apiDocs, table } = this.#options;
    if (cors?.allowedOrigin(request) === undefined || !Cors.isPreflight(request)) return false;
    // The operators' pages take no CORS (see RequestPipeline's #handle).
    if (telemetry.servesPage(path)) return false;
    // The documentation's paths too: a POST of /openapi.json is 405, a file the page lacks 404.
    if (ApiDocs.owns(path)) {
      return !apiDocs.has(path) || !allowedMethods(['GET']).includes(Cors.requestedMethod(request));
    }
    if (!table.ready || !table.knowsAnyRoute) return true;
    return !allowedMethods(this.methodsOf(path)).includes(Cors.requestedMethod(request));
  }

  /** The methods a path answers: its routes', or GET (and so HEAD) for one of the gateway's pages. */
  methodsOf(path: string): readonly string[] {
    return this.#options.telemetry.servesPage(path) ? ['GET'] : this.#options.table.methodsOf(path);
  }

  /** The methods the gateway answers on some path: its routes', and GET for its own pages. */
  serverMethods(): readonly string[] {
    return ['GET', ...this.#options.table.live().map((route) => route.method)];
  }

  /** 405 with `Allow` for a path that answers other methods, else 404. */
  notRouted(response: ServerResponse, method: string, path: string): GatewayError {
    const methods = this.methodsOf(path);
    if (methods.length === 0) return gatewayErrors.notFound(method, path);
    const allow = allowedMethods(methods).join(', ');
    response.setHeader('Allow', allow);
    return gatewayErrors.methodNotAllowed(method, path, allow);
  }

  /** OPTIONS of a path: {@link answerOptions} with the methods the path answers ({@link methodsOf}). */
  answerOptionsOfPath(
    request: IncomingMessage,
    response: ServerResponse,
    path: string,
    hasBody: boolean,
    requestId: string | undefined,
  ): void {
    this.answerOptions(request, response, path, this.methodsOf(path), hasBody, requestId);
  }

  /**
   * OPTIONS: 204 with `Allow` for a path that answers `methods` (those of its routes, or of the whole
   * gateway for `*`), plus the CORS preflight headers for an allowed origin; 404 when it answers
   * none. The body, if any, is not read.
   */
  answerOptions(
    request: IncomingMessage,
    response: ServerResponse,
    path: string,
    methods: readonly string[],
    hasBody: boolean,
    requestId: string | undefined,
    preflightMaxAgeSeconds?: number,
  ): void {
    const { cors, telemetry } = this.#options;
    if (methods.length === 0) {
      this.#options.answers.fail(
        request,
        response,
        null,
        gatewayErrors.notFound('OPTIONS', path),
        hasBody,
        requestId,
      );
      return;
    }
    const allow = allowedMethods(methods);
    if (cors && Cors.isPreflight(request) && !telemetry.servesPage(path)) {
      cors.preflight(request, response, allow, preflightMaxAgeSeconds);
    }
    // No Content-Length: RFC 9110 (section 8.6) forbids it on a 204, which has no content by definition.
    const headers: (string | number)[] = ['Allow', allow.join(', ')];
    pushRequestId(headers, requestId);
    if (hasBody || !this.#options.isServing()) headers.push('Connection', 'close');
    response.writeHead(204, headers as unknown as string[]);
    response.end();
  }
}
