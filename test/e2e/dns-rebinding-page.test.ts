import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminServer, startAdminServer } from '../../src/common/admin-server.js';
import { silentLogger } from '../../src/common/logger.js';
import { createMetricsRegistry } from '../../src/common/metrics.js';
import { serviceSettings } from '../../src/services/common/service-config.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { Closer, startDistributor, startGateway, waitForRoute } from '../gateway/support/cluster.js';
import { type FakeGoods, startFakeGoods } from '../gateway/support/fake-shop.js';
import { CHROMIUM, type ChromiumProfile, haveChromium, openChromium } from '../helpers/browser.js';

// DNS rebinding in Debian's Chromium: a page on rebound.test whose name, once the page is loaded,
// resolves to 127.0.0.1, where the gateway and a component's metrics port listen. Chromium's
// --host-resolver-rules makes the name resolve there from the start: the page is then of origin
// http://rebound.test:<port>, and its fetches are same-origin (Sec-Fetch-Site: same-origin, Host
// rebound.test:<port>), as an attacker's page after the rebinding. Under CI=true a missing browser
// fails the run (.ci/run installs it).
const browserRequired = process.env.CI === 'true';

if (!haveChromium && !browserRequired) {
  process.stderr.write(
    `dns-rebinding-page.test.ts: no Chromium at ${CHROMIUM} (apt-get install chromium): not run\n`,
  );
}
if (!haveChromium && browserRequired) {
  throw new Error(`CI=true and no Chromium at ${CHROMIUM}: .ci/run should have installed it`);
}

const REBOUND = 'rebound.test';
const goodsSettings = serviceSettings(goodsService);

/** What a page read of one same-origin fetch. */
interface Seen {
  status: number;
  body: string;
}

/** A fetch from the page to its own origin; what the page could read of the answer. */
const fetchFromPage = (page: Page, path: string, method = 'GET'): Promise<Seen> =>
  page.evaluate(
    async ({ path, method }) => {
      const response = await fetch(path, {
        method,
        ...(method === 'POST'
          ? {
              headers: { 'Content-Type': 'application/json' },
              body: JSON.stringify({ name: 'by the page', category: 'c', price: 1, description: 'd' }),
            }
          : {}),
      });
      return { status: response.status, body: await response.text() };
    },
    { path, method },
  );

describe.runIf(haveChromium)('a page whose name is rebound to the gateway, in a headless Chromium', () => {
  const closer = new Closer();
  let browser: ChromiumProfile;
  let goods: FakeGoods;
  let port: number;
  let admin: AdminServer;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    goods = await startFakeGoods(closer, distributor);
    const started = await startGateway(closer, distributor);
    port = started.port;
    await waitForRoute(started.gateway, 'POST /goods', 1);
    // A component's metrics port, as goods starts it.
    admin = (await startAdminServer({
      registry: createMetricsRegistry(),
      host: '127.0.0.1',
      port: 0,
      log: silentLogger(),
      required: true,
      settings: { port: goodsSettings.metricsPort, host: goodsSettings.host },
      allowedHostsSetting: goodsSettings.metricsAllowedHosts,
    }))!;
    browser = await openChromium('rebinding', [`--host-resolver-rules=MAP ${REBOUND} 127.0.0.1`]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await admin?.stop();
    await closer.closeAll();
  });

  it('is refused every request to the gateway, shown the message, and writes nothing; by 127.0.0.1 the gateway answers', async () => {
    const { page } = browser;
    // The page itself: opened by that name, the gateway says why it does not answer.
    const opened = await page.goto(`http://${REBOUND}:${port}/status`);
    expect(opened?.status()).toBe(421);
    expect(await page.textContent('body')).toContain('--allowed-hosts (GATEWAY_ALLOWED_HOSTS)');
    // Its same-origin reads and writes.
    for (const [method, path] of [
      ['GET', '/goods'],
      ['GET', '/status.json'],
      ['GET', '/metrics'],
      ['POST', '/goods'],
    ] as const) {
      const seen = await fetchFromPage(page, path, method);
      expect(seen.status, `${method} ${path}`).toBe(421);
      expect(JSON.parse(seen.body), `${method} ${path}`).toMatchObject({
        errorcode: 1,
        errormessage: expect.stringContaining('--allowed-hosts'),
      });
    }
    expect(goods.calls).toEqual({});
    // The same page by IP address: the gateway's own origin, which reads and writes.
    await page.goto(`http://127.0.0.1:${port}/docs/`);
    expect(await fetchFromPage(page, '/goods')).toMatchObject({ status: 200 });
    expect(await fetchFromPage(page, '/goods', 'POST')).toMatchObject({ status: 200 });
    expect(goods.goods.map((item) => item.name)).toEqual(['by the page']);
  });

  it("cannot read a component's metrics port by that name; by 127.0.0.1 the page reads it", async () => {
    const { page } = browser;
    const opened = await page.goto(`http://${REBOUND}:${admin.port}/metrics`);
    expect(opened?.status()).toBe(421);
    expect(await page.textContent('body')).toContain('--metrics-allowed-hosts (GOODS_METRICS_ALLOWED_HOSTS)');
    // A script of that origin reading it, as a rebinding page does: over plain HTTP, Chromium sends
    // it with neither Sec-Fetch-Site nor Origin, as a scraper's.
    const seen = await fetchFromPage(page, '/metrics');
    expect(seen.status).toBe(421);
    expect(seen.body).toContain('DNS rebinding');
    await page.goto(`http://127.0.0.1:${admin.port}/metrics`);
    // The registry of this test holds no metric: the text is empty, but it is the metrics'.
    expect(await fetchFromPage(page, '/metrics')).toMatchObject({
      status: 200,
      body: expect.not.stringContaining('misdirected'),
    });
  });
});
