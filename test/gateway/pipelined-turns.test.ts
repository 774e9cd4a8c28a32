import { connect, type Socket } from 'node:net';
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { httpJson } from '../helpers/http.js';
import { sample, scrape } from '../helpers/prometheus.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { type FakeGoods, startFakeGoods } from './support/fake-shop.js';

// Requests a client pipelines on one HTTP/1.1 connection take turns (Connection.mayStart and
// waitTurn): two are worked on at once, the next when an answer before it has gone; one that is not
// safe (POST, DELETE) alone.

const ROW = { id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
const LIST_GOODS = 'GET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n';
const GOODS = JSON.stringify({ name: 'n', category: 'c', price: 1, description: 'd' });

/** A connection that collects what it reads: `statuses()` are the answers' status codes so far. */
function pipeliningClient(port: number): { socket: Socket; statuses(): number[]; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const statuses = () => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));
  return { socket, statuses, closed };
}

describe('requests pipelined on one connection', () => {
  const shared = new Closer();
  const perTest = new Closer();
  let distributor: string;
  let goods: FakeGoods;
  /** How a call to the fake goods is answered: by default at once. */
  let answerCall: (method: string, call: ServerUnaryCall<unknown, unknown>) => Promise<void> | void =
    () => {};

  beforeAll(async () => {
    distributor = (await startDistributor(shared)).address;
    goods = await startFakeGoods(
      shared,
      distributor,
      { onCall: (method, call) => answerCall(method, call) },
      [ROW],
    );
  });
  afterEach(async () => {
    answerCall = () => {};
    await perTest.closeAll();
  });
  afterAll(() => shared.closeAll());

  async function gateway(options: Parameters<typeof startGateway>[2] = {}) {
    const started = await startGateway(perTest, distributor, options);
    await waitForRoute(started.gateway, 'GET /goods', 1);
    return started;
  }

  /**
   * Holds every call to the fake goods until released; `made` counts the ListGoods calls since,
   * `cancelled` those of them the gateway cancelled.
   */
  function holdCalls(): { made(): number; cancelled(): number; releaseOne(): void; releaseAll(): void } {
    const held: (() => void)[] = [];
    let cancelled = 0;
    answerCall = (_, call) => {
      call.once('cancelled', () => cancelled++);
      return new Promise<void>((resolve) => held.push(resolve));
    };
    const before = goods.calls.ListGoods ?? 0;
    return {
      made: () => (goods.calls.ListGoods ?? 0) - before,
      cancelled: () => cancelled,
      releaseOne: () => held.shift()?.(),
      releaseAll: () => {
        answerCall = () => {};
        for (const release of held.splice(0)) release();
      },
    };
  }

  it('are worked on two at once, the next as an answer before it leaves; other connections go on', async () => {
    const { port } = await gateway();
    const calls = holdCalls();
    const client = pipeliningClient(port);
    client.socket.write(LIST_GOODS.repeat(6));
    await vi.waitFor(() => expect(calls.made()).toBe(2));
    // A moment more: the other four wait for the first two answers.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(calls.made()).toBe(2);
    // Another connection is not held back by this one.
    const other = httpJson(port, 'GET', '/goods');
    await vi.waitFor(() => expect(calls.made()).toBe(3));
    // One answer goes: one more call, no more.
    calls.releaseOne();
    await vi.waitFor(() => expect(client.statuses()).toEqual([200]));
    await vi.waitFor(() => expect(calls.made()).toBe(4));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(calls.made()).toBe(4);
    calls.releaseAll();
    await vi.waitFor(() => expect(client.statuses()).toEqual([200, 200, 200, 200, 200, 200]));
    expect(calls.made()).toBe(7);
    expect((await other).status).toBe(200);
    client.socket.destroy();
  });

  it.each([
    [
      'a body',
      `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${GOODS.length}\r\n\r\n${GOODS}`,
    ],
    [
      'a chunked body',
      `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${GOODS.length.toString(16)}\r\n${GOODS}\r\n0\r\n\r\n`,
    ],
    [
      'Expect: 100-continue',
      `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${GOODS.length}\r\n\r\n${GOODS}`,
    ],
  ])(
    'a request with %s reaches its turn after the requests behind it, and all are answered in order',
    async (_, post) => {
      // Its body is read before it asks for its turn, while Node hands over the requests behind it:
      // the GET after it waits for it, and a request answered at once sits between them.
      const { port } = await gateway();
      answerCall = () => new Promise<void>((resolve) => setTimeout(resolve, 30));
      const client = pipeliningClient(port);
      const health = 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n';
      const missing = 'GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n';
      client.socket.write(LIST_GOODS + LIST_GOODS + post + missing + health + LIST_GOODS);
      const finals = () => client.statuses().filter((code) => code !== 100);
      await vi.waitFor(() => expect(finals()).toHaveLength(6), { timeout: 5_000, interval: 20 });
      // A 100 Continue, if any, comes right before its own answer's final status.
      const continued = post.includes('Expect: 100-continue');
      expect(client.statuses()).toEqual(
        continued ? [200, 200, 100, 200, 404, 200, 200] : [200, 200, 200, 404, 200, 200],
      );
      client.socket.destroy();
    },
  );

  it('a request that is not safe is worked on alone: a GET behind a POST waits for its answer, a POST for the GET before it', async () => {
    // RFC 9112, section 9.3.2: pipelined requests may be worked on in parallel only if they are all
    // safe. Worked on beside the POST, the GET behind it read the list before the POST's row was in.
    const { port } = await gateway();
    const held: (() => void)[] = [];
    answerCall = () => new Promise<void>((resolve) => held.push(resolve));
    const count = (method: string) => goods.calls[method] ?? 0;
    const [lists, creates] = [count('ListGoods'), count('CreateGoods')];
    const post = `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${GOODS.length}\r\n\r\n${GOODS}`;
    const client = pipeliningClient(port);
    client.socket.write(LIST_GOODS + post + LIST_GOODS);
    await vi.waitFor(() => expect(count('ListGoods') - lists).toBe(1));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The POST waits for the GET before it.
    expect(count('CreateGoods') - creates).toBe(0);
    held.shift()?.();
    await vi.waitFor(() => expect(count('CreateGoods') - creates).toBe(1));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The GET behind the POST waits for the POST's answer.
    expect(count('ListGoods') - lists).toBe(1);
    held.shift()?.();
    await vi.waitFor(() => expect(count('ListGoods') - lists).toBe(2));
    answerCall = () => {};
    for (const release of held.splice(0)) release();
    await vi.waitFor(() => expect(client.statuses()).toEqual([200, 200, 200]));
    client.socket.destroy();
  });

  it('a request whose turn comes once an answer before it has closed the connection makes no call', async () => {
    const { port } = await gateway();
    const calls = holdCalls();
    const client = pipeliningClient(port);
    // OPTIONS with a body is answered at once, with Connection: close (its body is not read).
    const closing = 'OPTIONS /goods HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}';
    client.socket.write(LIST_GOODS + LIST_GOODS + closing + LIST_GOODS + LIST_GOODS);
    await vi.waitFor(() => expect(calls.made()).toBe(2));
    calls.releaseAll();
    await client.closed;
    expect(client.statuses()).toEqual([200, 200, 204]);
    // The fourth's turn came while the answer before it was still going out (one call lost); the
    // fifth's after it had closed the connection.
    expect(calls.made()).toBe(3);
  });

  it('a request with Expect: 100-continue right behind another gets its 100 before its answer, and the connection stays', async () => {
    const { port } = await gateway();
    // The list before it is slow, so that its own answer is ready before it reaches the socket.
    answerCall = (method) =>
      method === 'ListGoods' ? new Promise<void>((resolve) => setTimeout(resolve, 200)) : undefined;
    const client = pipeliningClient(port);
    const expecting = `POST /goods HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${GOODS.length}\r\n\r\n${GOODS}`;
    client.socket.write(LIST_GOODS + expecting + LIST_GOODS);
    await vi.waitFor(() => expect(client.statuses()).toHaveLength(4), { timeout: 5_000, interval: 20 });
    expect(client.statuses()).toEqual([200, 100, 200, 200]);
    expect(
      await Promise.race([client.closed, new Promise((resolve) => setTimeout(resolve, 200, 'open'))]),
    ).toBe('open');
    client.socket.destroy();
  });

  it('when the client leaves, both requests worked on are cancelled upstream, and they and a page queued behind them are counted', async () => {
    // The second one's answer waits behind the first's: Node drops it without a 'close' when the
    // connection dies, so the gateway listens to the connection for it.
    const { port } = await gateway();
    const calls = holdCalls();
    const client = pipeliningClient(port);
    // A page behind them is answered at once, and waits behind their answers as well.
    client.socket.write(`${LIST_GOODS.repeat(2)}GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    await vi.waitFor(() => expect(calls.made()).toBe(2));
    client.socket.destroy();
    await vi.waitFor(() => expect(calls.cancelled()).toBe(2));
    calls.releaseAll();
    const metrics = await scrape(`http://127.0.0.1:${port}/metrics`);
    const count = (route: string, status: string) =>
      sample(metrics, 'http_server_request_duration_seconds_count', {
        http_request_method: 'GET',
        http_route: route,
        http_response_status_code: status,
      });
    // The page's answer had begun (written, queued): it counts with its status, as any answer
    // begun does; the two never begun count as 499.
    expect([count('/goods', '499'), count('/healthz', '200')]).toEqual([2, 1]);
  });

  it('a request refused before routing, queued behind another, is counted when the client leaves', async () => {
    // Refused before it is counted on its connection (a malformed path), its answer waits behind
    // the list's: Node drops it without a 'close' when the connection dies, so it was never counted.
    const { port } = await gateway();
    const calls = holdCalls();
    const client = pipeliningClient(port);
    client.socket.write(`${LIST_GOODS}GET /%ZZ HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    await vi.waitFor(() => expect(calls.made()).toBe(1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    client.socket.destroy();
    await vi.waitFor(() => expect(calls.cancelled()).toBe(1));
    calls.releaseAll();
    const metrics = await scrape(`http://127.0.0.1:${port}/metrics`);
    const refused = sample(metrics, 'http_server_request_duration_seconds_count', {
      http_request_method: 'GET',
      http_response_status_code: '400',
    });
    expect(refused).toBe(1);
  });

  it('a request that waited its turn has the whole deadline for its call', async () => {
    // Each call takes 300 ms: the fourth pair starts at about 900 ms, the fourth of a second after
    // the requests came, and takes 300 ms more.
    const { port } = await gateway({ deadlineMs: 1_000 });
    answerCall = () => new Promise<void>((resolve) => setTimeout(resolve, 300));
    const client = pipeliningClient(port);
    client.socket.write(LIST_GOODS.repeat(8));
    await vi.waitFor(() => expect(client.statuses()).toHaveLength(8), { timeout: 5_000, interval: 50 });
    expect(client.statuses()).toEqual(Array(8).fill(200));
    client.socket.destroy();
  });

  it('requests waiting for their turn are dropped with their connection, and make no call', async () => {
    const { port } = await gateway();
    const calls = holdCalls();
    const client = pipeliningClient(port);
    client.socket.write(LIST_GOODS.repeat(10));
    await vi.waitFor(() => expect(calls.made()).toBe(2));
    client.socket.destroy();
    await client.closed;
    calls.releaseAll();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(calls.made()).toBe(2);
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
  });

  it('a request whose turn comes during a stop has a call that ends in time for its answer', async () => {
    // The stop's grace closes connections 2.5 s in, so calls made meanwhile end by 1.5 s. The third
    // GET's turn comes 0.1 s into the stop: with a whole deadline of 3 s its call outlived the grace,
    // and the connection was cut with no answer to a request the gateway had taken.
    const { gateway: started, port } = await gateway({ deadlineMs: 3_000, stopGraceMs: 2_500 });
    const calls = holdCalls();
    const client = pipeliningClient(port);
    client.socket.write(LIST_GOODS.repeat(3));
    await vi.waitFor(() => expect(calls.made()).toBe(2));
    const stopped = started.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));
    calls.releaseOne();
    await vi.waitFor(() => expect(calls.made()).toBe(3));
    await new Promise((resolve) => setTimeout(resolve, 50));
    calls.releaseOne();
    await client.closed;
    await stopped;
    calls.releaseAll();
    expect(client.statuses()).toEqual([200, 200, 504]);
  });
});
