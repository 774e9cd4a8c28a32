import { create } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import type { OpenApiDocument } from '../../src/gateway/openapi.js';
import { MAX_COMMENT_LENGTH } from '../../src/gateway/proto-comments.js';
import {
  Closer,
  startDistributor,
  startGateway,
  startService,
  waitForRoute,
} from '../gateway/support/cluster.js';
import { descriptorSetOf, field, httpOptions, message, Type } from '../gateway/support/descriptors.js';
import { startFakeGoods } from '../gateway/support/fake-shop.js';
import { CHROMIUM, CHROMIUM_ARGS, haveChromium } from '../helpers/browser.js';
import { http } from '../helpers/http.js';

// The API page when a service outside the contract (any node that may register) writes its proto
// comments against it: the page renders them as Markdown, for every visitor. Under CI=true a
// missing browser fails the run, as in docs-page.test.ts.
if (!haveChromium && process.env.CI === 'true') throw new Error(`CI=true and no Chromium at ${CHROMIUM}`);

/** 120 KB that Markdown's emphasis rules take quadratic time over (20 s for 60 KB, uncut). */
const SLOW_MARKDOWN = '*_a'.repeat(40_000);
const HTML = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`;

/**
 * `GET /hostile`, of a service whose comment (its operations' tag, shown at once) is SLOW_MARKDOWN,
 * as is its method's after some HTML.
 */
function hostileFile() {
  return create(FileDescriptorProtoSchema, {
    name: 'test/hostile.proto',
    package: 'test.hostile.v1',
    syntax: 'proto3',
    messageType: [message('Thing', [field('id', 1, Type.STRING)])],
    service: [
      {
        name: 'HostileService',
        method: [
          {
            name: 'Get',
            inputType: '.test.hostile.v1.Thing',
            outputType: '.test.hostile.v1.Thing',
            options: httpOptions('GET /hostile', { envelope: ['id'] }),
          },
        ],
      } as never,
    ],
    sourceCodeInfo: {
      location: [
        { path: [6, 0], span: [0, 0, 0], leadingComments: SLOW_MARKDOWN },
        // The method's comment is the operation's description, shown when it is opened.
        { path: [6, 0, 2, 0], span: [0, 0, 0], leadingComments: `${HTML}\n\n${SLOW_MARKDOWN}` },
      ],
    } as never,
  });
}

describe.runIf(haveChromium)('the API page with a hostile service registered', () => {
  const closer = new Closer();
  let port: number;
  let browser: Browser;

  beforeAll(async () => {
    const { address } = await startDistributor(closer);
    await startFakeGoods(closer, address);
    await startService(closer, {
      distributor: address,
      name: 'hostile',
      definition: { Get: bytesMethod('/test.hostile.v1.HostileService/Get') },
      implementation: {
        Get: (_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) =>
          callback(null, Buffer.alloc(0)),
      },
      descriptorSet: descriptorSetOf(hostileFile()),
    });
    const started = await startGateway(closer, address);
    port = started.port;
    await waitForRoute(started.gateway, 'GET /goods', 1);
    await waitForRoute(started.gateway, 'GET /hostile', 1);
    browser = closer.add(
      await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS] }),
      (launched) => launched.close(),
    );
  }, 30_000);
  afterAll(() => closer.closeAll());

  it('cuts a long comment, and the page stays usable: it shows and opens every operation, runs none of its HTML', async () => {
    const document = JSON.parse((await http(port, 'GET', '/openapi.json')).body) as OpenApiDocument;
    const tag = document.tags.find((each) => each.name === 'test.hostile.v1.HostileService');
    expect(tag?.description).toBe(`${SLOW_MARKDOWN.slice(0, MAX_COMMENT_LENGTH)}…`);
    expect(String(document.paths['/hostile']?.get?.description).length).toBe(MAX_COMMENT_LENGTH + 1);

    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`http://127.0.0.1:${port}/docs/`);
    // Uncut, the tag's description alone held the page for about a minute.
    const goods = page.locator('.opblock-summary-path[data-path="/goods"]').first();
    await goods.waitFor({ timeout: 20_000 });
    await page.locator('.opblock-summary-path[data-path="/hostile"]').click({ timeout: 20_000 });
    await page.locator('.opblock-get .opblock-description-wrapper').first().waitFor({ timeout: 20_000 });
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(errors).toEqual([]);
  }, 90_000);
});
