import { createServer, type Server } from 'node:http';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Closer, startDistributor, startGateway, waitForRoute } from '../gateway/support/cluster.js';
import { type FakeGoods, startFakeGoods } from '../gateway/support/fake-shop.js';
import { CHROMIUM, type ChromiumProfile, haveChromium, openChromium } from '../helpers/browser.js';

// A browser page on another origin calling the REST API with the headers a page sends (X-Request-Id,
// so every call is preflighted), in Debian's Chromium: what the page can read of each answer.
// Under CI=true a missing browser fails the run (.ci/run installs it).
const browserRequired = process.env.CI === 'true';

if (!haveChromium && !browserRequired) {
  process.stderr.write(
    `cross-origin-page.test.ts: no Chromium at ${CHROMIUM} (apt-get install chromium): not run\n`,
  );
}
if (!haveChromium && browserRequired) {
  throw new Error(`CI=true and no Chromium at ${CHROMIUM}: .ci/run should have installed it`);
}

/** What the page read of one answer, or the error its fetch failed with. */
interface Seen {
  status?: number;
  requestId?: string | null;
  errormessage?: string;
  failed?: string;
}

describe.runIf(haveChromium)('a page on another origin, in a headless Chromium', () => {
  const closer = new Closer();
  let pageServer: Server;
  let browser: ChromiumProfile;
  let page: Page;
  let api: string;
  let goods: FakeGoods;

  beforeAll(async () => {
    pageServer = createServer((_request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/html' });
      response.end('<!doctype html><title>shop page</title>');
    });
    await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
    const pageOrigin = `http://127.0.0.1:${(pageServer.address() as { port: number }).port}`;
    const distributor = (await startDistributor(closer)).address;
    goods = await startFakeGoods(closer, distributor);
    // The API on another origin than the page: localhost, not 127.0.0.1.
    const { gateway, port } = await startGateway(closer, distributor, { corsOrigins: [pageOrigin] });
    await waitForRoute(gateway, 'GET /goods', 1);
    api = `http://localhost:${port}`;
    browser = await openChromium('cors');
    page = browser.page;
    await page.goto(`${pageOrigin}/`);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => pageServer?.close(resolve));
    await closer.closeAll();
  });

  /** A fetch from the page with a request id, so preflighted; what the page could read of it. */
  const fetchFromPage = (method: string, path: string): Promise<Seen> =>
    page.evaluate(
      async ({ url, method }) => {
        try {
          const response = await fetch(url, { method, headers: { 'X-Request-Id': 'from-the-page' } });
          const body = (await response.json()) as { errormessage?: string };
          return {
            status: response.status,
            requestId: response.headers.get('X-Request-Id'),
            errormessage: body.errormessage,
          };
        } catch (error) {
          return { failed: String(error) };
        }
      },
      { url: `${api}${path}`, method },
    );

  it('reads a routed answer and its X-Request-Id', async () => {
    expect(await fetchFromPage('GET', '/goods')).toMatchObject({
      status: 200,
      requestId: 'from-the-page',
      // The fake goods holds none: the book's answer for an empty list.
      errormessage: 'no data',
    });
  });

  it('reads the 404 of a path no route has, and the 405 of a method its path lacks, not "Failed to fetch"', async () => {
    // Their preflights were 404 and a list without the method: the browser failed the fetch.
    expect(await fetchFromPage('GET', '/nope')).toMatchObject({ status: 404, requestId: 'from-the-page' });
    expect(await fetchFromPage('PUT', '/goods')).toMatchObject({ status: 405, requestId: 'from-the-page' });
  });

  it('reads the 405 of a DELETE of /openapi.json, and the 404 of a file the /docs/ page lacks, not "Failed to fetch"', async () => {
    // Their preflights were answered as the document's (GET, HEAD, OPTIONS) and 404.
    expect(await fetchFromPage('DELETE', '/openapi.json')).toMatchObject({
      status: 405,
      requestId: 'from-the-page',
    });
    expect(await fetchFromPage('GET', '/docs/nope.js')).toMatchObject({
      status: 404,
      requestId: 'from-the-page',
    });
    expect(await fetchFromPage('GET', '/openapi.json')).toMatchObject({
      status: 200,
      requestId: 'from-the-page',
    });
  });

  it('writes, with a JSON body (preflighted), and reads the answer: its origin is allowed', async () => {
    const answer = await page.evaluate(async (url) => {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'from the page', category: 'c', price: 1, description: 'd' }),
      });
      return { status: response.status, body: await response.json() };
    }, `${api}/goods`);
    expect(answer).toMatchObject({ status: 200, body: { errorcode: 0 } });
    expect(goods.goods.map((item) => item.name)).toEqual(['from the page']);
  });

  it('reads the 400 of a malformed path, not "Failed to fetch"', async () => {
    // Its preflight was answered 400 as well, which the browser takes for a network error.
    expect(await fetchFromPage('GET', '/goods/%FF')).toMatchObject({
      status: 400,
      requestId: 'from-the-page',
      errormessage: expect.stringContaining('Malformed request path'),
    });
  });
});

describe.runIf(haveChromium)('a page of an origin the gateway does not list, in a headless Chromium', () => {
  const closer = new Closer();
  let pageServer: Server;
  let browser: ChromiumProfile;
  let goods: FakeGoods;
  let api: string;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    goods = await startFakeGoods(closer, distributor);
    // No CORS: the default. A page may still send what needs no preflight: a form, a no-cors fetch.
    const { gateway, port } = await startGateway(closer, distributor);
    await waitForRoute(gateway, 'POST /goods', 1);
    api = `http://localhost:${port}`;
    pageServer = createServer((_request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/html' });
      response.end(
        `<!doctype html><title>another site</title><form id="form" method="POST" action="${api}/goods">` +
          '<input name="name" value="by the form"><input name="category" value="c">' +
          '<input name="price" value="1"><input name="description" value="d"><button id="submit">buy</button></form>',
      );
    });
    await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
    browser = await openChromium('csrf');
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => pageServer?.close(resolve));
    await closer.closeAll();
  });

  it("writes nothing for its form or its no-cors fetch; the gateway's own page still writes", async () => {
    const { page } = browser;
    await page.goto(`http://127.0.0.1:${(pageServer.address() as { port: number }).port}/`);
    await page.evaluate(
      (url) =>
        fetch(url, {
          method: 'POST',
          mode: 'no-cors',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: 'name=by+fetch&category=c&price=1&description=d',
        }).then(() => undefined),
      `${api}/goods`,
    );
    // The form's own button, as a visitor (or the page's script) would press it.
    await Promise.all([page.waitForURL(`${api}/goods`), page.locator('#submit').click()]);
    expect(await page.textContent('body')).toContain('"errorcode":1');
    expect(goods.calls.CreateGoods).toBeUndefined();
    // The /docs/ page's "Try it out" is the gateway's own origin.
    await page.goto(`${api}/docs/`);
    const own = await page.evaluate(() =>
      fetch('../goods', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'name=own+page&category=c&price=1&description=d',
      }).then((response) => response.json()),
    );
    expect(own).toMatchObject({ errorcode: 0 });
    expect(goods.goods.map((item) => item.name)).toEqual(['own page']);
  });
});
