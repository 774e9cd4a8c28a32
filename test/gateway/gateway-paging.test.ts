import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { type ServiceError, status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { registrationDescriptorSet } from '../../src/common/descriptors.js';
import {
  type Goods,
  type GoodsServiceServer,
  type PurchasesServiceServer,
  PurchasesServiceService,
} from '../../src/gen/services.js';
import { http } from '../helpers/http.js';
import {
  Closer,
  startDistributor,
  startGateway,
  startGoodsService,
  startService,
  type TestService,
  waitForRoute,
} from './support/cluster.js';

// The gateway following pages (page-streamer.ts) where real services cannot easily take it: a page
// that fails after the answer has begun, a page retried on another instance, a client that stops
// reading. The services here page like the real ones (AIP-158), over an in-memory list.

interface PagingFake {
  /** Pages asked for, by page number from 1, counted over every instance. */
  readonly calls: number[];
  /** Fails the next call of a page (by number) with a status, once. */
  failNext(page: number, code: status): void;
}

function goodsList(count: number, descriptionBytes = 20): Goods[] {
  const description = 'd'.repeat(descriptionBytes);
  return Array.from({ length: count }, (_, index) => ({
    id: index + 1,
    name: `goods ${index + 1}`,
    category: 'c',
    price: index,
    description,
  }));
}

/** Instances of a goods service over one list, paging by index (the token is the next index). */
async function startPagingGoods(
  closer: Closer,
  distributor: string,
  goods: Goods[],
  instances = 1,
  pageSize = 1_000,
  /** How long a call takes, by the request's page size (0: answered at once). */
  delayMs: (requestedPageSize: number) => number = () => 0,
): Promise<PagingFake> {
  const calls: number[] = [];
  const failures = new Map<number, status>();
  const implementation: Pick<GoodsServiceServer, 'listGoods'> = {
    listGoods: ({ request: listRequest }, callback) => {
      const start = listRequest.pageToken ? Number(listRequest.pageToken) : 0;
      const page = start / pageSize + 1;
      calls.push(page);
      const failure = failures.get(page);
      if (failure !== undefined) {
        failures.delete(page);
        callback({ code: failure, details: `page ${page} failed on purpose` } as ServiceError);
        return;
      }
      const end = Math.min(goods.length, start + pageSize);
      const answer = () =>
        callback(null, {
          results: goods.slice(start, end),
          nextPageToken: end < goods.length ? String(end) : '',
        });
      const delay = delayMs(listRequest.pageSize ?? 0);
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    },
  };
  for (let index = 0; index < instances; index++) {
    await startGoodsService(closer, distributor, implementation);
  }
  return { calls, failNext: (page, code) => failures.set(page, code) };
}

/**
 * A purchases service whose user 1 has 200,000 purchases (200 pages, about 14 MB as JSON) and user
 * 2 three; the first pages asked for, by user.
 */
async function startPagingPurchases(closer: Closer, distributor: string): Promise<Map<number, number>> {
  const firstPages = new Map<number, number>();
  const pageSize = 1_000;
  const implementation: Pick<PurchasesServiceServer, 'listPurchases'> = {
    listPurchases: ({ request: listRequest }, callback) => {
      const userid = listRequest.userid ?? 0;
      const total = userid === 1 ? 200_000 : 3;
      const start = listRequest.pageToken ? Number(listRequest.pageToken) : 0;
      if (start === 0) firstPages.set(userid, (firstPages.get(userid) ?? 0) + 1);
      const end = Math.min(total, start + pageSize);
      const date = new Date('2026-12-03T10:00:00Z');
      callback(null, {
        results: Array.from({ length: end - start }, (_, index) => ({
          id: start + index + 1,
          goodsid: 7,
          date,
        })),
        nextPageToken: end < total ? String(end) : '',
      });
    },
  };
  await startService(closer, {
    distributor,
    name: 'purchases',
    definition: PurchasesServiceService,
    implementation,
    descriptorSet: registrationDescriptorSet(['shop.v1.PurchasesService']),
  });
  return firstPages;
}

/** What a client read of an answer, and whether the answer ended or was cut short. */
interface Read {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  complete: boolean;
}

/** A GET read to its end; with `pauseMs`, a client that stops reading for that long after its first bytes. */
function get(port: number, path: string, pauseMs = 0): Promise<Read> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      if (pauseMs > 0) {
        response.once('data', () => {
          response.pause();
          setTimeout(() => response.resume(), pauseMs);
        });
      }
      const done = (complete: boolean) => (): void =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          complete,
        });
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', done(true));
      response.on('error', done(false));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** Clients that ask for the whole list, take its first bytes, then read nothing more. */
async function stalledLists(port: number, count: number, path = '/goods'): Promise<Socket[]> {
  const sockets = Array.from({ length: count }, () => connect(port, '127.0.0.1'));
  const firstBytes = sockets.map(
    (socket) => new Promise<void>((resolve) => socket.once('data', () => resolve())),
  );
  for (const socket of sockets) {
    socket.on('error', () => {});
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  }
  await Promise.all(firstBytes);
  for (const socket of sockets) socket.pause();
  return sockets;
}

describe('the gateway following pages', () => {
  const closer = new Closer();
  let distributor: string;
  let lines: Record<string, unknown>[];
  const warnings = (): Record<string, unknown>[] => lines.filter((line) => (line.level as number) >= 40);

  /**
   * The one warning of a streamed list cut short by a page failing with `code`, with `fields`, and
   * its `request answered` line: status 200, as sent, and the reason it was cut short.
   */
  async function expectCutShortOnce(code: string, fields: Record<string, unknown>): Promise<void> {
    expect(warnings()).toEqual([
      expect.objectContaining({
        ...fields,
        code,
        msg: 'a page of a streamed list failed after the answer had begun: connection aborted',
      }),
    ]);
    await vi.waitFor(() =>
      expect(lines.filter((line) => line.msg === 'request answered')).toEqual([
        expect.objectContaining({
          status: 200,
          cutShort: `a page failed after the answer had begun: ${code}`,
        }),
      ]),
    );
  }

  /** A gateway logging into `lines`, once it routes GET /goods to `instances` instances. */
  async function gateway(
    instances = 1,
    deadlineMs?: number,
    unreadAnswerTimeoutMs?: number,
  ): Promise<number> {
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const started = await startGateway(closer, distributor, {
      log,
      ...(deadlineMs ? { deadlineMs } : {}),
      ...(unreadAnswerTimeoutMs ? { unreadAnswerTimeoutMs } : {}),
    });
    await waitForRoute(started.gateway, 'GET /goods', instances);
    return started.port;
  }

  beforeEach(async () => {
    lines = [];
    distributor = (await startDistributor(closer)).address;
  });
  afterEach(() => closer.closeAll());

  it('a HEAD of a long list is answered from its first page, without asking for the others', async () => {
    const goods = await startPagingGoods(closer, distributor, goodsList(3_500));
    const port = await gateway();
    const head = await http(port, 'HEAD', '/goods');
    expect([head.status, head.body]).toEqual([200, '']);
    expect(head.headers['content-length']).toBeUndefined();
    expect(head.headers['transfer-encoding']).toBeUndefined();
    expect(goods.calls).toEqual([1]);
    // GET still follows every page.
    const answer = await get(port, '/goods');
    expect(answer.complete).toBe(true);
    expect(goods.calls).toEqual([1, 1, 2, 3, 4]);
  });

  it('a page failing after the answer began cuts the answer short, and says so once in the log', async () => {
    const goods = await startPagingGoods(closer, distributor, goodsList(3_500));
    const port = await gateway();
    goods.failNext(3, status.INTERNAL);
    const answer = await get(port, '/goods');
    expect(answer.status).toBe(200);
    expect(answer.headers['transfer-encoding']).toBe('chunked');
    expect(answer.complete).toBe(false);
    expect(
      answer.body.startsWith('{"key":0,"errorcode":0,"errormessage":"success","results":[{"id":1,'),
    ).toBe(true);
    expect(answer.body.endsWith(']}')).toBe(false);
    expect(() => JSON.parse(answer.body)).toThrow();
    expect(goods.calls).toEqual([1, 2, 3]);
    // Its status was 200, but the request failed: its telemetry says so (the span fails too).
    await expectCutShortOnce('INTERNAL', { key: 0, pagesSent: 2 });
    // And its series of the request metric says it failed.
    const metrics = await get(port, '/metrics');
    expect(metrics.body).toContain(
      'http_server_request_duration_seconds_count{http_request_method="GET",http_route="/goods",http_response_status_code="200",error_type="answer_cut_short"} 1\n',
    );
  });

  it('a first page that fails is answered like any failed call', async () => {
    const goods = await startPagingGoods(closer, distributor, goodsList(3_500));
    const port = await gateway();
    goods.failNext(1, status.INTERNAL);
    const answer = await get(port, '/goods');
    expect(answer.status).toBe(500);
    expect(answer.body).toBe('{"key":0,"errorcode":1,"errormessage":"Internal error in the service"}');
    expect(answer.complete).toBe(true);
  });

  it('a page refused with UNAVAILABLE is asked again of another instance, and the list is whole', async () => {
    const goods = await startPagingGoods(closer, distributor, goodsList(2_500), 2);
    const port = await gateway(2);
    goods.failNext(2, status.UNAVAILABLE);
    const answer = await get(port, '/goods');
    expect(answer.complete).toBe(true);
    // A streamed answer names its request like any other.
    expect(answer.headers['transfer-encoding']).toBe('chunked');
    expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const body = JSON.parse(answer.body) as { results: Goods[] };
    expect(body.results.map((item) => item.id)).toEqual(
      Array.from({ length: 2_500 }, (_, index) => index + 1),
    );
    expect(goods.calls).toEqual([1, 2, 2, 3]);
    expect(warnings()).toEqual([]);
  });

  /**
   * Goods instances over one list whose second page is answered only after the instance that
   * answers it has left the registry and the gateway has seen it go: the gateway closes the
   * channel of an instance that left once its last call ends, so the third page's call cannot
   * start there. Found by killing a goods process while a real gateway streamed 60,000 rows.
   */
  async function goodsLeavingAfterPage2(
    instances: number,
  ): Promise<{ calls: string[]; leftAfterPage2: Promise<void> }> {
    const goods = goodsList(3_500);
    const calls: string[] = [];
    const started: TestService[] = [];
    let gatewayRoutes: (() => Promise<void>) | undefined;
    let markLeft: () => void = () => {};
    const leftAfterPage2 = new Promise<void>((resolve) => {
      markLeft = resolve;
    });
    for (let index = 0; index < instances; index++) {
      const implementation: Pick<GoodsServiceServer, 'listGoods'> = {
        listGoods: ({ request: listRequest }, callback) => {
          const start = listRequest.pageToken ? Number(listRequest.pageToken) : 0;
          const page = start / 1_000 + 1;
          calls.push(`${page}@${index}`);
          const end = Math.min(goods.length, start + 1_000);
          const answer = () =>
            callback(null, {
              results: goods.slice(start, end),
              nextPageToken: end < goods.length ? String(end) : '',
            });
          if (page !== 2) {
            answer();
            return;
          }
          void (async () => {
            await started[index]!.registration.stop(500);
            await gatewayRoutes?.();
            answer();
            markLeft();
          })();
        },
      };
      started.push(await startGoodsService(closer, distributor, implementation));
    }
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const { gateway: routing, port } = await startGateway(closer, distributor, { log });
    await waitForRoute(routing, 'GET /goods', instances);
    gatewayRoutes = () => waitForRoute(routing, 'GET /goods', instances - 1);
    gatewayPort = port;
    return { calls, leftAfterPage2 };
  }
  let gatewayPort = 0;

  it('a page asked of an instance that left since the page before goes to another instance, and the list is whole', async () => {
    const { calls } = await goodsLeavingAfterPage2(2);
    const answer = await get(gatewayPort, '/goods');
    expect(answer.complete).toBe(true);
    const body = JSON.parse(answer.body) as { results: Goods[] };
    expect(body.results).toHaveLength(3_500);
    // Pages 1 and 2 from one instance, 3 and 4 from the other.
    expect(calls.map((call) => call.split('@')[0])).toEqual(['1', '2', '3', '4']);
    expect(new Set(calls.slice(2).map((call) => call.split('@')[1])).size).toBe(1);
    expect(calls[2]!.split('@')[1]).not.toBe(calls[1]!.split('@')[1]);
    expect(warnings()).toEqual([]);
  });

  it('a page asked of the only instance after it left cuts the answer short as UNAVAILABLE, not as a bug', async () => {
    await goodsLeavingAfterPage2(1);
    const answer = await get(gatewayPort, '/goods');
    expect([answer.status, answer.complete]).toEqual([200, false]);
    await expectCutShortOnce('UNAVAILABLE', { pagesSent: 2 });
    // The page's call to the closed channel is counted as what it was answered: Unavailable.
    const metrics = (await get(gatewayPort, '/metrics')).body;
    const listGoods = (code: string): string =>
      `grpc_client_handled_total{grpc_type="unary",grpc_service="shop.v1.GoodsService",grpc_method="ListGoods",grpc_code="${code}"} `;
    expect(metrics).toContain(`${listGoods('OK')}2\n`);
    expect(metrics).toContain(`${listGoods('Unavailable')}1\n`);
    expect(metrics).not.toContain(listGoods('Internal'));
  });

  it('a client that reads nothing for --unread-answer-timeout-ms is cut off, and no more pages are asked for', async () => {
    // 40 pages of about 1 MB: more than the socket buffers hold.
    const goods = await startPagingGoods(closer, distributor, goodsList(40_000, 1_000));
    const port = await gateway(1, 10_000, 400);
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    socket.write('GET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n');
    socket.pause();
    await vi.waitFor(
      () =>
        expect(warnings()).toContainEqual(
          expect.objectContaining({
            msg: 'the client stopped reading a streamed list: connection aborted',
            waitedMs: 400,
          }),
        ),
      { timeout: 10_000, interval: 50 },
    );
    socket.resume();
    await closed;
    const asked = goods.calls.length;
    expect(asked).toBeLessThan(40);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(goods.calls.length).toBe(asked);
  });

  it('counts a streamed list its client stopped reading, or left, with its 200 and why it is incomplete, not as a whole 200', async () => {
    // 40 pages of about 1 MB: more than the socket buffers hold, so neither list can end.
    await startPagingGoods(closer, distributor, goodsList(40_000, 1_000));
    const port = await gateway(1, 10_000, 400);
    const [stalled] = await stalledLists(port, 1);
    await vi.waitFor(
      () =>
        expect(lines.map((line) => line.msg)).toContain(
          'the client stopped reading a streamed list: connection aborted',
        ),
      { timeout: 10_000, interval: 50 },
    );
    stalled!.destroy();
    const [left] = await stalledLists(port, 1);
    left!.destroy();
    const series = (errorType?: string): string =>
      `http_server_request_duration_seconds_count{http_request_method="GET",http_route="/goods",http_response_status_code="200"${errorType ? `,error_type="${errorType}"` : ''}} `;
    await vi.waitFor(
      async () => {
        const metrics = (await get(port, '/metrics')).body;
        expect(metrics).toContain(`${series('client_stopped_reading')}1\n`);
        expect(metrics).toContain(`${series('client_closed')}1\n`);
        // Counted as whole 200s before: a list abandoned after its first page looked served.
        expect(metrics).not.toContain(series());
      },
      { timeout: 10_000, interval: 50 },
    );
    expect(
      lines
        .filter((line) => line.msg === 'request answered' && line.route === '/goods')
        .map((line) => [line.status, line.errorType]),
    ).toEqual([
      [200, 'client_stopped_reading'],
      [200, 'client_closed'],
    ]);
    // The client's doing, as a 499 is: not among the errors of the status page.
    const status = JSON.parse((await get(port, '/status.json')).body) as {
      routes: { method: string; path: string; rate: { requests: number; errors: number } }[];
    };
    const goods = status.routes.find((route) => route.method === 'GET' && route.path === '/goods');
    expect(goods?.rate).toMatchObject({ requests: 2, errors: 0 });
  });

  it("counts a streamed list the gateway's stop cut off, its grace over, as cut short by the gateway, not by its client", async () => {
    await startPagingGoods(closer, distributor, goodsList(40_000, 1_000));
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const started = await startGateway(closer, distributor, { log, stopGraceMs: 200 });
    await waitForRoute(started.gateway, 'GET /goods', 1);
    const [waiting] = await stalledLists(started.port, 1);
    await started.gateway.stop();
    waiting!.destroy();
    await vi.waitFor(() =>
      expect(
        lines
          .filter((line) => line.msg === 'request answered' && line.route === '/goods')
          .map((line) => [line.status, line.errorType]),
      ).toEqual([[200, 'answer_cut_short']]),
    );
  });

  it('a client that stops reading for longer than the deadline, within --unread-answer-timeout-ms, takes the list whole', async () => {
    // Found reading 100,000 goods (12.5 MB) steadily at 100 to 300 KiB/s: once the socket buffers
    // held a few MB, the kernel woke the gateway's next write only after a second or more, and the
    // list was cut off at the deadline (5 s), which also timed the client.
    await startPagingGoods(closer, distributor, goodsList(40_000, 1_000));
    const port = await gateway(1, 2_000, 10_000);
    const read = await get(port, '/goods', 4_000);
    expect([read.status, read.complete]).toEqual([200, true]);
    expect(JSON.parse(read.body).results).toHaveLength(40_000);
    expect(warnings().map((line) => line.msg)).toEqual([]);
  });

  it('streams at most maxStreamedLists long lists at once: another is 503 with Retry-After until one ends', async () => {
    // 40 pages of about 1 MB: two clients that read nothing keep theirs streaming.
    await startPagingGoods(closer, distributor, goodsList(40_000, 1_000));
    const started = await startGateway(closer, distributor, { maxStreamedLists: 2, deadlineMs: 10_000 });
    await waitForRoute(started.gateway, 'GET /goods', 1);
    const stalled = await stalledLists(started.port, 2);
    const refused = await get(started.port, '/goods');
    expect([refused.status, refused.headers['retry-after'], refused.body]).toEqual([
      503,
      '1',
      expect.stringContaining('"errormessage":"The gateway is streaming too many long lists at once"'),
    ]);
    for (const socket of stalled) socket.destroy();
    await vi.waitFor(
      async () => {
        const whole = await get(started.port, '/goods');
        expect([whole.status, whole.complete]).toEqual([200, true]);
        expect(JSON.parse(whole.body).results).toHaveLength(40_000);
      },
      { timeout: 10_000, interval: 200 },
    );
  });

  it('once a method has answered a long list, a whole-list request past the bound is refused before its first page is asked for', async () => {
    const goods = await startPagingGoods(closer, distributor, goodsList(40_000, 1_000));
    const started = await startGateway(closer, distributor, { maxStreamedLists: 2, deadlineMs: 10_000 });
    await waitForRoute(started.gateway, 'GET /goods', 1);
    const stalled = await stalledLists(started.port, 2);
    // The stalled streams may go on asking for later pages while the socket buffers fill; only a
    // first page would show that a refused request was started.
    const firstPages = (): number => goods.calls.filter((page) => page === 1).length;
    expect(firstPages()).toBe(2);
    const refused = await Promise.all(Array.from({ length: 6 }, () => get(started.port, '/goods')));
    expect(refused.map((answer) => answer.status)).toEqual(Array(6).fill(503));
    expect(firstPages()).toBe(2);
    for (const socket of stalled) socket.destroy();
    await vi.waitFor(
      async () => {
        const whole = await get(started.port, '/goods');
        expect([whole.status, whole.complete]).toEqual([200, true]);
      },
      { timeout: 10_000, interval: 200 },
    );
  });

  /** A gateway that closes a connection whose answers are left untaken for 400 ms, once it routes GET /goods. */
  async function impatientGateway(unreadAnswerTimeoutMs = 400): Promise<number> {
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const started = await startGateway(closer, distributor, { log, unreadAnswerTimeoutMs });
    await waitForRoute(started.gateway, 'GET /goods', 1);
    return started.port;
  }

  it('a client that leaves answers of one page untaken for unreadAnswerTimeoutMs has its connection closed', async () => {
    // Pages of about 1 MB: sixteen pipelined answers are more than the socket buffers hold.
    const goods = await startPagingGoods(closer, distributor, goodsList(2_000, 1_000));
    const port = await impatientGateway();
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    socket.pause();
    socket.write('GET /goods?page_size=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n'.repeat(16));
    await vi.waitFor(
      () =>
        expect(warnings()).toContainEqual(
          expect.objectContaining({
            event: 'unread-answer',
            waitedMs: 400,
            msg: 'a client took nothing of its answers for too long: connection closed',
          }),
        ),
      { timeout: 10_000, interval: 50 },
    );
    socket.resume();
    await closed;
    // Pipelined requests take turns, two at a time: the gateway called only for the answers the
    // kernel took and the two it held (five on the machine this was written on; how many the
    // kernel takes depends on its buffers), not for all sixteen.
    expect(goods.calls.length).toBeLessThan(16);
  });

  it('a streamed list pipelined behind a long one is not cut off while the client takes the one before', async () => {
    // Five pages of 300 ms each: the first list takes 1.5 s to send, longer than the deadline of
    // 1 s, while the second waits behind it with its first page written and not yet on the socket.
    await startPagingGoods(closer, distributor, goodsList(5_000), 1, 1_000, () => 300);
    const port = await gateway(1, 1_000);
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    socket.write('GET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n'.repeat(3));
    await vi.waitFor(() => expect(text.match(/\]\}(?=\r\n0\r\n\r\n)/g) ?? []).toHaveLength(3), {
      timeout: 10_000,
      interval: 50,
    });
    expect(warnings()).toEqual([]);
    socket.destroy();
  });

  it('a streamed list queued behind another answer gives its place back when the connection dies', async () => {
    // A one-page list that takes 1.5 s, then a long list whose pages come at once: the long list's
    // first page waits behind the slow answer, on a response with no socket yet, which Node gives
    // no 'close' of its own when the connection dies.
    await startPagingGoods(closer, distributor, goodsList(3_500), 1, 1_000, (size) =>
      size === 999 ? 1_500 : 0,
    );
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const started = await startGateway(closer, distributor, { log, maxStreamedLists: 1, deadlineMs: 5_000 });
    await waitForRoute(started.gateway, 'GET /goods', 1);
    const socket = connect(started.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(
      'GET /goods?page_size=999 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n',
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    socket.destroy();
    // The only place among streamed lists is free again well before the deadline.
    await vi.waitFor(
      async () => {
        const answer = await get(started.port, '/goods');
        expect([answer.status, answer.complete]).toEqual([200, true]);
      },
      { timeout: 2_000, interval: 100 },
    );
  });

  it('a client that takes its answers slowly is not cut off', async () => {
    await startPagingGoods(closer, distributor, goodsList(2_000, 1_000));
    // A second of patience: a loaded machine can stall this process (client and gateway both) for
    // some hundreds of ms, which a timeout of 400 ms took for a client gone idle.
    const unreadAnswerTimeoutMs = 1_000;
    const port = await impatientGateway(unreadAnswerTimeoutMs);
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let closed = false;
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => {});
    socket.write('GET /goods?page_size=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n'.repeat(8));
    // About 8.5 MB, a socket buffer at a time every 20 ms: longer than the timeout in all, never
    // that long idle. (How slow a reader may be depends on how much the kernel takes at a time: see
    // writeInSlices.)
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      socket.pause();
      setTimeout(() => socket.resume(), 20);
    });
    await vi.waitFor(() => expect(closed || received >= 8 * 1_000_000).toBe(true), {
      timeout: 20_000,
      interval: 50,
    });
    expect(closed).toBe(false);
    expect(warnings()).toEqual([]);
    // Slow in all: what is timed is the time without progress, not the answers' whole time.
    expect(performance.now() - started).toBeGreaterThan(unreadAnswerTimeoutMs);
    socket.destroy();
  });

  it('a list known to be long is held to the bound before its first page; a short list of the same method is not', async () => {
    const firstPages = await startPagingPurchases(closer, distributor);
    const started = await startGateway(closer, distributor, { maxStreamedLists: 2, deadlineMs: 10_000 });
    await waitForRoute(started.gateway, 'GET /purchases/*', 1);
    await stalledLists(started.port, 2, '/purchases/1');
    const short = await Promise.all(Array.from({ length: 6 }, () => get(started.port, '/purchases/2')));
    expect(short.map((answer) => [answer.status, JSON.parse(answer.body).results.length])).toEqual(
      Array(6).fill([200, 3]),
    );
    const asked = firstPages.get(1);
    const refused = await get(started.port, '/purchases/1');
    expect(refused.status).toBe(503);
    expect(firstPages.get(1)).toBe(asked);
  });

  it('a list of one page keeps its Content-Length; a one-page request shows next_page_token', async () => {
    await startPagingGoods(closer, distributor, goodsList(3), 1, 2);
    const port = await gateway();
    const one = await get(port, '/goods?page_size=2');
    expect(one.body).toBe(
      '{"key":0,"errorcode":0,"errormessage":"success","results":[{"id":1,"name":"goods 1","category":"c","price":0,"description":"dddddddddddddddddddd"},{"id":2,"name":"goods 2","category":"c","price":1,"description":"dddddddddddddddddddd"}],"next_page_token":"2"}',
    );
    const last = await get(port, '/goods?page_token=2');
    expect(last.body).toMatch(/"results":\[\{"id":3,[^\]]*\],"next_page_token":""\}$/);
    expect(last.headers['content-length']).toBe(String(Buffer.byteLength(last.body)));
  });
});
