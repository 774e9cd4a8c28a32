import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import { DOCS_CONTENT_SECURITY_POLICY } from '../../src/gateway/docs-page.js';
import type { OpenApiDocument } from '../../src/gateway/openapi.js';
import { http, httpJson } from '../helpers/http.js';
import { Closer, startDistributor, startGateway, startService, waitForRoute } from './support/cluster.js';
import { descriptorSetOf, field, httpOptions, message, registryOf, Type } from './support/descriptors.js';
import { startFakeGoods, startFakeMembers, startFakePurchases } from './support/fake-shop.js';
import { answerSchema, errorSchema, expectValidOpenApi, schemaValidator } from './support/openapi.js';

/**
 * A service of another package whose message is named like the shop's (`test.other.v1.Goods`) and
 * has a field named `__proto__`, legal in proto: `POST /other-goods` (body `*`) echoes it.
 */
function otherGoodsFile() {
  return create(FileDescriptorProtoSchema, {
    name: 'test/other-goods.proto',
    package: 'test.other.v1',
    syntax: 'proto3',
    messageType: [
      message('Goods', [field('__proto__', 1, Type.STRING), field('label', 2, Type.STRING)]),
      message('Echoed', [field('item', 1, Type.MESSAGE, { typeName: '.test.other.v1.Goods' })]),
    ],
    service: [
      {
        name: 'OtherGoodsService',
        method: [
          {
            name: 'Echo',
            inputType: '.test.other.v1.Goods',
            outputType: '.test.other.v1.Echoed',
            options: httpOptions('POST /other-goods', { body: '*', envelope: ['item'] }),
          },
        ],
      } as never,
    ],
  });
}

async function startOtherGoods(closer: Closer, distributor: string): Promise<void> {
  const file = otherGoodsFile();
  const registry = registryOf(file);
  const Goods = registry.getMessage('test.other.v1.Goods')!;
  const Echoed = registry.getMessage('test.other.v1.Echoed')!;
  await startService(closer, {
    distributor,
    name: 'other-goods',
    definition: {
      Echo: {
        path: '/test.other.v1.OtherGoodsService/Echo',
        requestStream: false,
        responseStream: false,
        requestSerialize: (value: Parameters<typeof toBinary>[1]) => Buffer.from(toBinary(Goods, value)),
        requestDeserialize: (bytes: Buffer) => fromBinary(Goods, bytes),
        responseSerialize: (value: Parameters<typeof toBinary>[1]) => Buffer.from(toBinary(Echoed, value)),
        responseDeserialize: (bytes: Buffer) => fromBinary(Echoed, bytes),
      },
    },
    implementation: {
      Echo: (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) =>
        callback(null, create(Echoed, { item: call.request } as never)),
    },
    descriptorSet: descriptorSetOf(file),
  });
}

/**
 * A service outside the shop's contract (so any name may register it) that defines a message of
 * the contract's own full name, `shop.v1.Goods`, with fields and a comment of its own, and answers it
 * on `GET /aaa`: a path that sorts before `/goods`.
 */
function hijackingFile() {
  return create(FileDescriptorProtoSchema, {
    name: 'test/hijack.proto',
    package: 'shop.v1',
    syntax: 'proto3',
    messageType: [
      message('Goods', [field('card_number', 1, Type.STRING)]),
      message('Hijack', [field('item', 1, Type.MESSAGE, { typeName: '.shop.v1.Goods' })]),
    ],
    service: [
      {
        name: 'HijackService',
        method: [
          {
            name: 'Get',
            inputType: '.shop.v1.Hijack',
            outputType: '.shop.v1.Hijack',
            options: httpOptions('GET /aaa', { envelope: ['item'] }),
          },
        ],
      } as never,
    ],
    sourceCodeInfo: {
      location: [
        { path: [4, 0], span: [0, 0, 0], leadingComments: ' Send your card number to evil.example.' },
      ],
    } as never,
  });
}

async function startHijacker(closer: Closer, distributor: string): Promise<void> {
  await startService(closer, {
    distributor,
    name: 'hijacker',
    definition: { Get: bytesMethod('/shop.v1.HijackService/Get') },
    implementation: {
      Get: (_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) =>
        callback(null, Buffer.alloc(0)),
    },
    descriptorSet: descriptorSetOf(hijackingFile()),
  });
}

const distDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** The operations of a document, as "METHOD /path". */
function operations(document: OpenApiDocument): string[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
  );
}

async function openApi(port: number): Promise<OpenApiDocument> {
  const result = await http(port, 'GET', '/openapi.json');
  expect(result.status).toBe(200);
  expect(result.headers['content-type']).toBe('application/json');
  expect(result.headers['cache-control']).toBe('no-cache');
  return JSON.parse(result.body) as OpenApiDocument;
}

/** GET with raw bytes back (the helpers decode the body as UTF-8 text). */
function getBytes(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
      );
      response.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

describe('the live OpenAPI document and the API page on the gateway', () => {
  const shared = new Closer();
  const perTest = new Closer();
  let distributor: string;

  beforeAll(async () => {
    distributor = (await startDistributor(shared)).address;
    await startFakeGoods(shared, distributor);
    await startFakeMembers(shared, distributor);
  });
  afterEach(() => perTest.closeAll());
  afterAll(() => shared.closeAll());

  async function gateway(): Promise<{
    port: number;
    gateway: Awaited<ReturnType<typeof startGateway>>['gateway'];
  }> {
    const started = await startGateway(perTest, distributor);
    await waitForRoute(started.gateway, 'GET /goods', 1);
    await waitForRoute(started.gateway, 'GET /members', 1);
    return started;
  }

  it('documents the routes registered now, and follows registrations without a restart', async () => {
    const { port, gateway: started } = await gateway();
    const before = await openApi(port);
    await expectValidOpenApi(before);
    // The proto comments travelled in the descriptor sets the services registered.
    expect(before.tags[0]).toEqual({ name: 'shop.v1.GoodsService', description: 'The goods catalogue.' });
    expect(before.paths['/goods']!.get!.description).toMatch(/^Lists the catalogue in id order/);
    // Exact: the distributor is this file's own, so only the services it starts register.
    expect(operations(before)).toEqual([
      'GET /goods',
      'POST /goods',
      'DELETE /goods',
      'DELETE /goods/{id}',
      'GET /members',
      'POST /members',
      'DELETE /members',
    ]);

    const purchases = await startFakePurchases(perTest, distributor, new Date());
    await waitForRoute(started, 'GET /purchases', 1);
    const joined = await openApi(port);
    await expectValidOpenApi(joined);
    expect(operations(joined)).toEqual([
      ...operations(before),
      'GET /purchases',
      'POST /purchases',
      'GET /purchases/{userid}',
    ]);
    expect(joined.info.version).not.toBe(before.info.version);
    expect(joined.tags.map((tag) => tag.name)).toContain('shop.v1.PurchasesService');

    await purchases.stop();
    await waitForRoute(started, 'GET /purchases', 0);
    expect(operations(await openApi(port))).toEqual(operations(before));
  });

  it("documents a service of another package beside the shop's: its like-named message apart, a __proto__ field in it", async () => {
    const { port, gateway: started } = await gateway();
    const before = await openApi(port);
    await startOtherGoods(perTest, distributor);
    await waitForRoute(started, 'POST /other-goods', 1);
    const document = await openApi(port);
    await expectValidOpenApi(document);
    // The shop's operations and schemas are documented as they were.
    const schemas = document.components.schemas;
    expect(schemas['shop.v1.Goods']).toEqual(before.components.schemas['shop.v1.Goods']);
    for (const path of Object.keys(before.paths)) expect(document.paths[path]).toEqual(before.paths[path]);
    const other = schemas['test.other.v1.Goods'] as { properties: object };
    expect(Object.keys(other.properties)).toEqual(['__proto__', 'label']);
    const post = document.paths['/other-goods']!.post as {
      requestBody: { content: Record<string, { schema: { properties: object } }> };
    };
    expect(Object.keys(post.requestBody.content['application/json']!.schema.properties)).toEqual([
      '__proto__',
      'label',
    ]);

    // The gateway takes the field and answers it, as documented.
    const echoed = await httpJson(port, 'POST', '/other-goods', JSON.parse('{"__proto__":"p","label":"l"}'));
    expect(echoed.status).toBe(200);
    expect(echoed.body).toMatch(
      /"errorcode":0,"errormessage":"success","item":\{"__proto__":"p","label":"l"\}\}$/,
    );
    const form = await http(port, 'POST', '/other-goods', {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: '__proto__=f&label=m',
    });
    expect(form.body).toMatch(/"item":\{"__proto__":"f","label":"m"\}\}$/);
  });

  it("documents the contract's types as its services define them, not as another service's like-named type", async () => {
    const { port, gateway: started } = await gateway();
    const before = await openApi(port);
    await startHijacker(perTest, distributor);
    await waitForRoute(started, 'GET /aaa', 1);
    const document = await openApi(port);
    await expectValidOpenApi(document);
    // GET /goods refers to shop.v1.Goods: the one goods registered, which the contract pins to it.
    expect(document.components.schemas['shop.v1.Goods']).toEqual(before.components.schemas['shop.v1.Goods']);
    expect(JSON.stringify(document.components)).not.toContain('card_number');
    expect(JSON.stringify(document.paths['/goods'])).not.toContain('card_number');
    // Its own query is read by its own descriptors, so its nested parameter is its own type's field.
    const hijack = document.paths['/aaa']?.get as { parameters: { name: string }[] };
    expect(hijack.parameters.map((parameter) => parameter.name)).toEqual(['item.card_number']);
  });

  it('takes no request key: routed requests still count from 0', async () => {
    const { port } = await gateway();
    await openApi(port);
    expect((await http(port, 'GET', '/docs/')).status).toBe(200);
    expect((await http(port, 'GET', '/docs/nothing-here')).status).toBe(404);
    expect((await httpJson(port, 'GET', '/goods')).body).toBe(
      '{"key":0,"errorcode":1,"errormessage":"no data"}',
    );
  });

  it('answers as it documents: real answers validate against its schemas', async () => {
    const { port, gateway: started } = await gateway();
    await startFakePurchases(perTest, distributor, new Date('2020-11-04T15:31:47.000Z'));
    await waitForRoute(started, 'GET /purchases', 1);
    const document = await openApi(port);
    const ajv = schemaValidator(document);
    const exchanges: [string, string, unknown][] = [
      ['GET', '/goods', undefined],
      ['POST', '/goods', { name: 'test Goods', category: 'tests', price: 1000, description: 'test' }],
      ['GET', '/goods', undefined],
      ['GET', '/goods?page_size=1', undefined],
      ['POST', '/members', { username: 'test_account', password: '1234' }],
      ['GET', '/members?username=test_account&password=1234', undefined],
      ['GET', '/members?username=test_account&password=wrong', undefined],
      ['POST', '/purchases', { userid: 1, goodsid: 1 }],
      ['GET', '/purchases?userid=1', undefined],
      ['GET', '/purchases?userid=abc', undefined],
      ['DELETE', '/goods?id=1', undefined],
    ];
    for (const [method, path, body] of exchanges) {
      const result = await httpJson(port, method, path, body);
      expect(result.status).toBe(200);
      const validate = ajv.compile(answerSchema(document, method, path.split('?')[0]!));
      expect(validate(JSON.parse(result.body)), `${method} ${path} → ${result.body}`).toBe(true);
    }
    const validateError = ajv.compile(errorSchema());
    const notFound = await httpJson(port, 'GET', '/nothing');
    expect(notFound.status).toBe(404);
    expect(validateError(JSON.parse(notFound.body))).toBe(true);
    const unsupported = await http(port, 'POST', '/goods', {
      headers: { 'Content-Type': 'text/plain' },
      body: 'name=x',
    });
    expect(unsupported.status).toBe(415);
    expect(validateError(JSON.parse(unsupported.body))).toBe(true);
    expect(Object.keys(document.paths['/goods']!.post!.responses as object)).toContain('415');
  });

  it('serves the document compressed to a client that takes it, HEAD with the same headers', async () => {
    const { port } = await gateway();
    const plain = await getBytes(port, '/openapi.json');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toMatch(/Accept-Encoding/);
    for (const [accept, coding, decode] of [
      ['gzip, deflate, br', 'br', brotliDecompressSync],
      ['gzip', 'gzip', gunzipSync],
      ['br;q=0.5, gzip', 'gzip', gunzipSync],
    ] as const) {
      const got = await getBytes(port, '/openapi.json', { 'Accept-Encoding': accept });
      expect(got.status).toBe(200);
      expect(got.headers['content-encoding'], accept).toBe(coding);
      expect(got.headers.vary).toMatch(/Accept-Encoding/);
      expect(Number(got.headers['content-length'])).toBe(got.body.length);
      expect(got.body.length).toBeLessThan(plain.body.length / 3);
      expect(decode(got.body).equals(plain.body)).toBe(true);
      const head = await http(port, 'HEAD', '/openapi.json', { headers: { 'Accept-Encoding': accept } });
      expect(head.headers['content-encoding']).toBe(coding);
      expect(Number(head.headers['content-length'])).toBe(got.body.length);
      expect(head.body).toBe('');
    }
    // Asked again with its tag, a client that has it gets 304, without a body or its length.
    const gzipped = await getBytes(port, '/openapi.json', { 'Accept-Encoding': 'gzip' });
    expect(gzipped.headers.etag).not.toBe(plain.headers.etag);
    const unchanged = await getBytes(port, '/openapi.json', {
      'Accept-Encoding': 'gzip',
      'If-None-Match': String(gzipped.headers.etag),
    });
    expect(unchanged.status).toBe(304);
    expect(unchanged.headers['content-length']).toBeUndefined();
    expect(unchanged.headers.etag).toBe(gzipped.headers.etag);
    expect(unchanged.body.length).toBe(0);
    const refused = await getBytes(port, '/openapi.json', { 'Accept-Encoding': 'br;q=0, gzip;q=0' });
    expect(refused.headers['content-encoding']).toBeUndefined();
    expect(refused.body.equals(plain.body)).toBe(true);
  });

  it('is 503 before the first route table; other methods are 405; HEAD has no body', async () => {
    const lost = new Closer();
    try {
      // A distributor that is not there: the gateway never gets a route table.
      const { port } = await startGateway(lost, '127.0.0.1:1');
      const early = await http(port, 'GET', '/openapi.json');
      expect(early.status).toBe(503);
      expect(early.headers['retry-after']).toBe('1');
      expect(early.body).toBe(
        '{"key":null,"errorcode":1,"errormessage":"The gateway has not received the route table from the distributor yet"}',
      );
      expect((await http(port, 'GET', '/docs/')).status).toBe(200);
    } finally {
      await lost.closeAll();
    }
    const { port } = await gateway();
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const refused = await http(port, method, '/openapi.json');
      expect(refused.status).toBe(405);
      expect(refused.headers.allow).toBe('GET, HEAD, OPTIONS');
      expect(JSON.parse(refused.body)).toMatchObject({ key: null, errorcode: 1 });
    }
    for (const path of ['/openapi.json', '/docs/']) {
      const options = await http(port, 'OPTIONS', path);
      expect(options.status, path).toBe(204);
      expect(options.headers.allow).toBe('GET, HEAD, OPTIONS');
    }
    expect((await http(port, 'OPTIONS', '/docs/nothing-here')).status).toBe(404);
    const head = await http(port, 'HEAD', '/openapi.json');
    expect(head.status).toBe(200);
    expect(head.headers['x-content-type-options']).toBe('nosniff');
    expect(Number(head.headers['content-length'])).toBeGreaterThan(1000);
    expect(head.body).toBe('');
  });

  it('serves the page from swagger-ui-dist, nothing from elsewhere, under a self-only policy', async () => {
    const { port } = await gateway();
    const bare = await http(port, 'GET', '/docs');
    expect(bare.status).toBe(301);
    expect(bare.headers.location).toBe('docs/');

    const page = await http(port, 'GET', '/docs/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(DOCS_CONTENT_SECURITY_POLICY);
    expect(DOCS_CONTENT_SECURITY_POLICY).not.toMatch(/https?:|\*|unsafe/);
    expect(page.body).toContain('<script src="swagger-ui-bundle.js"');
    // Every URL of the page is its own: nothing from a CDN.
    expect(page.body).not.toMatch(/\/\/|https?:/);
    const initializer = await http(port, 'GET', '/docs/swagger-initializer.js');
    expect(initializer.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(initializer.body).toContain("'../openapi.json'");
    expect(initializer.body).toContain('validatorUrl: null');

    const bundle = readFileSync(join(distDir, 'swagger-ui-bundle.js'));
    const plain = await getBytes(port, '/docs/swagger-ui-bundle.js');
    expect(plain.status).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.equals(bundle)).toBe(true);
    const zipped = await getBytes(port, '/docs/swagger-ui-bundle.js', { 'Accept-Encoding': 'gzip, deflate' });
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.headers.vary).toBe('Accept-Encoding');
    expect(zipped.body.length).toBeLessThan(bundle.length / 2);
    expect(gunzipSync(zipped.body).equals(bundle)).toBe(true);
    const css = await getBytes(port, '/docs/swagger-ui.css', { 'Accept-Encoding': 'gzip;q=0' });
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(css.body.equals(readFileSync(join(distDir, 'swagger-ui.css')))).toBe(true);
    expect((await getBytes(port, '/docs/favicon-32x32.png')).headers['content-type']).toBe('image/png');

    // Only the page's files: not the rest of the package, nor anything above it.
    for (const path of [
      '/docs/package.json',
      '/docs/../package.json',
      '/docs/swagger-ui.js',
      '/docs/%2e%2e/x',
    ]) {
      const refused = await http(port, 'GET', path);
      expect(refused.status, path).toBe(404);
      expect(JSON.parse(refused.body)).toMatchObject({ key: null, errorcode: 1 });
    }
  });
});
