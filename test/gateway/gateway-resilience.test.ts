import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { NodeState } from '../../src/gen/distributor.js';
import { http, httpJson, oneConnection, raw, rawBody, rawInPieces } from '../helpers/http.js';
import { sample, scrape } from '../helpers/prometheus.js';
import { unloadedStopwatch } from '../helpers/unloaded-stopwatch.js';
import {
  Closer,
  startCuttableProxy,
  startDistributor,
  startGateway,
  waitForRoute,
} from './support/cluster.js';
import { type FakeGoods, startFakeGoods } from './support/fake-shop.js';

const ROW = { id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
const GOODS = JSON.stringify({ name: 'n', category: 'c', price: 1, description: 'd' });

function keyOf(body: string): number {
  return Number(/^\{"key":(\d+),/.exec(body)?.[1]);
}

/** Opens a TCP connection and resolves once it is connected. */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

describe('gateway under hostile or unlucky clients', () => {
  const shared = new Closer();
  const perTest = new Closer();
  let distributor: string;
  let goods: FakeGoods;

  beforeAll(async () => {
    distributor = (await startDistributor(shared)).address;
    goods = await startFakeGoods(shared, distributor, {}, [ROW]);
  });
  afterEach(() => perTest.closeAll());
  afterAll(() => shared.closeAll());

  async function gateway(options: Parameters<typeof startGateway>[2] = {}) {
    const started = await startGateway(perTest, distributor, options);
    await waitForRoute(started.gateway, 'GET /goods', 1);
    return started;
  }

  it('refuses a body whose Content-Length is over the limit without reading it, and closes', async () => {
    const { port } = await gateway();
    const calls = goods.calls.CreateGoods ?? 0;
    const response = await raw(
      port,
      'POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n{"name":',
    );
    expect(response).toMatch(/^HTTP\/1\.1 413 Payload Too Large\r\n/);
    expect(response).toMatch(/\r\nConnection: close\r\n/i);
    expect(rawBody(response)).toBe(
      `{"key":${keyOf(rawBody(response))},"errorcode":1,"errormessage":"Request body larger than 1048576 bytes"}`,
    );
    expect(goods.calls.CreateGoods ?? 0).toBe(calls);
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
  });

  it('answers 413 to a 10 MB body while it is still being sent', async () => {
    const { port } = await gateway();
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let written = 0;
    const status = await new Promise<number>((resolve, reject) => {
      const outgoing = request({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/goods',
        headers: { 'Content-Type': 'application/json', 'Content-Length': 10 * 1024 * 1024 },
      });
      outgoing.on('response', (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
        outgoing.destroy();
      });
      outgoing.on('error', (error) => (written > 0 ? undefined : reject(error)));
      const pump = (): void => {
        while (written < 10 * 1024 * 1024) {
          written += chunk.length;
          if (!outgoing.write(chunk)) {
            outgoing.once('drain', pump);
            return;
          }
        }
        outgoing.end();
      };
      pump();
    });
    expect(status).toBe(413);
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
  });

  it('stops reading a chunked body as soon as it passes the limit, answers 413 and stays up', async () => {
    const { port } = await gateway({ bodyLimitBytes: 1024 });
    const result = await new Promise<{ status: number; body: string; sentWhenAnswered: number }>(
      (resolve) => {
        let sent = 0;
        const outgoing = request({
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/goods',
          headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
        });
        const timer = setInterval(() => {
          sent += 256;
          outgoing.write(Buffer.alloc(256, 0x20));
        }, 2);
        outgoing.on('response', (response) => {
          clearInterval(timer);
          const chunks: Buffer[] = [];
          response.on('data', (data: Buffer) => chunks.push(data));
          response.on('end', () => {
            resolve({
              status: response.statusCode ?? 0,
              body: Buffer.concat(chunks).toString(),
              sentWhenAnswered: sent,
            });
            outgoing.destroy();
          });
        });
        outgoing.on('error', () => clearInterval(timer));
      },
    );
    expect(result.status).toBe(413);
    expect(result.body).toBe(
      `{"key":${keyOf(result.body)},"errorcode":1,"errormessage":"Request body larger than 1024 bytes"}`,
    );
    expect(result.sentWhenAnswered).toBeLessThan(64 * 1024);
    // A chunked body within the limit is read normally.
    const small = await http(port, 'POST', '/goods', {
      headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      body: GOODS,
    });
    expect(small.body).toBe(`{"key":${keyOf(small.body)},"errorcode":0,"errormessage":"success"}`);
    goods.goods.splice(1);
  });

  it('a 413 on a whole chunked body says Connection: close and ends the connection, so no next request is sent there', async () => {
    const { port } = await gateway({ bodyLimitBytes: 1024 });
    const started = Date.now();
    const result = await new Promise<{ received: string; endedAfterMs: number }>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let received = '';
      socket.on('data', (data) => {
        received += data.toString();
      });
      socket.on('error', () => undefined);
      // The gateway's side ending (EOF) is what a keep-alive client takes as "do not reuse".
      socket.on('end', () => {
        resolve({ received, endedAfterMs: Date.now() - started });
        socket.destroy();
      });
      const piece = ' '.repeat(1024);
      socket.write(
        `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${`400\r\n${piece}\r\n`.repeat(4)}0\r\n\r\n`,
      );
    });
    const head = result.received.slice(0, result.received.indexOf('\r\n\r\n'));
    expect(head).toMatch(/^HTTP\/1\.1 413 /);
    expect(head).toMatch(/\r\nConnection: close(\r\n|$)/);
    expect(result.received).toContain('"errormessage":"Request body larger than 1024 bytes"');
    expect(result.endedAfterMs).toBeLessThan(1_500);
  });

  it('answers Expect: 100-continue with 413 before the body, or lets it come', async () => {
    const { port } = await gateway({ bodyLimitBytes: 1024 });
    const refused = await raw(
      port,
      'POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4096\r\nExpect: 100-continue\r\n\r\n',
    );
    expect(refused).toMatch(/^HTTP\/1\.1 413 /);
    expect(refused).not.toContain('100 Continue');
    const accepted = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let received = '';
      socket.on('data', (data) => {
        received += data.toString();
        if (received.startsWith('HTTP/1.1 100 Continue\r\n\r\n') && !received.includes('200 OK'))
          socket.write(GOODS);
        if (received.includes('"errormessage"')) {
          socket.destroy();
          resolve(received);
        }
      });
      socket.write(
        `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${GOODS.length}\r\nExpect: 100-continue\r\n\r\n`,
      );
    });
    expect(accepted).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    goods.goods.splice(1);
  });

  it('survives garbage bytes, answering 400 with the envelope', async () => {
    const { port } = await gateway();
    for (const garbage of [
      '\u0000\u0001\u0002GARBAGE\r\n\r\n',
      'GET / HTTP/9.9\r\n\r\n',
      `${'x'.repeat(20_000)}\r\n\r\n`,
    ]) {
      const response = await raw(port, garbage);
      expect(response).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(rawBody(response)).toBe('{"key":null,"errorcode":1,"errormessage":"Malformed HTTP request"}');
    }
    const oversized = await raw(port, `GET /goods HTTP/1.1\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`);
    expect(oversized).toMatch(/^HTTP\/1\.1 431 /);
    // A URL over the limit for the whole head is one too long (RFC 9110: 414), not headers.
    const longUrl = await raw(port, `GET /goods?${'q'.repeat(20_000)} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    expect(longUrl).toMatch(/^HTTP\/1\.1 414 URI Too Long\r\n/);
    expect(rawBody(longUrl)).toBe('{"key":null,"errorcode":1,"errormessage":"The request URL is too long"}');
    // One that arrives in pieces, the limit passed in a piece that is not its start: 431 still.
    const inPieces = await rawInPieces(port, [
      `GET /goods?${'q'.repeat(10_000)}`,
      `${'q'.repeat(10_000)} HTTP/1.1\r\n\r\n`,
    ]);
    expect(inPieces).toMatch(/^HTTP\/1\.1 431 /);
    // A long URL with headers that pass the limit with it: the headers are too large.
    const both = await raw(
      port,
      `GET /goods?${'q'.repeat(9_000)} HTTP/1.1\r\nX-Big: ${'y'.repeat(9_000)}\r\n\r\n`,
    );
    expect(both).toMatch(/^HTTP\/1\.1 431 /);
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
  });

  it('survives clients that leave in the middle of a body', async () => {
    const { port } = await gateway();
    const calls = goods.calls.CreateGoods ?? 0;
    for (let count = 0; count < 20; count++) {
      const socket = await open(port);
      socket.write(
        'POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na',
      );
      socket.destroy();
    }
    const chunked = await open(port);
    chunked.write(
      'POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"na\r\n',
    );
    chunked.end();
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
    expect(goods.calls.CreateGoods ?? 0).toBe(calls);
  });

  it('keeps serving while 1,000 idle connections are held open', async () => {
    const { port } = await gateway();
    const sockets: Socket[] = [];
    try {
      for (let batch = 0; batch < 10; batch++) {
        sockets.push(...(await Promise.all(Array.from({ length: 50 }, () => open(port)))));
      }
      // Half of them idle after one request on a keep-alive connection, half never sent a byte.
      const agents = Array.from({ length: 500 }, () => oneConnection());
      await Promise.all(agents.map((agent) => http(port, 'GET', '/nope', { agent })));
      // Timed less the test's waits for a CPU (gateway, shop and client all run in it): a busy
      // machine took 6.4 s for the whole test, but a gateway slowed by the idle connections, in work
      // or in waits, still fails.
      const took = unloadedStopwatch();
      const results = await Promise.all(Array.from({ length: 50 }, () => httpJson(port, 'GET', '/goods')));
      expect(results.map((result) => result.status)).toEqual(Array(50).fill(200));
      expect(took()).toBeLessThan(5_000);
      for (const agent of agents) agent.destroy();
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  /**
   * A thousand GET `path` in one write, which Node parses at once: checks that they are answered
   * 200, then one 503 for the first past 16 in flight, and the connection closed; returns how many
   * were answered 200. One read brings them all (16 answered, the 17th refused); were the write
   * split across reads, answers sent meanwhile would free slots, so only the shape is certain.
   */
  async function pipelinedThousand(port: number, path: string): Promise<number> {
    const answers = await raw(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`.repeat(1_000));
    const statuses = [...answers.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));
    expect(statuses.at(-1)).toBe(503);
    expect(statuses.slice(0, -1)).toEqual(Array(statuses.length - 1).fill(200));
    expect(statuses.length).toBeGreaterThanOrEqual(17);
    expect(statuses.length).toBeLessThan(1_000);
    expect(answers).toContain('"errormessage":"More than 16 requests in flight on one connection"');
    return statuses.length - 1;
  }

  it('answers past 16 pipelined requests on one connection 503 and closes it, calling upstream at most 16 times', async () => {
    const { port } = await gateway();
    const calls = goods.calls.ListGoods ?? 0;
    // A thousand requests in one write: Node parses them all at once.
    const answered = await pipelinedThousand(port, '/goods');
    expect((goods.calls.ListGoods ?? 0) - calls).toBe(answered);
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
  });

  it('holds requests for its own pages to the same 16 pipelined: a thousand /healthz in one write get 16 answers and a 503', async () => {
    const { port } = await gateway();
    // Answered at once, each still counts until its answer has gone (its response's close).
    const answered = await pipelinedThousand(port, '/healthz');
    // Refused or answered, each is counted as the page it asked for: the refusals after the first
    // too, whose answers were written but dropped with the connection (as many as Node parsed).
    const healthz = { http_request_method: 'GET', http_route: '/healthz' };
    await vi.waitFor(async () => {
      const metrics = await scrape(`http://127.0.0.1:${port}/metrics`);
      const count = (status: string) =>
        sample(metrics, 'http_server_request_duration_seconds_count', {
          ...healthz,
          http_response_status_code: status,
        }) ?? 0;
      expect(count('200')).toBe(answered);
      expect(count('503')).toBeGreaterThanOrEqual(1);
      expect(count('503')).toBeLessThanOrEqual(1_000 - answered);
    });
  });

  it('holds at most its body budget of bytes received: past it a body is 503, and the budget comes back', async () => {
    const { port } = await gateway({ bodyLimitBytes: 1_024, bodyBudgetBytes: 4_092 });
    const upload = (bytes: number) =>
      `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1024\r\n\r\n${' '.repeat(bytes)}`;
    const stalled: Socket[] = [];
    try {
      // Declared lengths hold nothing until their bytes come: ten uploads that send none.
      for (let count = 0; count < 10; count++) {
        const socket = await open(port);
        socket.write(upload(0));
        stalled.push(socket);
      }
      expect((await httpJson(port, 'POST', '/goods', JSON.parse(GOODS))).status).toBe(200);
      // Four that send 1,000 bytes and stop hold all but 92: a body that does not fit in what is
      // left is refused once its bytes pass it.
      for (let count = 0; count < 4; count++) {
        const socket = await open(port);
        socket.write(upload(1_000));
        stalled.push(socket);
      }
      const large = JSON.stringify({ ...JSON.parse(GOODS), description: 'd'.repeat(100) });
      await vi.waitFor(async () => {
        const refused = await httpJson(port, 'POST', '/goods', JSON.parse(large));
        expect([refused.status, refused.headers['retry-after']]).toEqual([503, '1']);
        expect(refused.body).toContain(
          '"errormessage":"The gateway is reading too many request bodies at once"',
        );
      });
      // A fifth takes the rest: then a body is refused before a byte of it is read, and its
      // connection closes.
      const last = await open(port);
      last.write(upload(92));
      stalled.push(last);
      await vi.waitFor(async () => {
        const refused = await httpJson(port, 'POST', '/goods', JSON.parse(GOODS));
        expect([refused.status, refused.headers.connection]).toEqual([503, 'close']);
      });
    } finally {
      for (const socket of stalled) socket.destroy();
    }
    await vi.waitFor(async () =>
      expect((await httpJson(port, 'POST', '/goods', JSON.parse(GOODS))).status).toBe(200),
    );
  });

  it('closes a connection that sends nothing', async () => {
    const { port } = await gateway({ headersTimeoutMs: 200 });
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    await new Promise((resolve) => socket.on('close', resolve));
    expect(Date.now() - started).toBeLessThan(2_000);
    // Node's own check of the headers timeout says why, before the gateway's backstop closes it.
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    // It made no request (a browser's preconnect never used): none is counted, no error rate rises.
    const metrics = (await http(port, 'GET', '/metrics')).body;
    expect(metrics).not.toMatch(/http_response_status_code="408"/);
  });

  it('answers 408, and counts it, to a client that sends its headers too slowly', async () => {
    const { port } = await gateway({ headersTimeoutMs: 300 });
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    socket.write('GET /goods HTTP/1.1\r\nHost: localhost\r\n');
    await new Promise((resolve) => socket.on('close', resolve));
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    const metrics = (await http(port, 'GET', '/metrics')).body;
    expect(metrics).toMatch(
      /^http_server_request_duration_seconds_count\{http_request_method="_OTHER",http_route="unmatched",http_response_status_code="408"\} 1$/m,
    );
  });

  it('answers 503 with a null key until the distributor has sent a route table', async () => {
    const { port } = await startGateway(perTest, '127.0.0.1:1');
    const result = await httpJson(port, 'GET', '/goods');
    expect(result.status).toBe(503);
    expect(result.headers['retry-after']).toBe('1');
    expect(result.body).toBe(
      '{"key":null,"errorcode":1,"errormessage":"The gateway has not received the route table from the distributor yet"}',
    );
  });

  it('keeps routing from the last route table while the distributor is unreachable', async () => {
    // The gateway reaches the distributor through a proxy that is then cut: a crash or a network
    // loss, where nobody says goodbye.
    const proxy = await startCuttableProxy(perTest, distributor);
    const { gateway: started, port } = await startGateway(perTest, proxy.address);
    await waitForRoute(started, 'GET /goods', 1);
    const revision = started.revision;
    proxy.cut();
    for (let count = 0; count < 3; count++) expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
    expect(started.revision).toBe(revision);
  });

  it('stops gracefully: in-flight requests finish, idle connections close at once, new ones are refused', async () => {
    const slowDistributor = await startDistributor(perTest);
    let release: () => void = () => {};
    let arrived = false;
    await startFakeGoods(
      perTest,
      slowDistributor.address,
      {
        onCall: () =>
          new Promise<void>((resolve) => {
            arrived = true;
            release = resolve;
          }),
      },
      [ROW],
    );
    const { gateway: started, port } = await startGateway(perTest, slowDistributor.address);
    await waitForRoute(started, 'GET /goods', 1);
    const silent = await open(port);
    const inFlight = httpJson(port, 'GET', '/goods');
    await vi.waitFor(() => expect(arrived).toBe(true));

    const stopping = started.stop();
    await new Promise((resolve) => silent.on('close', resolve));
    await expect(open(port)).rejects.toThrow(/ECONNREFUSED/);
    release();
    const result = await inFlight;
    expect(result.status).toBe(200);
    expect(result.headers.connection).toBe('close');
    const begun = Date.now();
    await stopping;
    expect(Date.now() - begun).toBeLessThan(1_000);
  });

  it('a body that comes after the stop left its call no time is answered 503, not cut unanswered with the call made', async () => {
    const slowDistributor = await startDistributor(perTest);
    let calls = 0;
    await startFakeGoods(perTest, slowDistributor.address, {
      // Never answers: a call made would hold its connection until the stop's grace cut it.
      onCall: () => {
        calls++;
        return new Promise<void>(() => {});
      },
    });
    // A stop waits 3 s for requests in flight; a call must end 1 s before that for its answer to go.
    const { gateway: started, port } = await startGateway(perTest, slowDistributor.address, {
      deadlineMs: 400,
      stopGraceMs: 3_000,
    });
    await waitForRoute(started, 'POST /goods', 1);
    const socket = await open(port);
    const answer = new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', () => {});
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    socket.write(
      `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${GOODS.length}\r\n\r\n${GOODS.slice(0, 5)}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stopping = started.stop();
    // The rest of the body 2.3 s into the stop, past the 2 s a call had: 0.7 s before the grace
    // ends, room for a loaded machine.
    await new Promise((resolve) => setTimeout(resolve, 2_300));
    socket.write(GOODS.slice(5));
    expect(await answer).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(calls).toBe(0);
    await stopping;
  });

  it('drains before it stops: serves on, /readyz 503 and every answer closing its connection, then refuses', async () => {
    const { gateway: started, port } = await gateway({ drainDelayMs: 600 });
    const agent = oneConnection();
    expect((await http(port, 'GET', '/readyz')).status).toBe(200);
    expect((await httpJson(port, 'GET', '/goods', undefined, agent)).headers.connection).not.toBe('close');

    const begun = Date.now();
    const draining = started.drain();
    expect(started.drain()).toBe(draining);
    const ready = await http(port, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toContain('the gateway is stopping');
    // The distributor lists it as draining.
    const registration = started.registration!;
    await vi.waitFor(() =>
      expect(registration.snapshot?.nodes.find((node) => node.id === registration.nodeId)?.state).toBe(
        NodeState.NODE_STATE_DRAINING,
      ),
    );
    // Still served, on the kept connection and on a new one; each answer closes its connection.
    for (let i = 0; i < 2; i++) {
      const answer = await httpJson(port, 'GET', '/goods', undefined, agent);
      expect(answer.status).toBe(200);
      expect(answer.headers.connection).toBe('close');
    }
    const created = await httpJson(port, 'POST', '/goods', JSON.parse(GOODS));
    expect(created.status).toBe(200);
    expect(created.body).toMatch(/"errormessage":"success"/);
    await draining;
    expect(Date.now() - begun).toBeGreaterThanOrEqual(550);
    await started.stop();
    await expect(open(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('draining, works on no request pipelined behind one whose answer closes the connection: a write is not done unanswered', async () => {
    const { gateway: started, port } = await gateway({ drainDelayMs: 60_000 });
    void started.drain();
    const calls = goods.calls.CreateGoods ?? 0;
    const answers = await raw(
      port,
      'GET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n' +
        `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${GOODS.length}\r\n\r\n${GOODS}`,
    );
    expect([...answers.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1])).toEqual(['200']);
    expect(answers).toMatch(/\r\nConnection: close\r\n/i);
    expect(goods.calls.CreateGoods ?? 0).toBe(calls);
  });

  it('a drain that begins while two pipelined requests are with a service answers both: the last one closes', async () => {
    const slowDistributor = await startDistributor(perTest);
    const held: (() => void)[] = [];
    const slowGoods = await startFakeGoods(
      perTest,
      slowDistributor.address,
      { onCall: () => new Promise<void>((resolve) => held.push(resolve)) },
      [ROW],
    );
    const { gateway: started, port } = await startGateway(perTest, slowDistributor.address, {
      drainDelayMs: 60_000,
    });
    await waitForRoute(started, 'GET /goods', 1);
    const socket = await open(port);
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    const closed = new Promise((resolve) => socket.on('close', resolve));
    // Two GETs: a POST is worked on alone (RFC 9112, section 9.3.2), never beside another request.
    socket.write('GET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n'.repeat(2));
    // Both are with goods (two are worked on at once) when the drain begins.
    await vi.waitFor(() => expect(held).toHaveLength(2));
    void started.drain();
    for (const release of held) release();
    await closed;
    const answers = received.split('HTTP/1.1 ').slice(1);
    expect(answers.map((answer) => answer.slice(0, 3))).toEqual(['200', '200']);
    expect(answers.map((answer) => /\r\nConnection: close\r\n/i.test(answer))).toEqual([false, true]);
    expect(received).toMatch(/"errormessage":"success","results":\[.*\]\}$/);
    expect(slowGoods.calls.ListGoods).toBe(2);
  });

  it('a stop during the drain ends the drain at once, and one without a drain delay stops at once', async () => {
    const { gateway: drained } = await gateway({ drainDelayMs: 60_000 });
    const draining = drained.drain();
    const begun = Date.now();
    await drained.stop();
    await draining;
    expect(Date.now() - begun).toBeLessThan(2_000);
    const { gateway: plain, port } = await gateway();
    await plain.drain();
    expect((await http(port, 'GET', '/readyz')).status).toBe(200);
  });

  it("a stop waits for a request in flight 7 s at most, whatever the deadline, to stay inside the launcher's 10 s with the trace flush", async () => {
    const slowDistributor = await startDistributor(perTest);
    let arrived = false;
    await startFakeGoods(
      perTest,
      slowDistributor.address,
      {
        // Never answers: the call waits for its deadline, a minute here.
        onCall: () => {
          arrived = true;
          return new Promise<void>(() => {});
        },
      },
      [ROW],
    );
    const { gateway: started, port } = await startGateway(perTest, slowDistributor.address, {
      deadlineMs: 60_000,
    });
    await waitForRoute(started, 'GET /goods', 1);
    const inFlight = httpJson(port, 'GET', '/goods').then(
      () => 'answered',
      () => 'cut off',
    );
    await vi.waitFor(() => expect(arrived).toBe(true));
    const begun = Date.now();
    await started.stop();
    const took = Date.now() - begun;
    expect(took).toBeGreaterThanOrEqual(6_900);
    expect(took).toBeLessThan(8_500);
    expect(await inFlight).toBe('cut off');
  }, 20_000);
});
