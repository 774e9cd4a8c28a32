import type { ServerResponse } from 'node:http';
import { type Registry, serveMetrics } from '../common/metrics.js';
import { errorBody } from './envelope.js';
import type { GatewayHealth } from './gateway-health.js';
import { STATUS_PAGE_HTML, STATUS_PAGE_SCRIPT } from './status-page.js';

/**
 * The answers of the operators' pages: `/metrics` from the gateway's registry, `/healthz`, `/readyz`
 * and `/status.json` from its health, and the status page's HTML and script.
 */
export class OperatorPageAnswers {
  readonly #registry: Registry | undefined;
  /** Scrapes at once share one render (see sharedRender): /metrics is on the public port. */
  readonly #renderMetrics: (() => Promise<string>) | undefined;
  readonly #health: Pick<GatewayHealth, 'readiness' | 'status'>;

  constructor(
    registry: Registry | undefined,
    renderMetrics: (() => Promise<string>) | undefined,
    health: Pick<GatewayHealth, 'readiness' | 'status'>,
  ) {
    this.#registry = registry;
    this.#renderMetrics = renderMetrics;
    this.#health = health;
  }

  /** Answers a GET or HEAD of one of the gateway's own pages (see GatewayTelemetry.servesPage). */
  answerPage(response: ServerResponse, path: string, requestId: string | undefined): void {
    // Set beforehand, unlike the shop's answers (see GatewayTelemetry.onRequest): a page is not the hot path.
    if (requestId !== undefined) response.setHeader('X-Request-Id', requestId);
    switch (path) {
      case '/metrics':
        if (this.#registry) serveMetrics(this.#registry, response, this.#renderMetrics);
        else answerJsonText(response, 404, errorBody(null, 'Metrics are off on this gateway (METRICS=off)'));
        return;
      case '/healthz':
        answerJson(response, 200, { status: 'alive' });
        return;
      case '/readyz': {
        const readiness = this.#health.readiness();
        answerJson(response, readiness.ready ? 200 : 503, {
          status: readiness.ready ? 'ready' : 'not ready',
          reasons: readiness.reasons,
        });
        return;
      }
      case '/status.json':
        answerJson(response, 200, this.#health.status());
        return;
      case '/status':
        answerText(response, 'text/html; charset=utf-8', STATUS_PAGE_HTML);
        return;
      case '/status.js':
        answerText(response, 'text/javascript; charset=utf-8', STATUS_PAGE_SCRIPT);
        return;
    }
  }
}

/** The pages change with every request and may say what is wrong: never cached, never sniffed. */
const PAGE_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

function answerJson(response: ServerResponse, httpStatus: number, body: unknown): void {
  answerJsonText(response, httpStatus, Buffer.from(JSON.stringify(body)));
}

function answerJsonText(response: ServerResponse, httpStatus: number, text: Buffer): void {
  response.writeHead(httpStatus, {
    ...PAGE_HEADERS,
    'Content-Type': 'application/json',
    'Content-Length': text.length,
  });
  response.end(response.req.method === 'HEAD' ? undefined : text);
}

function answerText(response: ServerResponse, contentType: string, text: string): void {
  const body = Buffer.from(text);
  response.writeHead(200, { ...PAGE_HEADERS, 'Content-Type': contentType, 'Content-Length': body.length });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
