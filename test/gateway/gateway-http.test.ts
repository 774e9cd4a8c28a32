import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { http, httpJson, oneConnection, raw, rawBody, rawInPieces } from '../helpers/http.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { type FakeGoods, startFakeGoods, startFakePurchases } from './support/fake-shop.js';

const ROW = { id: 7, name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
const SEED_DATE = new Date('2020-11-04T15:31:47.000Z');
const PAGE = 'https://shop.example';

/** HTTP as clients expect it: the routes' templates, 405, HEAD, OPTIONS and CORS. */
describe('gateway HTTP semantics', () => {
  const shared = new Closer();
  const perTest = new Closer();
  let distributor: string;
  let goods: FakeGoods;

  beforeAll(async () => {
    distributor = (await startDistributor(shared)).address;
    goods = await startFakeGoods(shared, distributor);
    await startFakePurchases(shared, distributor, SEED_DATE);
  });
  afterEach(async () => {
    await perTest.closeAll();
    goods.goods.length = 0;
  });
  afterAll(() => shared.closeAll());

  async function gateway(corsOrigins?: string[]): Promise<number> {
    const { gateway: started, port } = await startGateway(
      perTest,
      distributor,
      corsOrigins ? { corsOrigins } : {},
    );
    await waitForRoute(started, 'DELETE /goods/*', 1);
    await waitForRoute(started, 'GET /purchases/*', 1);
    return port;
  }

  it("deletes by path, DELETE /goods/{id}, as by the book's query, DELETE /goods?id=", async () => {
    const port = await gateway();
    goods.goods.push({ ...ROW }, { ...ROW, id: 8 });
    const byPath = await httpJson(port, 'DELETE', '/goods/7');
    expect(byPath.status).toBe(200);
    expect(byPath.body).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success"\}$/);
    expect(goods.goods.map((item) => item.id)).toEqual([8]);
    await httpJson(port, 'DELETE', '/goods?id=8');
    expect(goods.goods).toEqual([]);
    // The path is text: a segment that is not an int32 is the book's "Invalid Parameters".
    for (const path of ['/goods/abc', '/goods/1.5', '/goods/99999999999']) {
      const invalid = await httpJson(port, 'DELETE', path);
      expect([invalid.status, JSON.parse(invalid.body).errormessage], path).toEqual([
        200,
        'Invalid Parameters',
      ]);
    }
  });

  it('lists purchases by path as by query, GET /purchases/{userid}', async () => {
    const port = await gateway();
    await httpJson(port, 'POST', '/purchases', { userid: 1, goodsid: 2 });
    const byPath = await httpJson(port, 'GET', '/purchases/1');
    const byQuery = await httpJson(port, 'GET', '/purchases?userid=1');
    const results = '"results":[{"id":1,"goodsid":2,"date":"2020-11-04T15:31:47.000Z"}]}';
    expect(byPath.body.endsWith(results)).toBe(true);
    expect(byQuery.body.endsWith(results)).toBe(true);
  });

  it('routes an absolute-form target (RFC 9112, 3.2.2: what a client sends its proxy) by its path and query', async () => {
    const port = await gateway();
    goods.goods.push({ ...ROW }, { ...ROW, id: 8 });
    const request = (line: string): Promise<string> =>
      raw(port, `${line} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    const page = await request(`GET http://127.0.0.1:${port}/goods?page_size=1`);
    expect(page.startsWith('HTTP/1.1 200 ')).toBe(true);
    // The query was read: page_size asks for one page, which ends with its token.
    const body = JSON.parse(rawBody(page)) as { results: { id: number }[]; next_page_token?: string };
    expect([body.results[0]?.id, typeof body.next_page_token]).toEqual([7, 'string']);
    const deleted = await request('DELETE HTTPS://shop.example/goods/7');
    expect(rawBody(deleted)).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success"\}$/);
    expect(goods.goods.map((item) => item.id)).toEqual([8]);
    // No path is the root's, which has no route.
    expect(rawBody(await request('GET http://shop.example?page_size=1'))).toBe(
      '{"key":null,"errorcode":1,"errormessage":"No route for GET /"}',
    );
  });

  it('routes a path whose unreserved characters are escaped (RFC 3986, 6.2.2.2) as the path itself, literal or templated', async () => {
    const port = await gateway();
    goods.goods.push({ ...ROW });
    const plain = await httpJson(port, 'GET', '/goods');
    const escaped = await http(port, 'GET', '/go%6Fds');
    expect(escaped.status).toBe(200);
    expect(JSON.parse(escaped.body).results).toEqual(JSON.parse(plain.body).results);
    expect((await http(port, 'GET', '/%70urchases/%31')).status).toBe(200);
    // A reserved character's escape is not the character: "/goods%2F7" is one segment, not two.
    expect((await http(port, 'DELETE', '/goods%2F7')).status).toBe(404);
    expect(goods.goods.map((item) => item.id)).toEqual([7]);
  });

  it('answers a path with a malformed or non-UTF-8 escape 400, and keeps the connection', async () => {
    const port = await gateway();
    const agent = oneConnection();
    for (const path of ['/goods/%zz', '/goods/%', '/goods/%E0%A4', '/members/%C0%80', '/%FF']) {
      const result = await http(port, 'DELETE', path, { agent });
      expect([path, result.status]).toEqual([path, 400]);
      expect(result.body).toBe(
        '{"key":null,"errorcode":1,"errormessage":"Malformed request path: each \\"%\\" takes two hex digits, and the bytes escaped must be UTF-8"}',
      );
      expect(result.headers.connection).toBe('keep-alive');
      expect(result.headers['x-request-id']).toMatch(/./);
    }
    agent.destroy();
  });

  it('answers a known path with another method 405 and Allow, without a key, and keeps the connection', async () => {
    const port = await gateway();
    const agent = oneConnection();
    const result = await http(port, 'PATCH', '/goods', { agent });
    expect(result.status).toBe(405);
    expect(result.headers.allow).toBe('DELETE, GET, HEAD, OPTIONS, POST');
    expect(result.body).toBe(
      '{"key":null,"errorcode":1,"errormessage":"Method PATCH not allowed on /goods: use DELETE, GET, HEAD, OPTIONS, POST"}',
    );
    expect(result.headers.connection).toBe('keep-alive');
    expect((await http(port, 'POST', '/purchases/1', { agent })).headers.allow).toBe('GET, HEAD, OPTIONS');
    expect((await http(port, 'PUT', '/nope', { agent })).status).toBe(404);
    // The gateway's own pages say the same, and echo a long path cut as the routes' answers do.
    const long = `/docs/${'x'.repeat(1_000)}`;
    const docs = await http(port, 'POST', long, { agent });
    expect([docs.status, docs.headers.allow]).toEqual([405, 'GET, HEAD, OPTIONS']);
    expect(JSON.parse(docs.body).errormessage).toBe(
      `Method POST not allowed on ${long.slice(0, 200)}: use GET, HEAD, OPTIONS`,
    );
    agent.destroy();
  });

  it('answers HEAD on every GET route as GET, without the body', async () => {
    const port = await gateway();
    goods.goods.push({ ...ROW });
    for (const path of ['/goods', '/purchases?userid=1', '/purchases/1', '/purchases?userid=abc']) {
      const get = await http(port, 'GET', path);
      const head = await http(port, 'HEAD', path);
      expect(head.status, path).toBe(get.status);
      expect(head.headers['content-length'], path).toBe(get.headers['content-length']);
      expect(head.headers['content-type'], path).toBe('application/json');
      expect(head.body, path).toBe('');
    }
    // Refused too, HEAD gets GET's status and headers, Content-Length included.
    for (const path of ['/nope', '/goods/7']) {
      const get = await http(port, 'GET', path);
      const head = await http(port, 'HEAD', path);
      expect([head.status, head.headers['content-length'], head.body], path).toEqual([
        get.status,
        get.headers['content-length'],
        '',
      ]);
    }
    expect((await http(port, 'HEAD', '/nope')).status).toBe(404);
    // HEAD is GET's: a path with no GET route does not take it.
    expect((await http(port, 'HEAD', '/goods/7')).status).toBe(405);
  });

  it('answers OPTIONS with Allow, and no CORS header while CORS_ORIGINS is empty (the default)', async () => {
    const port = await gateway();
    const options = await http(port, 'OPTIONS', '/goods', {
      headers: { Origin: PAGE, 'Access-Control-Request-Method': 'POST' },
    });
    expect(options.status).toBe(204);
    expect(options.headers.allow).toBe('DELETE, GET, HEAD, OPTIONS, POST');
    expect(options.body).toBe('');
    expect(Object.keys(options.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
    const get = await http(port, 'GET', '/goods', { headers: { Origin: PAGE } });
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
    expect((await http(port, 'OPTIONS', '/nope')).status).toBe(404);
  });

  it("answers a preflight from an allowed origin with the route's methods and the headers it reads", async () => {
    const port = await gateway([PAGE, 'http://localhost:3000']);
    const preflight = await http(port, 'OPTIONS', '/goods/7', {
      headers: {
        Origin: PAGE,
        'Access-Control-Request-Method': 'DELETE',
        // A page traced by OpenTelemetry's web instrumentation sends the W3C trace context too.
        'Access-Control-Request-Headers': 'idempotency-key,traceparent,tracestate',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers).toMatchObject({
      allow: 'DELETE, OPTIONS',
      'access-control-allow-origin': PAGE,
      'access-control-allow-methods': 'DELETE, OPTIONS',
      'access-control-allow-headers': 'Content-Type, Idempotency-Key, X-Request-Id, traceparent, tracestate',
      'access-control-max-age': '600',
      vary: 'Origin',
    });
    const answer = await httpJson(port, 'DELETE', '/goods/7');
    expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    const fromPage = await http(port, 'GET', '/goods', { headers: { Origin: PAGE } });
    expect(fromPage.headers).toMatchObject({ 'access-control-allow-origin': PAGE, vary: 'Origin' });
    // Every answer carries it, the gateway's own errors too.
    const notFound = await http(port, 'GET', '/nope', { headers: { Origin: 'http://localhost:3000' } });
    expect([notFound.status, notFound.headers['access-control-allow-origin']]).toEqual([
      404,
      'http://localhost:3000',
    ]);
  });

  it('says Vary: Origin on every answer while CORS_ORIGINS lists origins, whatever the Origin, the docs too', async () => {
    const port = await gateway([PAGE]);
    // A cache that kept the answer to no Origin, or to another, must not hand it to PAGE's page
    // (Fetch standard, "CORS protocol and HTTP caches").
    const origins: Record<string, string>[] = [{}, { Origin: 'https://evil.example' }, { Origin: PAGE }];
    for (const headers of origins) {
      const get = await http(port, 'GET', '/goods', { headers });
      expect(get.headers.vary, JSON.stringify(headers)).toBe('Origin');
      const preflight = await http(port, 'OPTIONS', '/goods', {
        headers: { ...headers, 'Access-Control-Request-Method': 'POST' },
      });
      expect(preflight.headers.vary, JSON.stringify(headers)).toBe('Origin');
    }
    // The docs' files are kept an hour by caches, and vary by Accept-Encoding as well.
    const css = await http(port, 'GET', '/docs/swagger-ui.css', {
      headers: { Origin: PAGE, 'Accept-Encoding': 'gzip' },
    });
    expect([css.status, css.headers['access-control-allow-origin'], css.headers.vary]).toEqual([
      200,
      PAGE,
      'Origin, Accept-Encoding',
    ]);
    expect((await http(port, 'GET', '/docs/swagger-ui.css')).headers.vary).toBe('Origin, Accept-Encoding');
  });

  it('answers a preflight for the API reference (/openapi.json, /docs/) as on any route', async () => {
    const port = await gateway([PAGE]);
    for (const path of ['/openapi.json', '/docs/']) {
      const preflight = await http(port, 'OPTIONS', path, {
        headers: {
          Origin: PAGE,
          'Access-Control-Request-Method': 'GET',
          'Access-Control-Request-Headers': 'x-request-id',
        },
      });
      expect(preflight.status, path).toBe(204);
      expect(preflight.headers, path).toMatchObject({
        allow: 'GET, HEAD, OPTIONS',
        'access-control-allow-origin': PAGE,
        'access-control-allow-methods': 'GET, HEAD, OPTIONS',
        'access-control-allow-headers':
          'Content-Type, Idempotency-Key, X-Request-Id, traceparent, tracestate',
        'access-control-max-age': '600',
      });
    }
  });

  it('sends no Content-Length on a 204 to OPTIONS (RFC 9110, section 8.6)', async () => {
    const port = await gateway([PAGE]);
    for (const path of ['/goods', '/goods/7', '/openapi.json', '/docs/']) {
      const options = await http(port, 'OPTIONS', path, {
        headers: { Origin: PAGE, 'Access-Control-Request-Method': 'GET' },
      });
      expect([options.status, options.headers['content-length']], path).toEqual([204, undefined]);
    }
    const server = await raw(port, 'OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(server).toMatch(/^HTTP\/1\.1 204 /);
    expect(server.toLowerCase()).not.toContain('content-length');
  });

  it('carries the CORS headers on the refusals made before routing (a malformed path, an Expect)', async () => {
    const port = await gateway([PAGE]);
    const badPath = await http(port, 'GET', '/goods/%FF', { headers: { Origin: PAGE } });
    expect([badPath.status, badPath.headers['access-control-allow-origin'], badPath.headers.vary]).toEqual([
      400,
      PAGE,
      'Origin',
    ]);
    const expectation = await http(port, 'POST', '/goods', { headers: { Expect: 'foo' } });
    expect([expectation.status, expectation.headers.vary]).toEqual([417, 'Origin']);
  });

  it('gives a call its whole deadline once a slowly sent body has come, not from the headers', async () => {
    const { gateway: started, port } = await startGateway(perTest, distributor, { deadlineMs: 400 });
    await waitForRoute(started, 'POST /goods', 1);
    const body = JSON.stringify({ name: 'slow', category: 'tests', price: 1, description: 'x' });
    const head = `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    // Pieces of 5 bytes 50 ms apart: the body ends some 600 ms after the headers, past the
    // deadline, which leaves a loaded machine 400 ms for the call itself.
    const pieces = [
      head,
      ...Array.from({ length: Math.ceil(body.length / 5) }, (_, index) =>
        body.slice(index * 5, index * 5 + 5),
      ),
    ];
    expect(pieces.join('')).toBe(head + body);
    const answer = await rawInPieces(port, pieces);
    expect(answer.slice(0, 15)).toBe('HTTP/1.1 200 OK');
    expect(JSON.parse(rawBody(answer))).toMatchObject({ errorcode: 0, errormessage: 'success' });
  });

  it("gives the operators' pages no CORS header, even for an allowed origin", async () => {
    const port = await gateway([PAGE]);
    const preflight = { Origin: PAGE, 'Access-Control-Request-Method': 'GET' };
    for (const path of ['/healthz', '/readyz', '/status', '/metrics']) {
      // Nor their preflight, another method's 405, or a plain OPTIONS: no CORS at all, so no Vary.
      for (const [method, headers] of [
        ['GET', { Origin: PAGE }],
        ['OPTIONS', preflight],
        ['OPTIONS', { Origin: PAGE }],
        ['POST', { Origin: PAGE }],
      ] as const) {
        const page = await http(port, method, path, { headers });
        const cors = Object.keys(page.headers).filter(
          (name) => name.startsWith('access-control-') || name === 'vary',
        );
        expect(cors, `${method} ${path}`).toEqual([]);
      }
    }
  });

  it('gives an origin off the list no CORS header, preflight or not', async () => {
    const port = await gateway([PAGE]);
    const headers = { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'DELETE' };
    const preflight = await http(port, 'OPTIONS', '/goods', { headers });
    expect(preflight.status).toBe(204);
    expect(Object.keys(preflight.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
    const get = await http(port, 'GET', '/goods', { headers: { Origin: 'https://evil.example' } });
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });

  it("refuses a write from another origin's page (a form, fetch no-cors: no preflight), not one from the gateway's own or a tool", async () => {
    const port = await gateway([PAGE]);
    goods.goods.push({ ...ROW });
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
    const body = 'name=forged&category=c&price=1&description=d';
    const evil = 'https://evil.example';
    // What a browser sends with a page's cross-site form POST; an older one sends Origin alone; a
    // sandboxed frame or a data: URL sends Origin: null.
    const refused: [string, string, Record<string, string>][] = [
      [
        'POST',
        '/goods',
        { ...form, Origin: evil, 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate' },
      ],
      ['POST', '/goods', { ...form, Origin: evil, 'Sec-Fetch-Site': 'same-site' }],
      ['POST', '/goods', { ...form, Origin: evil }],
      ['POST', '/goods', { ...form, Origin: 'null' }],
      ['POST', '/goods', { ...form, Origin: evil, 'Sec-Fetch-Site': '' }],
      ['POST', '/goods', { ...form, Origin: `http://localhost:${port}`, Host: `localhost:${port + 1}` }],
      ['DELETE', '/goods/7', { Origin: evil }],
    ];
    for (const [method, path, headers] of refused) {
      const answer = await http(port, method, path, { headers, body: method === 'POST' ? body : undefined });
      expect([answer.status, JSON.parse(answer.body)], JSON.stringify(headers)).toEqual([
        403,
        {
          key: null,
          errorcode: 1,
          errormessage:
            'A page of another origin may not send this request: add its origin to --cors-origins (CORS_ORIGINS)',
        },
      ]);
    }
    expect(goods.goods.map((item) => item.name)).toEqual([ROW.name]);
    // The gateway's own pages (/docs/'s "Try it out"), a person's own navigation, an allowed origin's
    // page, a tool that says nothing of where it comes from; and a read from anywhere.
    const taken: [string, Record<string, string>][] = [
      ['same-origin', { ...form, Origin: `http://127.0.0.1:${port}`, 'Sec-Fetch-Site': 'same-origin' }],
      ['Origin is Host', { ...form, Origin: `http://127.0.0.1:${port}` }],
      ['typed by a person', { ...form, 'Sec-Fetch-Site': 'none' }],
      // An empty Sec-Fetch-Site is none at all, as for Go's CrossOriginProtection: Origin decides.
      ['empty Sec-Fetch-Site', { ...form, 'Sec-Fetch-Site': '' }],
      [
        'empty Sec-Fetch-Site, Origin is Host',
        { ...form, Origin: `http://127.0.0.1:${port}`, 'Sec-Fetch-Site': '' },
      ],
      ['allowed origin', { ...form, Origin: PAGE, 'Sec-Fetch-Site': 'cross-site' }],
      ['curl', form],
    ];
    for (const [who, headers] of taken) {
      const answer = await http(port, 'POST', '/goods', { headers, body });
      expect([answer.status, JSON.parse(answer.body).errorcode], who).toEqual([200, 0]);
    }
    const read = await http(port, 'GET', '/goods', {
      headers: { Origin: evil, 'Sec-Fetch-Site': 'cross-site' },
    });
    expect(read.status).toBe(200);
    expect(goods.goods).toHaveLength(1 + taken.length);
  });

  it.each([
    ['has not received the route table', () => '127.0.0.1:1'],
    ['knows no route yet', async () => (await startDistributor(perTest)).address],
  ])(
    'lets a preflight through while it %s, so that the page reads the 503 and its Retry-After',
    async (_, distributorOf) => {
      // A browser takes anything but a 2xx to its preflight for a network error ("Failed to fetch"):
      // answered 503, the page never saw the answer its request would have had.
      const { port } = await startGateway(perTest, await distributorOf(), { corsOrigins: [PAGE] });
      const preflight = await http(port, 'OPTIONS', '/goods', {
        headers: {
          Origin: PAGE,
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'content-type, idempotency-key, x-request-id',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers).toMatchObject({
        'access-control-allow-origin': PAGE,
        'access-control-allow-methods': expect.stringContaining('POST'),
        'access-control-allow-headers':
          'Content-Type, Idempotency-Key, X-Request-Id, traceparent, tracestate',
        // Not kept: once the routes are known, the path's own methods are told.
        'access-control-max-age': '0',
      });
      const post = await http(port, 'POST', '/goods', {
        headers: { Origin: PAGE, 'Content-Type': 'application/json' },
        body: '{}',
      });
      expect(post.status).toBe(503);
      expect(post.headers).toMatchObject({
        'access-control-allow-origin': PAGE,
        'access-control-expose-headers': 'Retry-After, X-Request-Id',
        'retry-after': '1',
      });
      // An origin off the list, or an OPTIONS that is no preflight, is still told to come back.
      const other = await http(port, 'OPTIONS', '/goods', {
        headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' },
      });
      expect(other.status).toBe(503);
      expect((await http(port, 'OPTIONS', '/goods')).status).toBe(503);
    },
  );

  it('lets a page read a failure in its request body (400, 408), not one in a head the parser refused', async () => {
    const { gateway: started, port } = await startGateway(perTest, distributor, {
      corsOrigins: [PAGE],
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
    });
    await waitForRoute(started, 'POST /goods', 1);
    const head = `POST /goods HTTP/1.1\r\nHost: localhost\r\nOrigin: ${PAGE}\r\nContent-Type: application/json\r\n`;
    const [badChunk, slowBody, longUrl, slowHead] = await Promise.all([
      raw(port, `${head}Transfer-Encoding: chunked\r\n\r\nzz\r\n`),
      raw(port, `${head}Content-Length: 100\r\n\r\n{"name"`),
      raw(port, `GET /goods?${'a'.repeat(20_000)} HTTP/1.1\r\nHost: localhost\r\nOrigin: ${PAGE}\r\n\r\n`),
      raw(port, `GET /goods HTTP/1.1\r\nHost: localhost\r\nOrigin: ${PAGE}\r\n`),
    ]);
    // The request was handed on before its body failed: its answer is that request's, CORS and all.
    for (const [answer, status] of [
      [badChunk, 400],
      [slowBody, 408],
    ] as const) {
      expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(answer).toMatch(new RegExp(`\r\nAccess-Control-Allow-Origin: ${PAGE}\r\n`, 'i'));
      expect(answer).toMatch(/\r\nVary: Origin\r\n/i);
    }
    // Node's parser hands over no header of a head it refused (its 'clientError' has no request):
    // the Origin is not known, and the answer carries no CORS header (README, "CORS for browser pages").
    for (const [answer, status] of [
      [longUrl, 414],
      [slowHead, 408],
    ] as const) {
      expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(answer).not.toMatch(/Access-Control-/i);
    }
  });

  it('allows any origin with "*", without Vary', async () => {
    const port = await gateway(['*']);
    const get = await http(port, 'GET', '/goods', { headers: { Origin: 'https://any.example' } });
    expect(get.headers['access-control-allow-origin']).toBe('*');
    expect(get.headers.vary).toBeUndefined();
  });
});
