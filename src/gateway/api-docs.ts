import { createHash } from 'node:crypto';
import { GATEWAY_DOCS } from '../common/http-routes.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { ReservedContract } from '../distributor/reserved-contract.js';
import { type ContentCoding, chooseCoding, encode } from './content-coding.js';
import { DocsPage, type PageAnswer } from './docs-page.js';
import { errorBody } from './envelope.js';
import type { GatewayError } from './gateway-error.js';
import { gatewayErrors } from './gateway-error.js';
import { createOpenApiDocument, MAX_DOCUMENT_BYTES } from './openapi.js';
import type { RestOperation } from './rest-operation.js';

/** The REST surface known at one moment: the operations of one route table. */
export interface RestSurface {
  /** The registry revision the route table was built from. */
  readonly revision: number;
  /** An object that is the same for as long as the operations are (the route table's routes). */
  readonly generation: object;
  readonly operations: () => readonly RestOperation[];
}

/** Options of {@link ApiDocs}. */
export interface ApiDocsOptions {
  /** The REST surface now, or undefined before the gateway knows its routes. */
  surface: () => RestSurface | undefined;
  /** The `Retry-After` of a 503, in seconds. */
  retryAfterSeconds: number;
  page?: DocsPage;
  /** Where a document that leaves services out for its size is told of. */
  log?: Logger;
}

/**
 * The codings /openapi.json is served in, by preference: brotli is a little smaller (the shop's
 * document of 35 KB: 4.5 KB, 4.9 KB in gzip).
 */
const DOCUMENT_CODINGS: readonly ContentCoding[] = ['br', 'gzip'];

/** The document of one generation of routes, as JSON, and in each coding asked for so far. */
interface MadeDocument {
  readonly generation: object;
  readonly body: Buffer;
  /** The body's hash: its entity tag, with the coding after it for a compressed one. */
  readonly tag: string;
  /** null: that coding made it no smaller. */
  readonly encoded: Map<ContentCoding, Buffer | null>;
}

/** The methods the gateway's own pages answer. */
const ALLOW = 'GET, HEAD, OPTIONS';

/**
 * The gateway's API documentation, beside the routed paths (which it takes precedence over):
 *
 * - `GET /openapi.json`: the OpenAPI 3.1 document of the routes served at the moment it is asked,
 *   generated from the descriptors the services registered (see openapi.ts), so a service that
 *   registers or leaves changes it at once; 503 before the first route table. In brotli or gzip to
 *   a client that takes one, each compressed once per document.
 * - `GET /docs/`: an API reference page rendering that document (see docs-page.ts).
 *
 * HEAD is answered as GET without the body, OPTIONS with 204 and `Allow`; any other method is 405
 * with `Allow`. Errors carry the book's envelope with a null key: these requests are not routed and
 * take no key.
 */
export class ApiDocs {
  readonly #surface: () => RestSurface | undefined;
  readonly #retryAfter: string;
  readonly #page: DocsPage;
  readonly #log: Logger;
  /**
   * The last document made, for its surface's generation: a registered descriptor set of 115 KB
   * (64 GET routes of a message of 5,000 fields, each field a query parameter of each) makes one of
   * 1.8 MB (24 MB before operations listed at most 256 query parameters) in a tenth of a second of
   * the event loop, which any client could otherwise ask for again and again.
   */
  #made: MadeDocument | undefined;

  constructor(options: ApiDocsOptions) {
    this.#surface = options.surface;
    this.#retryAfter = String(options.retryAfterSeconds);
    this.#page = options.page ?? new DocsPage();
    this.#log = options.log ?? silentLogger();
  }

  /** Whether a path is one of the documentation's: /openapi.json, /docs and below. */
  static owns(path: string): boolean {
    const folder = `/${GATEWAY_DOCS.folder}`;
    return path === GATEWAY_DOCS.document || path === folder || path.startsWith(`${folder}/`);
  }

  /** Whether one of the paths {@link ApiDocs.owns} is there: the document, or a file of the page. */
  has(path: string): boolean {
    return path === GATEWAY_DOCS.document || this.#page.answer(path, false) !== undefined;
  }

  /**
   * The answer to a request for one of the paths {@link ApiDocs.owns}, given its Accept-Encoding
   * and, for the document, its If-None-Match.
   */
  answer(method: string, path: string, acceptEncoding: string | undefined, ifNoneMatch?: string): PageAnswer {
    if (method === 'OPTIONS') {
      if (!this.has(path)) return this.#error(gatewayErrors.notFound(method, path));
      return { status: 204, headers: [['Allow', ALLOW]], body: Buffer.alloc(0) };
    }
    if (method !== 'GET' && method !== 'HEAD') {
      return {
        status: 405,
        headers: [
          ['Content-Type', 'application/json'],
          ['Allow', ALLOW],
        ],
        body: errorBody(null, gatewayErrors.methodNotAllowed(method, path, ALLOW).message),
      };
    }
    if (path === '/openapi.json') return this.#document(acceptEncoding, ifNoneMatch);
    const page = this.#page.answer(path, chooseCoding(acceptEncoding, ['gzip']) === 'gzip');
    return page ?? this.#error(gatewayErrors.notFound(method, path));
  }

  #document(acceptEncoding: string | undefined, ifNoneMatch: string | undefined): PageAnswer {
    const surface = this.#surface();
    if (!surface) return this.#error(gatewayErrors.notReady());
    if (this.#made?.generation !== surface.generation) {
      const document = createOpenApiDocument(surface.operations(), {
        version: `revision ${surface.revision}`,
        // The distributor lets only their component register these: their types are the contract's.
        pinnedServices: ReservedContract.ofShop().services,
      });
      const leftOut = document['x-left-out-services'];
      if (leftOut) {
        this.#log.warn(
          { event: 'openapi-services-left-out', services: leftOut, revision: surface.revision },
          `/openapi.json leaves out the operations of ${leftOut.join(', ')}: the document would be over ${MAX_DOCUMENT_BYTES} bytes (their routes are served all the same)`,
        );
      }
      const body = Buffer.from(JSON.stringify(document));
      this.#made = {
        generation: surface.generation,
        body,
        tag: createHash('sha256').update(body).digest('base64url').slice(0, 22),
        encoded: new Map(),
      };
    }
    const made = this.#made;
    const coding = chooseCoding(acceptEncoding, DOCUMENT_CODINGS);
    let encoded: Buffer | null | undefined;
    if (coding) {
      encoded = made.encoded.get(coding);
      if (encoded === undefined) {
        // Once per generation and coding: a document of megabytes takes a while to compress.
        encoded = encode(made.body, coding) ?? null;
        made.encoded.set(coding, encoded);
      }
    }
    const sentCoding = coding && encoded ? coding : undefined;
    // One tag per representation: the gzipped bytes are not the brotli ones (RFC 9110, 8.8.3.3).
    const etag = `"${made.tag}${sentCoding ? `-${sentCoding}` : ''}"`;
    const caching: [string, string][] = [
      ['ETag', etag],
      // Every answer names it, the one not compressed too: a cache must not hand it to a client
      // that asked otherwise.
      ['Vary', 'Accept-Encoding'],
      // Live: the next request may see another set of routes; with the tag, asking again is cheap.
      ['Cache-Control', 'no-cache'],
    ];
    if (ifNoneMatch !== undefined && matchesAny(ifNoneMatch, etag)) {
      return { status: 304, headers: caching, body: Buffer.alloc(0) };
    }
    return {
      status: 200,
      headers: [
        ['Content-Type', 'application/json'],
        ...(sentCoding ? [['Content-Encoding', sentCoding] as [string, string]] : []),
        ...caching,
        // Its text is partly the services' authors' (their proto comments): never read as a page.
        ['X-Content-Type-Options', 'nosniff'],
      ],
      body: (sentCoding && encoded) || made.body,
    };
  }

  #error(error: GatewayError): PageAnswer {
    return {
      status: error.httpStatus,
      headers: [
        ['Content-Type', 'application/json'],
        ...(error.options.retryAfter ? [['Retry-After', this.#retryAfter] as [string, string]] : []),
      ],
      body: errorBody(null, error.message),
    };
  }
}

/**
 * Whether an If-None-Match header names the tag, or is `*`: its weak comparison (RFC 9110, section
 * 13.1.2), in which `W/"x"` matches `"x"`.
 */
function matchesAny(header: string, etag: string): boolean {
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || (tag.startsWith('W/') ? tag.slice(2) : tag) === etag;
  });
}
