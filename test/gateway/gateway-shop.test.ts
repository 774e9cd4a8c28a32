import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type HttpResult, http, httpJson, oneConnection } from '../helpers/http.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { type FakeGoods, startFakeGoods, startFakeMembers, startFakePurchases } from './support/fake-shop.js';

const SEED_DATE = new Date('2020-11-04T15:31:47.000Z');

/** Checks status and body exactly, the key aside; returns the key. */
function expectAnswer(result: HttpResult, status: number, body: (key: number) => string): number {
  const key = Number(/^\{"key":(\d+),/.exec(result.body)?.[1]);
  expect(result.status).toBe(status);
  expect(result.body).toBe(body(key));
  expect(result.headers['content-type']).toBe('application/json');
  return key;
}

describe('gateway on the shop contracts (in-memory services)', () => {
  const shared = new Closer();
  const perTest = new Closer();
  let distributor: string;
  let goods: FakeGoods;

  beforeAll(async () => {
    distributor = (await startDistributor(shared)).address;
    goods = await startFakeGoods(shared, distributor);
    await startFakeMembers(shared, distributor);
    await startFakePurchases(shared, distributor, SEED_DATE);
  });
  afterEach(async () => {
    await perTest.closeAll();
    goods.goods.length = 0;
  });
  afterAll(() => shared.closeAll());

  async function gateway(): Promise<number> {
    const { gateway: started, port } = await startGateway(perTest, distributor);
    await waitForRoute(started, 'GET /goods', 1);
    await waitForRoute(started, 'GET /members', 1);
    await waitForRoute(started, 'GET /purchases', 1);
    return port;
  }

  it('answers the eight requests of the seed run with its bodies, byte for byte', async () => {
    const port = await gateway();
    const agent = oneConnection();
    const steps: [string, string, unknown, string][] = [
      [
        'DELETE',
        '/members?username=test_account',
        undefined,
        '{"key":0,"errorcode":0,"errormessage":"success"}',
      ],
      [
        'POST',
        '/members',
        { username: 'test_account', password: '1234', passwordConfirm: '1234' },
        '{"key":1,"errorcode":0,"errormessage":"success"}',
      ],
      [
        'GET',
        '/members?username=test_account&password=1234',
        undefined,
        '{"key":2,"errorcode":0,"errormessage":"success","userid":1}',
      ],
      [
        'POST',
        '/goods',
        { name: 'test Goods', category: 'tests', price: 1000, description: 'test' },
        '{"key":3,"errorcode":0,"errormessage":"success"}',
      ],
      [
        'GET',
        '/goods',
        undefined,
        '{"key":4,"errorcode":0,"errormessage":"success","results":[{"id":1,"name":"test Goods","category":"tests","price":1000,"description":"test"}]}',
      ],
      ['DELETE', '/goods?id=1', undefined, '{"key":5,"errorcode":0,"errormessage":"success"}'],
      ['POST', '/purchases', { userid: 1, goodsid: 1 }, '{"key":6,"errorcode":0,"errormessage":"success"}'],
      [
        'GET',
        '/purchases?userid=1',
        undefined,
        '{"key":7,"errorcode":0,"errormessage":"success","results":[{"id":1,"goodsid":1,"date":"2020-11-04T15:31:47.000Z"}]}',
      ],
    ];
    for (const [method, path, body, expected] of steps) {
      const result = await httpJson(port, method, path, body, agent);
      expect(`${method} ${path} → ${result.status} ${result.body}`).toBe(
        `${method} ${path} → 200 ${expected}`,
      );
      expect(result.headers['content-type']).toBe('application/json');
      expect(result.headers.connection).toBe('keep-alive');
    }
    agent.destroy();
  });

  it('passes business failures on as HTTP 200 with errorcode 1 and the service message', async () => {
    const port = await gateway();
    expectAnswer(
      await httpJson(port, 'GET', '/goods'),
      200,
      (key) => `{"key":${key},"errorcode":1,"errormessage":"no data"}`,
    );
    expectAnswer(
      await httpJson(port, 'GET', '/members?username=nobody&password=x'),
      200,
      (key) => `{"key":${key},"errorcode":1,"errormessage":"Invalid password"}`,
    );
  });

  it('reads application/json with a charset, in any case', async () => {
    const port = await gateway();
    for (const type of ['application/json; charset=utf-8', 'Application/JSON;Charset="UTF-8"']) {
      const result = await http(port, 'POST', '/goods', {
        headers: { 'Content-Type': type },
        body: JSON.stringify({ name: 'é', category: 'c', price: '5', description: '' }),
      });
      expectAnswer(result, 200, (key) => `{"key":${key},"errorcode":0,"errormessage":"success"}`);
    }
    expect(goods.goods.map((item) => [item.name, item.price])).toEqual([
      ['é', 5],
      ['é', 5],
    ]);
  });

  it('reads a body declared US-ASCII, in any case, and refuses one with a byte from 0x80 up', async () => {
    const port = await gateway();
    for (const type of ['application/json; charset=us-ascii', 'application/json; charset="US-ASCII"']) {
      const result = await http(port, 'POST', '/goods', {
        headers: { 'Content-Type': type },
        body: JSON.stringify({ name: 'n', category: 'c', price: '5', description: '' }),
      });
      expectAnswer(result, 200, (key) => `{"key":${key},"errorcode":0,"errormessage":"success"}`);
    }
    const form = await http(port, 'POST', '/goods', {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=Us-Ascii' },
      body: 'name=f&category=c&price=6&description=',
    });
    expectAnswer(form, 200, (key) => `{"key":${key},"errorcode":0,"errormessage":"success"}`);
    // Valid UTF-8, but not what the client declared: refused as a body not in UTF-8 is.
    for (const [type, body] of [
      ['application/json; charset=us-ascii', '{"name":"é","category":"c","price":1,"description":""}'],
      ['application/x-www-form-urlencoded; charset=us-ascii', 'name=%C3%A9&category=c&price=1&description='],
    ] as const) {
      expectAnswer(
        await http(port, 'POST', '/goods', { headers: { 'Content-Type': type }, body }),
        400,
        (key) =>
          `{"key":${key},"errorcode":1,"errormessage":"The body is not valid US-ASCII, its declared charset"}`,
      );
    }
    expect(goods.goods.map((item) => [item.name, item.price])).toEqual([
      ['n', 5],
      ['n', 5],
      ['f', 6],
    ]);
  });

  it('reads a form-encoded POST, converting numbers by the field type', async () => {
    const port = await gateway();
    const result = await http(port, 'POST', '/goods', {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'name=test+Goods&category=tests&price=1000&description=caf%C3%A9&passwordConfirm=ignored',
    });
    expectAnswer(result, 200, (key) => `{"key":${key},"errorcode":0,"errormessage":"success"}`);
    expect(goods.goods).toEqual([
      { id: expect.any(Number), name: 'test Goods', category: 'tests', price: 1000, description: 'café' },
    ]);
  });

  it('answers "Invalid Parameters" for a value that does not convert, without calling the service', async () => {
    const port = await gateway();
    const before = { ...goods.calls };
    for (const [method, path, body] of [
      ['DELETE', '/goods?id=abc', undefined],
      ['DELETE', '/goods?id=1.9', undefined],
      ['DELETE', '/goods?id=2147483648', undefined],
      ['POST', '/goods', { name: 'n', category: 'c', price: '1.9', description: '' }],
      ['POST', '/goods', { name: 'n', category: 'c', price: true, description: '' }],
    ] as const) {
      expectAnswer(
        await httpJson(port, method, path, body),
        200,
        (key) => `{"key":${key},"errorcode":1,"errormessage":"Invalid Parameters"}`,
      );
    }
    expect(goods.calls).toEqual(before);
  });

  it('answers 404 with a null key for an unknown route, without consuming a key', async () => {
    const port = await gateway();
    const first = expectAnswer(
      await httpJson(port, 'GET', '/goods'),
      200,
      (key) => `{"key":${key},"errorcode":1,"errormessage":"no data"}`,
    );
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/goods/'],
      ['DELETE', '/goods/1/2'],
      ['GET', '/GOODS?x=1'],
    ]) {
      const result = await httpJson(port, method!, path!);
      expect(result.status).toBe(404);
      expect(result.body).toBe(
        `{"key":null,"errorcode":1,"errormessage":"No route for ${method} ${path!.split('?')[0]}"}`,
      );
    }
    // A known path with another method is 405 with Allow, without a key either.
    const other = await httpJson(port, 'PUT', '/goods');
    expect(other.status).toBe(405);
    expect(other.headers.allow).toBe('DELETE, GET, HEAD, OPTIONS, POST');
    expect(other.body).toBe(
      '{"key":null,"errorcode":1,"errormessage":"Method PUT not allowed on /goods: use DELETE, GET, HEAD, OPTIONS, POST"}',
    );
    const templated = await httpJson(port, 'GET', '/goods/1');
    expect([templated.status, templated.headers.allow]).toEqual([405, 'DELETE, OPTIONS']);
    const next = await httpJson(port, 'GET', '/goods?unknown=1');
    expect(expectAnswer(next, 200, (key) => `{"key":${key},"errorcode":1,"errormessage":"no data"}`)).toBe(
      first + 1,
    );
  });

  it('answers 400 for malformed JSON, and the next request on the same connection works', async () => {
    const port = await gateway();
    const agent = oneConnection();
    for (const [body, message] of [
      ['{"name":', 'Malformed JSON body'],
      ['[1,2]', 'The JSON body must be an object'],
      ['"text"', 'The JSON body must be an object'],
    ]) {
      const result = await http(port, 'POST', '/goods', {
        headers: { 'Content-Type': 'application/json' },
        body: body!,
        agent,
      });
      expectAnswer(result, 400, (key) => `{"key":${key},"errorcode":1,"errormessage":"${message}"}`);
      expect(result.headers.connection).toBe('keep-alive');
    }
    const next = await httpJson(
      port,
      'POST',
      '/goods',
      { name: 'n', category: 'c', price: 1, description: 'd' },
      agent,
    );
    expectAnswer(next, 200, (key) => `{"key":${key},"errorcode":0,"errormessage":"success"}`);
    agent.destroy();
  });

  it('answers 415 for a body of another type, and takes an empty body as no parameters', async () => {
    const port = await gateway();
    const result = await http(port, 'POST', '/goods', {
      headers: { 'Content-Type': 'text/plain' },
      body: 'name=x',
    });
    expectAnswer(
      result,
      415,
      (key) =>
        `{"key":${key},"errorcode":1,"errormessage":"Unsupported Content-Type: send application/json or application/x-www-form-urlencoded, in UTF-8"}`,
    );
    const latin1 = await http(port, 'POST', '/goods', {
      headers: { 'Content-Type': 'application/json; charset=latin1' },
      body: '{"name":"x"}',
    });
    expect(latin1.status).toBe(415);
    expect(latin1.body).toContain('in UTF-8');
    const notUtf8 = await http(port, 'POST', '/members', {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'username=%FF%FE&password=x',
    });
    expectAnswer(
      notUtf8,
      400,
      (key) => `{"key":${key},"errorcode":1,"errormessage":"The body is not valid UTF-8"}`,
    );
    // The same bytes in a query string are as malformed: 400 too, not the book's 200 "Invalid Parameters".
    const queryNotUtf8 = await http(port, 'GET', '/members?username=%FF%FE&password=x');
    expectAnswer(
      queryNotUtf8,
      400,
      (key) =>
        `{"key":${key},"errorcode":1,"errormessage":"The query string is not valid UTF-8 once its %-escapes are decoded"}`,
    );
    const empty = await http(port, 'POST', '/goods', {
      headers: { 'Content-Type': 'text/plain', 'Content-Length': 0 },
    });
    expectAnswer(empty, 200, (key) => `{"key":${key},"errorcode":1,"errormessage":"Invalid Parameters"}`);
  });

  it('answers 415 with Accept-Encoding: identity for a body in a content coding, not 400, and writes nothing', async () => {
    const port = await gateway();
    const json = '{"name":"n","category":"c","price":1,"description":"d"}';
    // A body sent compressed was read as if it were not: "not valid UTF-8", or, labelled but sent
    // plain, stored as its bytes happened to read.
    for (const [encoding, body] of [
      ['gzip', gzipSync(json)],
      ['br', json],
      ['identity, gzip', gzipSync(json)],
    ] as const) {
      const result = await http(port, 'POST', '/goods', {
        headers: { 'Content-Type': 'application/json', 'Content-Encoding': encoding },
        body,
      });
      expectAnswer(
        result,
        415,
        (key) =>
          `{"key":${key},"errorcode":1,"errormessage":"Unsupported Content-Encoding \\"${encoding}\\": send the body unencoded"}`,
      );
      expect(result.headers['accept-encoding'], encoding).toBe('identity');
    }
    expect(goods.goods).toEqual([]);
    // identity is no coding at all.
    const plain = await http(port, 'POST', '/goods', {
      headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'Identity' },
      body: json,
    });
    expectAnswer(plain, 200, (key) => `{"key":${key},"errorcode":0,"errormessage":"success"}`);
    expect(goods.goods).toHaveLength(1);
  });
});
