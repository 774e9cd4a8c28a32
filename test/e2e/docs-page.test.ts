import { createServer, request, type Server } from 'node:http';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { OpenApiDocument } from '../../src/gateway/openapi.js';
import { CHROMIUM, type ChromiumProfile, haveChromium, openChromium } from '../helpers/browser.js';
import { send } from '../helpers/http.js';
import { type Shop, servingCount, startShop } from './support/shop.js';

// The API page as a person sees it: Debian's Chromium, headless, driven by playwright-core, on a
// real shop. Under CI=true a missing browser fails the run (.ci/run installs it); elsewhere the
// test says why it does not run.
const haveBrowser = haveChromium;
const browserRequired = process.env.CI === 'true';

const BOOK_OPERATIONS = [
  'POST /members',
  'GET /members',
  'DELETE /members',
  'POST /goods',
  'GET /goods',
  'DELETE /goods',
  'POST /purchases',
  'GET /purchases',
];

if (!haveBrowser && !browserRequired) {
  process.stderr.write(`docs-page.test.ts: no Chromium at ${CHROMIUM} (apt-get install chromium): not run\n`);
}
if (!haveBrowser && browserRequired) {
  throw new Error(`CI=true and no Chromium at ${CHROMIUM}: .ci/run should have installed it`);
}

// Each test loads the whole Swagger UI page in Chromium and clicks through it: beside another test
// file on two loaded cores, the prefix test outran the default 30 s once (a full CI=true run; it
// passed alone 3 of 3), as docs-page-hostile's would; the bound is for a hang, not a speed.
describe.runIf(haveBrowser)('the API page in a headless Chromium', { timeout: 90_000 }, () => {
  let shop: Shop;
  let browser: ChromiumProfile;
  let context: BrowserContext;
  let page: Page;
  /** What the page did that it must not: requests elsewhere, CSP violations, errors. */
  const strayRequests: string[] = [];
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    shop = await startShop({ kind: 'sqlite' });
    for (const path of ['/goods', '/members', '/purchases']) {
      await vi.waitFor(() => expect(servingCount(shop.gateway, 'GET', path)).toBe(1));
    }
    browser = await openChromium('docs');
    ({ context, page } = browser);
    const origin = new URL(shop.gatewayUrl).origin;
    page.on('request', (request) => {
      const url = request.url();
      if (!url.startsWith('data:') && new URL(url).origin !== origin) strayRequests.push(url);
    });
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(error.message));
    await page.addInitScript(
      "document.addEventListener('securitypolicyviolation', (event) => " +
        "console.error('CSP violation: ' + event.violatedDirective + ' ' + event.blockedURI));",
    );
  });
  afterAll(async () => {
    await browser?.close();
    await shop?.stop();
  });

  it('shows every documented operation, the eight of the book among them, all from the gateway itself', async () => {
    const document = JSON.parse((await send(`${shop.gatewayUrl}/openapi.json`)).body) as OpenApiDocument;
    const documented = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented).toEqual(expect.arrayContaining(BOOK_OPERATIONS));

    await page.goto(`${shop.gatewayUrl}/docs`);
    expect(page.url()).toBe(`${shop.gatewayUrl}/docs/`);
    await page
      .locator('.opblock')
      .nth(documented.length - 1)
      .waitFor();
    const shown: string[] = [];
    for (const block of await page.locator('.opblock').all()) {
      const method = await block.locator('.opblock-summary-method').innerText();
      const path = await block.locator('.opblock-summary-path').getAttribute('data-path');
      shown.push(`${method} ${path}`);
    }
    expect(shown.sort()).toEqual([...documented].sort());
    await expect.poll(() => page.locator('.info .title').innerText()).toContain('grpc-shop gateway');
    expect(strayRequests).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });

  it("tries GET /goods from the page and shows the book's envelope", async () => {
    const created = await send(`${shop.gatewayUrl}/goods`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'test Goods', category: 'tests', price: 1000, description: 'test' }),
    });
    expect(created.body).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success"\}$/);

    if (!page.url().endsWith('/docs/')) await page.goto(`${shop.gatewayUrl}/docs/`);
    const listGoods = page
      .locator('.opblock-get')
      .filter({ has: page.locator('.opblock-summary-path[data-path="/goods"]') });
    await listGoods.locator('.opblock-summary').first().click();
    await listGoods.getByRole('button', { name: 'Try it out' }).click();
    await listGoods.getByRole('button', { name: 'Execute' }).click();
    const live = listGoods.locator('.live-responses-table');
    await live.waitFor();
    expect(await live.locator('tr.response .response-col_status').first().innerText()).toBe('200');
    expect(await listGoods.locator('.request-url pre').innerText()).toBe(`${shop.gatewayUrl}/goods`);
    const body = JSON.parse(
      await live.locator('tr.response .response-col_description pre').first().innerText(),
    ) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['key', 'errorcode', 'errormessage', 'results']);
    expect(body).toEqual({
      key: expect.any(Number),
      errorcode: 0,
      errormessage: 'success',
      results: [{ id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' }],
    });
    expect(strayRequests).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });

  it('behind a proxy that serves the gateway under a prefix, tries GET /goods there', async () => {
    // /api/X on the proxy is X on the gateway; anything else is the proxy's own 404.
    const gateway = new URL(shop.gatewayUrl);
    const proxy: Server = createServer((incoming, outgoing) => {
      if (!incoming.url?.startsWith('/api/')) {
        outgoing.writeHead(404, { 'Content-Type': 'text/plain' });
        outgoing.end(`not under /api/: ${incoming.url}`);
        return;
      }
      const upstream = request(
        {
          host: gateway.hostname,
          port: gateway.port,
          path: incoming.url.slice('/api'.length),
          method: incoming.method,
          headers: incoming.headers,
        },
        (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      incoming.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const prefixed = `http://127.0.0.1:${(proxy.address() as { port: number }).port}/api`;
    const own = await context.newPage();
    try {
      await own.goto(`${prefixed}/docs/`);
      const listGoods = own
        .locator('.opblock-get')
        .filter({ has: own.locator('.opblock-summary-path[data-path="/goods"]') });
      await listGoods.locator('.opblock-summary').first().click();
      await listGoods.getByRole('button', { name: 'Try it out' }).click();
      await listGoods.getByRole('button', { name: 'Execute' }).click();
      const live = listGoods.locator('.live-responses-table');
      await live.waitFor();
      // Without a server relative to the document, the page called /goods on the proxy (its 404).
      expect(await listGoods.locator('.request-url pre').innerText()).toBe(`${prefixed}/goods`);
      expect(await live.locator('tr.response .response-col_status').first().innerText()).toBe('200');
    } finally {
      await own.close();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});
