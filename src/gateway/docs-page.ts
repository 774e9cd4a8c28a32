import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

/** An answer the gateway writes as it is: status, headers (Content-Length aside) and body. */
export interface PageAnswer {
  readonly status: number;
  readonly headers: readonly [name: string, value: string][];
  readonly body: Buffer;
}

/**
 * The policy of every page under /docs: the page's own files only, nothing from elsewhere (no CDN,
 * no inline script or style), and it may talk to the gateway alone. `data:` images are the icons
 * that swagger-ui's stylesheet embeds.
 */
export const DOCS_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The page: swagger-ui's own index page, without its top bar and pointed at the document beside it.
 * Every URL is relative, so the page works behind a proxy that moves the gateway under a prefix.
 */
const INDEX_HTML = `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>grpc-shop API</title>
    <link rel="stylesheet" type="text/css" href="swagger-ui.css">
    <link rel="stylesheet" type="text/css" href="index.css">
    <link rel="icon" type="image/png" href="favicon-32x32.png" sizes="32x32">
    <link rel="icon" type="image/png" href="favicon-16x16.png" sizes="16x16">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
`;

/** No validator badge (it would ask a public server), no top bar; the document is ../openapi.json. */
const INITIALIZER_JS = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: new URL('../openapi.json', window.location.href).href,
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
`;

/** The files of swagger-ui-dist that the page uses, with their types. */
const DIST_FILES: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'index.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};

interface PageFile {
  readonly type: string;
  readonly body: Buffer;
  /** The body gzipped, when that makes it smaller. */
  readonly gzipped: Buffer | undefined;
  readonly cacheControl: string;
}

/** Options of {@link DocsPage}. */
export interface DocsPageOptions {
  /** The folder of swagger-ui-dist's files. Default: the installed package's. */
  distDir?: string;
}

/**
 * The API reference page at /docs/: swagger-ui, as the `swagger-ui-dist` package installs it,
 * rendering the gateway's live /openapi.json, with "Try it out" calling the gateway itself.
 *
 * Only the files the page needs are served, each read (and gzipped) once, on its first request, so
 * a gateway that nobody asks for its page never reads them. /docs redirects to /docs/, so that the
 * page's relative URLs resolve below it.
 */
export class DocsPage {
  readonly #files = new Map<string, PageFile>();
  readonly #distDir: string | undefined;

  constructor(options: DocsPageOptions = {}) {
    this.#distDir = options.distDir;
  }

  /**
   * The answer to a GET of `path` (from "/docs" on), or undefined when no such file is part of the
   * page. Throws when swagger-ui-dist is not installed.
   */
  answer(path: string, acceptsGzip: boolean): PageAnswer | undefined {
    if (path === '/docs') {
      return { status: 301, headers: [['Location', 'docs/']], body: Buffer.alloc(0) };
    }
    if (!path.startsWith('/docs/')) return undefined;
    const name = path.slice('/docs/'.length) || 'index.html';
    const file = this.#file(name);
    if (!file) return undefined;
    const gzip = acceptsGzip && file.gzipped !== undefined;
    return {
      status: 200,
      headers: [
        ['Content-Type', file.type],
        ['Cache-Control', file.cacheControl],
        ['Content-Security-Policy', DOCS_CONTENT_SECURITY_POLICY],
        ['X-Content-Type-Options', 'nosniff'],
        ['Vary', 'Accept-Encoding'],
        ...(gzip ? [['Content-Encoding', 'gzip'] as [string, string]] : []),
      ],
      body: gzip ? file.gzipped! : file.body,
    };
  }

  #file(name: string): PageFile | undefined {
    let file = this.#files.get(name);
    if (file) return file;
    if (name === 'index.html') {
      file = pageFile('text/html; charset=utf-8', Buffer.from(INDEX_HTML), 'no-cache');
    } else if (name === 'swagger-initializer.js') {
      file = pageFile('text/javascript; charset=utf-8', Buffer.from(INITIALIZER_JS), 'no-cache');
    } else {
      const type = Object.hasOwn(DIST_FILES, name) ? DIST_FILES[name] : undefined;
      if (!type) return undefined;
      // The package's files change only when it is upgraded, which restarts the gateway.
      file = pageFile(type, readFileSync(join(this.#distDirOrThrow(), name)), 'public, max-age=3600');
    }
    this.#files.set(name, file);
    return file;
  }

  #distDirOrThrow(): string {
    return this.#distDir ?? swaggerUiDistDir();
  }
}

let installedDistDir: string | undefined;

/** The folder of the installed swagger-ui-dist package. */
function swaggerUiDistDir(): string {
  if (!installedDistDir) {
    try {
      installedDistDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
    } catch (error) {
      throw new Error(
        `the swagger-ui-dist package is not installed (npm install): ${(error as Error).message}`,
      );
    }
  }
  return installedDistDir;
}

function pageFile(type: string, body: Buffer, cacheControl: string): PageFile {
  const gzipped = type.startsWith('image/') ? undefined : gzipSync(body);
  return {
    type,
    body,
    gzipped: gzipped && gzipped.length < body.length ? gzipped : undefined,
    cacheControl,
  };
}
