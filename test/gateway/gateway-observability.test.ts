import { request } from 'node:http';
import { connect } from 'node:net';
import type { Metadata } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { http } from '../helpers/http.js';
import { sample } from '../helpers/prometheus.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { type FakeGoods, startFakeGoods, startFakeMembers } from './support/fake-shop.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** The first value of a metadata key, as a string. */
function first(metadata: Metadata | undefined, key: string): string | undefined {
  const value = metadata?.get(key)[0];
  return value === undefined ? undefined : String(value);
}

/** One raw request to the gateway on a connection of its own: the head of its answer. */
async function rawHead(port: number, text: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let answer = '';
  socket.on('data', (chunk: Buffer) => {
    answer += chunk.toString('latin1');
  });
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(text);
  await vi.waitFor(() => expect(answer).toContain('\r\n\r\n'));
  socket.destroy();
  return answer.slice(0, answer.indexOf('\r\n\r\n'));
}

describe('gateway observability: request ids, trace context, metrics, health (in-memory services)', () => {
  const shared = new Closer();
  const perTest = new Closer();
  let distributor: string;
  let goods: FakeGoods;
  let seen: Metadata[] = [];
  /** While set, the fake goods holds every call until it settles. */
  let holdCalls: Promise<void> | undefined;

  beforeAll(async () => {
    distributor = (await startDistributor(shared)).address;
    goods = await startFakeGoods(shared, distributor, {
      onCall: (_method, call) => {
        seen.push(call.metadata);
        return holdCalls;
      },
    });
    await startFakeMembers(shared, distributor);
  });
  afterEach(async () => {
    await perTest.closeAll();
    seen = [];
  });
  afterAll(() => shared.closeAll());

  async function gateway(options = {}): Promise<number> {
    const started = await startGateway(perTest, distributor, options);
    await waitForRoute(started.gateway, 'GET /goods', 1);
    await waitForRoute(started.gateway, 'GET /members', 1);
    return started.port;
  }

  it('keeps a valid X-Request-Id, answers it, and sends it to the service as x-request-id metadata', async () => {
    const port = await gateway();
    const id = 'client-id.42:a_b-C';
    const answer = await http(port, 'GET', '/goods', { headers: { 'X-Request-Id': id } });
    expect(answer.headers['x-request-id']).toBe(id);
    expect(seen).toHaveLength(1);
    expect(first(seen[0], 'x-request-id')).toBe(id);
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['a space', 'two words'],
    ['a quote', 'id"; drop'],
    ['non-ASCII', 'idé'],
  ])('replaces an X-Request-Id with %s by a new one, sent on as well', async (_label, bad) => {
    const port = await gateway();
    const answer = await http(port, 'GET', '/goods', { headers: { 'X-Request-Id': bad } });
    const made = String(answer.headers['x-request-id']);
    expect(made).toMatch(UUID);
    expect(first(seen[0], 'x-request-id')).toBe(made);
  });

  it('makes an id for a request without one, and a different one for each request', async () => {
    const port = await gateway();
    const one = await http(port, 'GET', '/goods');
    const two = await http(port, 'DELETE', '/goods?id=1');
    expect(one.headers['x-request-id']).toMatch(UUID);
    expect(two.headers['x-request-id']).toMatch(UUID);
    expect(one.headers['x-request-id']).not.toBe(two.headers['x-request-id']);
    expect(seen.map((metadata) => first(metadata, 'x-request-id'))).toEqual([
      one.headers['x-request-id'],
      two.headers['x-request-id'],
    ]);
    // Errors the gateway makes itself carry an id too.
    const unknown = await http(port, 'GET', '/nowhere');
    expect(unknown.status).toBe(404);
    expect(unknown.headers['x-request-id']).toMatch(UUID);
    // So do its own answers: OPTIONS, the API description, a method a path does not route.
    for (const [method, path, code] of [
      ['OPTIONS', '/goods', 204],
      ['GET', '/openapi.json', 200],
      ['PATCH', '/goods', 405],
    ] as const) {
      const answer = await http(port, method, path);
      expect([method, path, answer.status]).toEqual([method, path, code]);
      expect(answer.headers['x-request-id']).toMatch(UUID);
    }
  });

  it('passes W3C traceparent and tracestate on as they came (tracing off), with the Idempotency-Key', async () => {
    const port = await gateway();
    await http(port, 'DELETE', '/goods?id=1', {
      headers: { traceparent: TRACEPARENT, tracestate: 'shop=1,vendor=abc', 'Idempotency-Key': 'key-1' },
    });
    expect(first(seen[0], 'traceparent')).toBe(TRACEPARENT);
    expect(first(seen[0], 'tracestate')).toBe('shop=1,vendor=abc');
    expect(first(seen[0], 'idempotency-key')).toBe('key-1');
  });

  it('drops a malformed traceparent (and its tracestate) instead of passing it on', async () => {
    const port = await gateway();
    const malformed = [
      '00-xyz',
      `ff-${TRACEPARENT.slice(3)}`,
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
      // A later version's extra fields in Latin-1: as metadata, grpc-js threw and the gateway said 500.
      `01-${TRACEPARENT.slice(3)}-\u00e9`,
    ];
    for (const bad of malformed) {
      const answer = await http(port, 'GET', '/goods', { headers: { traceparent: bad, tracestate: 'a=b' } });
      expect(answer.status).toBe(200);
    }
    expect(seen).toHaveLength(malformed.length);
    for (const metadata of seen) {
      expect(metadata.get('traceparent')).toEqual([]);
      expect(metadata.get('tracestate')).toEqual([]);
    }
  });

  it('drops a traceparent sent twice, a malformed tracestate, and passes a later version on as version 00', async () => {
    const port = await gateway();
    const later = `01-${TRACEPARENT.slice(3)}-future`;
    const cases: Array<[Record<string, string | string[]>, string | undefined, string | undefined]> = [
      // Sent twice, a later version first: HTTP joins them with a comma, which its extra fields
      // would otherwise have taken in.
      [{ traceparent: [later, TRACEPARENT] }, undefined, undefined],
      [{ traceparent: [TRACEPARENT, TRACEPARENT] }, undefined, undefined],
      // A tracestate that is not a list of key=value is dropped whole; the traceparent stays.
      [{ traceparent: TRACEPARENT, tracestate: '!!! not, a=tracestate ===' }, TRACEPARENT, undefined],
      [{ traceparent: TRACEPARENT, tracestate: 'a=1,a=2' }, TRACEPARENT, undefined],
      // Sent twice, tracestate is one list, passed on without the whitespace HTTP joined it with.
      [{ traceparent: TRACEPARENT, tracestate: ['a=1', 'b=2'] }, TRACEPARENT, 'a=1,b=2'],
      // What this hop passes on: version 00, with the sampled flag alone.
      [{ traceparent: later }, `00-${TRACEPARENT.slice(3)}`, undefined],
      [{ traceparent: `${TRACEPARENT.slice(0, 53)}fe` }, `${TRACEPARENT.slice(0, 53)}00`, undefined],
    ];
    for (const [headers] of cases) expect((await http(port, 'GET', '/goods', { headers })).status).toBe(200);
    expect(seen.map((metadata) => [first(metadata, 'traceparent'), first(metadata, 'tracestate')])).toEqual(
      cases.map(([, traceparent, tracestate]) => [traceparent, tracestate]),
    );
  });

  it("reports its REST connections against --max-connections and its requests in flight, back to the scrape's own once they end", async () => {
    const port = await gateway({ maxConnections: 40 });
    const metrics = async () => (await http(port, 'GET', '/metrics')).body;
    let release = (): void => {};
    holdCalls = new Promise<void>((resolve) => {
      release = resolve;
    });
    const sockets = Array.from({ length: 3 }, () => connect(port, '127.0.0.1').on('error', () => {}));
    const held = [http(port, 'GET', '/goods'), http(port, 'GET', '/goods')];
    try {
      await vi.waitFor(() => expect(seen).toHaveLength(2));
      await vi.waitFor(async () => {
        const text = await metrics();
        // The two held, the scrape's own connection, the three silent sockets.
        expect(sample(text, 'shop_gateway_connections')).toBe(6);
        // The two held and the scrape itself.
        expect(sample(text, 'http_server_active_requests')).toBe(3);
        expect(sample(text, 'shop_gateway_connections_max')).toBe(40);
      });
    } finally {
      holdCalls = undefined;
      release();
    }
    expect((await Promise.all(held)).map((answer) => answer.status)).toEqual([200, 200]);
    for (const socket of sockets) socket.destroy();
    await vi.waitFor(async () => {
      const text = await metrics();
      expect(sample(text, 'shop_gateway_connections')).toBe(1);
      expect(sample(text, 'http_server_active_requests')).toBe(1);
    });
  });

  it('counts a request whose client left before its answer once, as 499 on its route, and stops its call', async () => {
    const port = await gateway();
    let release = (): void => {};
    holdCalls = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The call is held until the counts are seen: released earlier, its answer could beat the
    // gateway to the client's leaving, and the request would be answered instead.
    try {
      const outgoing = request({ host: '127.0.0.1', port, path: '/goods', agent: false });
      const aborted = new Promise((resolve) => outgoing.on('error', resolve));
      outgoing.end();
      await vi.waitFor(() => expect(seen).toHaveLength(1));
      outgoing.destroy();
      await aborted;
      const left = { http_request_method: 'GET', http_route: '/goods', http_response_status_code: '499' };
      await vi.waitFor(async () => {
        const text = (await http(port, 'GET', '/metrics')).body;
        expect(sample(text, 'http_server_request_duration_seconds_count', left)).toBe(1);
        expect(
          sample(text, 'grpc_client_handled_total', {
            grpc_service: 'shop.v1.GoodsService',
            grpc_method: 'ListGoods',
            grpc_type: 'unary',
            grpc_code: 'Canceled',
          }),
        ).toBe(1);
      });
    } finally {
      holdCalls = undefined;
      release();
    }
  });

  it("counts a request whose connection the gateway's stop closed after its grace as the stop's 503, not as its client's 499", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const started = await startGateway(perTest, distributor, { log, stopGraceMs: 200 });
    await waitForRoute(started.gateway, 'GET /goods', 1);
    let release = (): void => {};
    holdCalls = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      const outgoing = request({ host: '127.0.0.1', port: started.port, path: '/goods', agent: false });
      const cut = new Promise((resolve) => outgoing.on('error', resolve));
      outgoing.end();
      await vi.waitFor(() => expect(seen).toHaveLength(1));
      // The client waits for its answer; the stop's grace runs out first and closes the connection.
      await started.gateway.stop();
      await cut;
      await vi.waitFor(() =>
        expect(lines.filter((line) => line.msg === 'request answered')).toEqual([
          expect.objectContaining({ method: 'GET', route: '/goods', status: 503 }),
        ]),
      );
    } finally {
      holdCalls = undefined;
      release();
    }
  });

  it('counts a client that closes its side in the middle of a body as 499, not as a malformed request', async () => {
    const port = await gateway();
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.on('data', () => {});
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.write(
      'POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na',
    );
    // The client sends its FIN before the body is whole: it has left.
    const left = performance.now();
    socket.end();
    await closed;
    // Closed at once, not after the 2 s linger that a refusal's answer gets: nothing is owed.
    expect(performance.now() - left).toBeLessThan(1_500);
    const post = { http_request_method: 'POST', http_route: '/goods' };
    await vi.waitFor(async () => {
      const text = (await http(port, 'GET', '/metrics')).body;
      expect(
        sample(text, 'http_server_request_duration_seconds_count', {
          ...post,
          http_response_status_code: '499',
        }),
      ).toBe(1);
      // Its time is the request's, not the linger's.
      expect(
        sample(text, 'http_server_request_duration_seconds_sum', {
          ...post,
          http_response_status_code: '499',
        }),
      ).toBeLessThan(1.5);
      expect(
        sample(text, 'http_server_request_duration_seconds_count', {
          ...post,
          http_response_status_code: '400',
        }) ?? 0,
      ).toBe(0);
    });
  });

  it('counts a request the HTTP parser refuses (_OTHER, unmatched, its status) and a refused method on its own page by the page', async () => {
    const port = await gateway();
    const raw = (text: string) => rawHead(port, text);
    expect(await raw('GET /goods HTTP/1.1\r\nHost: localhost\r\nNot a header\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 400/,
    );
    expect(
      await raw(`GET /goods HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    ).toMatch(/^HTTP\/1\.1 431/);
    expect((await http(port, 'POST', '/status')).status).toBe(405);
    // A bad body of a request already answered (404, its body unread) is that request's, counted once.
    expect(
      await raw(
        'POST /nowhere HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbad\r\n',
      ),
    ).toMatch(/^HTTP\/1\.1 404/);
    const text = (await http(port, 'GET', '/metrics')).body;
    const malformed = { http_request_method: '_OTHER', http_route: 'unmatched' };
    for (const code of ['400', '431']) {
      expect(
        sample(text, 'http_server_request_duration_seconds_count', {
          ...malformed,
          http_response_status_code: code,
        }),
      ).toBe(1);
    }
    expect(
      sample(text, 'http_server_request_duration_seconds_count', {
        http_request_method: 'POST',
        http_route: '/status',
        http_response_status_code: '405',
      }),
    ).toBe(1);
    expect(
      sample(text, 'http_server_request_duration_seconds_count', {
        http_request_method: 'POST',
        http_route: 'unmatched',
        http_response_status_code: '404',
      }),
    ).toBe(1);
    // Only the two refused above: the bad body added none.
    expect(
      text
        .split('\n')
        .filter(
          (line) =>
            line.startsWith('http_server_request_duration_seconds_count{') && line.includes('"_OTHER"'),
        ),
    ).toHaveLength(2);
  });

  it('counts, and gives its id to, a request refused before routing: no Host (400), an Expect it cannot meet (417), CONNECT (501)', async () => {
    const port = await gateway();
    const raw = (text: string) => rawHead(port, text);
    const noHost = await raw('GET /goods HTTP/1.1\r\nX-Request-Id: no-host-1\r\n\r\n');
    expect(noHost).toMatch(/^HTTP\/1\.1 400/);
    expect(noHost).toMatch(/\r\nx-request-id: no-host-1(\r\n|$)/i);
    const expectation = await raw(
      'GET /goods HTTP/1.1\r\nHost: localhost\r\nExpect: foo\r\nX-Request-Id: expect-1\r\n\r\n',
    );
    expect(expectation).toMatch(/^HTTP\/1\.1 417/);
    expect(expectation).toMatch(/\r\nx-request-id: expect-1(\r\n|$)/i);
    const tunnel = await raw('CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nX-Request-Id: connect-1\r\n\r\n');
    expect(tunnel).toMatch(/^HTTP\/1\.1 501/);
    expect(tunnel).toMatch(/\r\nx-request-id: connect-1(\r\n|$)/i);
    // One without a valid id of its own is given a new one, as any request is.
    const unnamed = await raw('CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nX-Request-Id: not valid\r\n\r\n');
    expect(unnamed).toMatch(/\r\nx-request-id: [0-9a-f-]{36}(\r\n|$)/i);
    await vi.waitFor(async () => {
      const text = (await http(port, 'GET', '/metrics')).body;
      for (const code of ['400', '417']) {
        expect(
          sample(text, 'http_server_request_duration_seconds_count', {
            http_request_method: 'GET',
            http_route: '/goods',
            http_response_status_code: code,
          }),
        ).toBe(1);
      }
      expect(
        sample(text, 'http_server_request_duration_seconds_count', {
          http_request_method: 'CONNECT',
          http_route: 'unmatched',
          http_response_status_code: '501',
        }),
      ).toBe(2);
    });
  });

  it('serves /metrics: requests by route, method and status, client calls by method and code; bounded labels', async () => {
    const port = await gateway();
    goods.goods.push({ id: 1, name: 'n', category: 'c', price: 1, description: 'd' });
    try {
      await http(port, 'GET', '/goods', { headers: { 'X-Request-Id': 'secret-request-id' } });
      await http(port, 'GET', '/goods?page_size=1');
      await http(port, 'GET', '/members?username=alice-in-metrics&password=pw');
      await http(port, 'GET', '/some/raw/path-12345');
      await http(port, 'DELETE', '/goods/98765');
      await http(port, 'POST', '/another/raw/path', {
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
    } finally {
      goods.goods.length = 0;
    }
    const scraped = await http(port, 'GET', '/metrics');
    expect(scraped.status).toBe(200);
    expect(scraped.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = scraped.body;
    const goodsOk = { http_request_method: 'GET', http_route: '/goods', http_response_status_code: '200' };
    expect(sample(text, 'http_server_request_duration_seconds_count', goodsOk)).toBe(2);
    expect(sample(text, 'http_server_request_duration_seconds_bucket', { ...goodsOk, le: '+Inf' })).toBe(2);
    expect(
      sample(text, 'http_server_request_duration_seconds_count', {
        http_request_method: 'GET',
        http_route: 'unmatched',
        http_response_status_code: '404',
      }),
    ).toBe(1);
    expect(
      sample(text, 'grpc_client_handled_total', {
        grpc_service: 'shop.v1.GoodsService',
        grpc_method: 'ListGoods',
        grpc_code: 'OK',
        grpc_type: 'unary',
      }),
    ).toBe(2);
    expect(
      sample(text, 'grpc_client_handling_seconds_count', {
        grpc_service: 'shop.v1.MembersService',
        grpc_method: 'SignIn',
      }),
    ).toBe(1);
    // A path with a value is counted under its route's template.
    expect(
      sample(text, 'http_server_request_duration_seconds_count', {
        http_request_method: 'DELETE',
        http_route: '/goods/{id}',
        http_response_status_code: '200',
      }),
    ).toBe(1);
    // No raw path, query, user name or request id ever becomes a label value.
    for (const leak of [
      'raw/path',
      'path-12345',
      '98765',
      'page_size',
      'alice-in-metrics',
      'secret-request-id',
    ]) {
      expect(text).not.toContain(leak);
    }
  });

  it('keeps one series per method and status of a route, one for every unknown method, and the rates to match', async () => {
    const port = await gateway();
    goods.goods.push({ id: 1, name: 'n', category: 'c', price: 1, description: 'd' });
    try {
      await http(port, 'GET', '/goods');
      await http(port, 'HEAD', '/goods');
      await http(port, 'POST', '/goods', { body: '{', headers: { 'content-type': 'application/json' } });
      await http(port, 'PROPFIND', '/goods');
      await http(port, 'MKCOL', '/goods');
      await http(port, 'OPTIONS', '/goods');
      await http(port, 'PATCH', '/goods');
      await http(port, 'PATCH', '/nope');
    } finally {
      goods.goods.length = 0;
    }
    const text = (await http(port, 'GET', '/metrics')).body;
    const count = (method: string, code: string) =>
      sample(text, 'http_server_request_duration_seconds_count', {
        http_request_method: method,
        http_route: '/goods',
        http_response_status_code: code,
      });
    expect([count('GET', '200'), count('HEAD', '200'), count('POST', '400')]).toEqual([1, 1, 1]);
    // A method the path has no route for is counted on the path's route (405, and OPTIONS's 204, a
    // browser's preflight), not with the paths no route has.
    expect([count('OPTIONS', '204'), count('PATCH', '405')]).toEqual([1, 1]);
    expect(
      sample(text, 'http_server_request_duration_seconds_count', {
        http_request_method: 'PATCH',
        http_route: 'unmatched',
        http_response_status_code: '404',
      }),
    ).toBe(1);
    const others = text
      .split('\n')
      .filter(
        (line) => line.startsWith('http_server_request_duration_seconds_count{') && line.includes('"_OTHER"'),
      );
    // Both unknown methods share one series (the path routes GET, HEAD, POST: 405 for them).
    expect(others).toEqual([
      'http_server_request_duration_seconds_count{http_request_method="_OTHER",http_route="/goods",http_response_status_code="405"} 2',
    ]);
    const status = JSON.parse((await http(port, 'GET', '/status.json')).body) as {
      routes: Array<{
        method: string;
        path: string;
        serving: string[];
        rate: { requests: number; errors: number };
      }>;
    };
    const row = (method: string) =>
      status.routes.find((route) => route.method === method && route.path === '/goods');
    const rate = (method: string) => row(method)?.rate;
    expect(rate('GET')).toMatchObject({ requests: 1, errors: 0 });
    expect(rate('HEAD')).toMatchObject({ requests: 1, errors: 0 });
    expect(rate('POST')).toMatchObject({ requests: 1, errors: 0 });
    // HEAD is routed as GET: its row shows the GET route's instances, not "none".
    expect(row('GET')?.serving).toHaveLength(1);
    expect(row('HEAD')?.serving).toEqual(row('GET')?.serving);
  });

  it('labels the API documentation /openapi.json and /docs, and keeps it out of the status page rates', async () => {
    const port = await gateway();
    await http(port, 'GET', '/openapi.json');
    await http(port, 'GET', '/docs/');
    await http(port, 'GET', '/docs/swagger-ui.css');
    const text = (await http(port, 'GET', '/metrics')).body;
    const count = (route: string) =>
      sample(text, 'http_server_request_duration_seconds_count', {
        http_request_method: 'GET',
        http_route: route,
        http_response_status_code: '200',
      });
    expect([count('/openapi.json'), count('/docs')]).toEqual([1, 2]);
    expect(count('unmatched')).toBeUndefined();
    const status = JSON.parse((await http(port, 'GET', '/status.json')).body) as {
      routes: Array<{ path: string }>;
    };
    expect(status.routes.map((route) => route.path)).not.toEqual(
      expect.arrayContaining([expect.stringMatching(/^\/(openapi\.json|docs)|unmatched/)]),
    );
  });

  it('answers /healthz, and /readyz 200 once every known route has a serving instance', async () => {
    const port = await gateway();
    const health = await http(port, 'GET', '/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'alive' });
    const ready = await http(port, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready', reasons: [] });
  });

  it("answers the id of a request for its own pages too, the client's or a new one, on GET and HEAD alike", async () => {
    const port = await gateway();
    for (const path of ['/healthz', '/readyz', '/metrics', '/status', '/status.js', '/status.json']) {
      for (const method of ['GET', 'HEAD']) {
        const made = await http(port, method, path);
        expect([method, path, made.status]).toEqual([method, path, 200]);
        expect(made.headers['x-request-id'], `${method} ${path}`).toMatch(UUID);
        const kept = await http(port, method, path, { headers: { 'X-Request-Id': 'probe-7' } });
        expect(kept.headers['x-request-id'], `${method} ${path}`).toBe('probe-7');
      }
    }
    // The page is never framed, nor gets a base or a form from anywhere (clickjacking, injected markup).
    expect((await http(port, 'GET', '/status')).headers['content-security-policy']).toBe(
      "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    // And none when ids are off.
    const withoutIds = await gateway({ observability: { metrics: false, requestIds: false } });
    expect((await http(withoutIds, 'GET', '/healthz')).headers['x-request-id']).toBeUndefined();
  });

  it('answers its own pages to GET and HEAD only: 405 with Allow to other methods, 204 with Allow to OPTIONS, ready or not', async () => {
    const ports = [await gateway(), (await startGateway(perTest, '127.0.0.1:1')).port];
    for (const port of ports) {
      for (const path of ['/healthz', '/readyz', '/metrics', '/status', '/status.json']) {
        for (const method of ['POST', 'PUT', 'DELETE']) {
          const refused = await http(port, method, path);
          expect(refused.status, `${method} ${path}`).toBe(405);
          expect(refused.headers.allow).toBe('GET, HEAD, OPTIONS');
          expect(JSON.parse(refused.body)).toMatchObject({ key: null, errorcode: 1 });
        }
        const options = await http(port, 'OPTIONS', path);
        expect(options.status, `OPTIONS ${path}`).toBe(204);
        expect(options.headers.allow).toBe('GET, HEAD, OPTIONS');
      }
    }
  });

  it('answers /readyz 503 with the reason while it is not registered with the distributor', async () => {
    const { port } = await startGateway(perTest, '127.0.0.1:1');
    const health = await http(port, 'GET', '/healthz');
    expect(health.status).toBe(200);
    const ready = await http(port, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body).reasons).toEqual([
      'not registered with the distributor',
      'no node list received from the distributor yet',
    ]);
    // Its refusals carry the request's id like any answer: the client's own, or a new one.
    const refused = await http(port, 'GET', '/goods', { headers: { 'X-Request-Id': 'while-not-ready' } });
    expect(refused.status).toBe(503);
    expect(refused.headers['x-request-id']).toBe('while-not-ready');
    const coded = await http(port, 'POST', '/goods', {
      body: '{}',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'gzip, chunked' },
    });
    expect(coded.status).toBeGreaterThanOrEqual(400);
    expect(coded.headers['x-request-id']).toMatch(UUID);
  });

  it('before any service registers a route: /readyz 503 saying so, and an unknown path 503 (not 404)', async () => {
    const local = new Closer();
    try {
      const { address } = await startDistributor(local);
      const { gateway: started, port } = await startGateway(local, address);
      await vi.waitFor(async () => {
        const ready = await http(port, 'GET', '/readyz');
        expect([ready.status, JSON.parse(ready.body).reasons]).toEqual([
          503,
          ['no service has registered a route yet'],
        ]);
      });
      // The gateway knows no route yet: GET /goods may be one on its way (npm start starts the
      // gateway before the services), so "try again", not "no such route".
      const early = await http(port, 'GET', '/goods');
      expect([early.status, early.headers['retry-after'], early.body]).toEqual([
        503,
        '1',
        '{"key":null,"errorcode":1,"errormessage":"No service has registered a route with the gateway yet"}',
      ]);
      await startFakeGoods(local, address);
      await waitForRoute(started, 'GET /goods', 1);
      expect((await http(port, 'GET', '/readyz')).status).toBe(200);
      expect((await http(port, 'GET', '/goods')).status).toBe(200);
      // Once routes are known, a path none of them matches is 404 again.
      expect((await http(port, 'GET', '/nope')).status).toBe(404);
    } finally {
      await local.closeAll();
    }
  });

  it('answers /readyz 503 naming each route left without a serving instance, and 200 again when one is back', async () => {
    const local = new Closer();
    try {
      const { address } = await startDistributor(local);
      const localGoods = await startFakeGoods(local, address);
      const { gateway: started, port } = await startGateway(local, address);
      await waitForRoute(started, 'GET /goods', 1);
      expect((await http(port, 'GET', '/readyz')).status).toBe(200);
      await localGoods.stop();
      await vi.waitFor(async () => {
        const ready = await http(port, 'GET', '/readyz');
        expect(ready.status).toBe(503);
        expect(JSON.parse(ready.body).reasons).toEqual([
          'no serving instance for POST /goods',
          'no serving instance for GET /goods',
          'no serving instance for DELETE /goods',
          'no serving instance for DELETE /goods/{id}',
        ]);
      });
      await startFakeGoods(local, address);
      await vi.waitFor(async () => expect((await http(port, 'GET', '/readyz')).status).toBe(200));
    } finally {
      await local.closeAll();
    }
  });

  it('counts a route no instance serves against /readyz only for a while: one service retired or down does not keep the gateway out for good', async () => {
    const local = new Closer();
    try {
      const { address } = await startDistributor(local);
      const localGoods = await startFakeGoods(local, address);
      const localMembers = await startFakeMembers(local, address);
      const { gateway: started, port } = await startGateway(local, address, {
        unservedRouteReadyAfterMs: 1_000,
      });
      await waitForRoute(started, 'GET /goods', 1);
      await waitForRoute(started, 'POST /members', 1);
      expect((await http(port, 'GET', '/readyz')).status).toBe(200);
      await localGoods.stop();
      await vi.waitFor(async () => {
        const ready = await http(port, 'GET', '/readyz');
        expect([ready.status, JSON.parse(ready.body).reasons]).toEqual([
          503,
          expect.arrayContaining(['no serving instance for GET /goods']),
        ]);
      });
      // A second later goods counts as retired: ready, while its routes still answer 503 (not 404).
      await vi.waitFor(async () => expect((await http(port, 'GET', '/readyz')).status).toBe(200), {
        timeout: 3_000,
        interval: 100,
      });
      expect((await http(port, 'GET', '/goods')).status).toBe(503);
      // Nothing serving at all is never ready, however long ago it went.
      await localMembers.stop();
      await vi.waitFor(
        async () => {
          const ready = await http(port, 'GET', '/readyz');
          expect([ready.status, JSON.parse(ready.body).reasons]).toEqual([
            503,
            ['no route has a serving instance'],
          ]);
        },
        { timeout: 3_000, interval: 100 },
      );
    } finally {
      await local.closeAll();
    }
  });

  it('with METRICS=off and REQUEST_IDS=off: no id, no /metrics, nothing sent but the call', async () => {
    const port = await gateway({ observability: { metrics: false, requestIds: false } });
    const answer = await http(port, 'GET', '/goods', { headers: { 'X-Request-Id': 'client-id' } });
    expect(answer.headers['x-request-id']).toBeUndefined();
    expect(seen[0]?.get('x-request-id')).toEqual([]);
    const metrics = await http(port, 'GET', '/metrics');
    expect([metrics.status, metrics.body]).toEqual([
      404,
      '{"key":null,"errorcode":1,"errormessage":"Metrics are off on this gateway (METRICS=off)"}',
    ]);
    expect(metrics.headers['retry-after']).toBeUndefined();
    // Health stays: a load balancer needs it whatever the metrics.
    expect((await http(port, 'GET', '/readyz')).status).toBe(200);
  });

  it('with METRICS=off, /metrics is 404 before any service has registered too, not 503 "try again"', async () => {
    const local = new Closer();
    try {
      const empty = (await startDistributor(local)).address;
      const { port } = await startGateway(local, empty, { observability: { metrics: false } });
      // Any other path is 503 then: a route may be on its way (see the README's "What a REST client sees").
      await vi.waitFor(async () => expect((await http(port, 'GET', '/nowhere')).status).toBe(503));
      const metrics = await http(port, 'GET', '/metrics');
      expect(metrics.status).toBe(404);
      expect(metrics.headers['retry-after']).toBeUndefined();
      expect((await http(port, 'POST', '/metrics')).status).toBe(405);
    } finally {
      await local.closeAll();
    }
  });

  it("with METRICS=off and REQUEST_IDS=off (and tracing off) still passes a caller's trace context on", async () => {
    const port = await gateway({ observability: { metrics: false, requestIds: false } });
    await http(port, 'DELETE', '/goods?id=1', {
      headers: { traceparent: TRACEPARENT, tracestate: 'shop=1', 'Idempotency-Key': 'key-2' },
    });
    expect(first(seen[0], 'traceparent')).toBe(TRACEPARENT);
    expect(first(seen[0], 'tracestate')).toBe('shop=1');
    expect(first(seen[0], 'idempotency-key')).toBe('key-2');
    // A malformed one is still dropped.
    await http(port, 'GET', '/goods', { headers: { traceparent: 'nonsense', tracestate: 'shop=1' } });
    expect(seen[1]?.get('traceparent')).toEqual([]);
    expect(seen[1]?.get('tracestate')).toEqual([]);
  });

  it.each([
    ['observed', { clientTraceContext: 'link' as const }],
    ['with nothing observed', { clientTraceContext: 'link' as const, metrics: false, requestIds: false }],
  ])(
    "with --client-trace-context link (and tracing off), %s, takes no client's trace context further",
    async (_label, observability) => {
      const port = await gateway({ observability });
      const answer = await http(port, 'GET', '/goods', {
        headers: { traceparent: TRACEPARENT, tracestate: 'shop=1' },
      });
      expect(answer.status).toBe(200);
      expect(seen[0]?.get('traceparent')).toEqual([]);
      expect(seen[0]?.get('tracestate')).toEqual([]);
    },
  );
});
