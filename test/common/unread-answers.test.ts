import { type ClientHttp2Stream, connect as connectHttp2, constants } from 'node:http2';
import { type AddressInfo, connect, createServer } from 'node:net';
import { Writable } from 'node:stream';
import { type ChannelOptions, credentials, Metadata, Server, type ServerWritableStream } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import { keepaliveChannelOptions, listen, shutdown } from '../../src/common/grpc-server.js';
import type { Logger } from '../../src/common/logger.js';
import { writesMoved } from '../../src/common/unread-answer-watch.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { WatchRequest } from '../../src/gen/distributor.js';
import { GoodsServiceClient, ListGoodsRequest } from '../../src/gen/services.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { grpcFrame, openRawCall } from '../helpers/raw-grpc.js';
import { backendsOf } from '../services/support/backends.js';

// Calls whose client takes nothing of their answer are reset after --unread-answer-timeout-ms
// (UnreadAnswerWatch, put on every gRPC port by listen): a client that reads slowly is not.

const MESSAGE_BYTES = 32 * 1024;
const FLOOD = { Flood: bytesMethod('/test.Flood/Flood', true) };

function lineLog(lines: Record<string, unknown>[]): Logger {
  return pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
}

/** How a raw call ended: its gRPC status from the trailers, or the RST_STREAM code it was reset with. */
function endOf(stream: ClientHttp2Stream): Promise<{ grpcStatus?: number; rstCode?: number }> {
  let grpcStatus: number | undefined;
  const read = (headers: Record<string, unknown>): void => {
    if (headers['grpc-status'] !== undefined) grpcStatus = Number(headers['grpc-status']);
  };
  stream.on('response', read);
  stream.on('trailers', read);
  return new Promise((resolve) =>
    stream.once('close', () =>
      resolve(grpcStatus === undefined ? { rstCode: stream.rstCode } : { grpcStatus }),
    ),
  );
}

/**
 * A TCP relay to `port` that passes the server's bytes on at about `bytesPerSecond`, and the
 * client's at once: a slow link, as the server sees it. Resolves with its own port.
 */
async function throttledLink(port: number, bytesPerSecond: number): Promise<number> {
  const relay = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk);
      upstream.pause();
      setTimeout(() => upstream.resume(), (chunk.length / bytesPerSecond) * 1_000);
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  cleanupsOfLinks.push(() => new Promise<void>((resolve) => relay.close(() => resolve())));
  return (relay.address() as AddressInfo).port;
}

const cleanupsOfLinks: Array<() => Promise<void>> = [];

describe('answers a client takes nothing of', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    for (const cleanup of cleanupsOfLinks.splice(0)) await cleanup();
  });

  /** A raw HTTP/2 connection to `port`, with the flow-control window it grants each stream. */
  function rawSession(port: number, initialWindowSize?: number) {
    const session = connectHttp2(
      `http://127.0.0.1:${port}`,
      initialWindowSize === undefined ? {} : { settings: { initialWindowSize } },
    );
    session.on('error', () => {});
    cleanups.push(() => void session.destroy());
    return session;
  }

  function rawCall(session: ReturnType<typeof rawSession>, path: string, message: Uint8Array) {
    return openRawCall(session, path).end(grpcFrame(message));
  }

  /**
   * A server whose one method streams `count` messages of `bytes` each (its request: two 32-bit
   * numbers), each written once the one before has gone, on a port with `unreadAnswerTimeoutMs`.
   */
  async function floodServer(
    unreadAnswerTimeoutMs: number,
    lines: Record<string, unknown>[] = [],
    options: ChannelOptions = {},
  ) {
    const server = new Server(options);
    server.addService(FLOOD, {
      Flood: async (call: ServerWritableStream<Buffer, Buffer>) => {
        const [count, bytes] = [call.request.readUInt32BE(0), call.request.readUInt32BE(4)];
        for (let i = 0; i < count && !call.cancelled; i++) {
          await new Promise<void>((resolve) => call.write(Buffer.alloc(bytes, i), () => resolve()));
        }
        call.end();
      },
    });
    const port = await listen(server, '127.0.0.1', 0, undefined, {
      maxConnections: 10,
      unreadAnswerTimeoutMs,
      log: lineLog(lines),
    });
    cleanups.push(() => shutdown(server, 100));
    return port;
  }

  function flood(session: ReturnType<typeof rawSession>, count: number, bytes: number) {
    const request = Buffer.alloc(8);
    request.writeUInt32BE(count, 0);
    request.writeUInt32BE(bytes, 4);
    return rawCall(session, '/test.Flood/Flood', request);
  }

  /** Takes a chunk of `stream`, then nothing for `pauseMs`, and so on; resolves with the bytes taken. */
  function readSlowly(stream: ClientHttp2Stream, pauseMs: number): Promise<number> {
    let received = 0;
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      stream.pause();
      setTimeout(() => stream.resume(), pauseMs);
    });
    return new Promise((resolve) => stream.once('close', () => resolve(received)));
  }

  it('a stream its client stopped reading is reset after the timeout, logged once; one read slowly runs to its end', async () => {
    const lines: Record<string, unknown>[] = [];
    const port = await floodServer(1_000, lines);
    // Each on a connection of its own: a stream that reads nothing takes its connection's window.
    const stalled = flood(rawSession(port), 16, MESSAGE_BYTES);
    stalled.pause();
    const slow = flood(rawSession(port), 16, MESSAGE_BYTES);
    // A chunk every 50 ms: the whole answer takes several times the timeout.
    const taken = readSlowly(slow, 50);
    const startedAt = performance.now();
    expect(await endOf(stalled)).toEqual({ rstCode: constants.NGHTTP2_CANCEL });
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(1_000);
    expect(await endOf(slow)).toEqual({ grpcStatus: 0 });
    expect(performance.now() - startedAt).toBeGreaterThan(2_000);
    expect(await taken).toBe(16 * (5 + MESSAGE_BYTES));
    expect(lines.filter((line) => line.event === 'unread-answer')).toEqual([
      expect.objectContaining({
        level: 40,
        unreadAnswerTimeoutMs: 1_000,
        stalledMs: 1_000,
        addressGroup: '127.0.0.1',
        msg: 'a client took (almost) nothing of its answers for 1000 ms: its call was reset',
      }),
    ]);
  }, 20_000);

  it('a stream read slowly is not reset while each of its messages takes longer than the timeout', async () => {
    const port = await floodServer(600);
    // Three messages of 200 KiB, a chunk every 80 ms: about a second each, longer than the
    // timeout, within the four timeouts a call's own writes may stand still while its connection moves.
    const slow = flood(rawSession(port), 3, 200 * 1024);
    const taken = readSlowly(slow, 80);
    expect(await endOf(slow)).toEqual({ grpcStatus: 0 });
    expect(await taken).toBe(3 * (5 + 200 * 1024));
  }, 20_000);

  it('calls that share a slow connection are not reset while the connection takes their answers', async () => {
    const port = await floodServer(500);
    // A link of about 2 MiB/s between client and server: the eight answers of 256 KiB go out a
    // frame of each at a time, so none of their writes ends before about a second, twice the
    // timeout, and all of them end within four.
    const link = await throttledLink(port, 2 * 1024 * 1024);
    const session = rawSession(link);
    const calls = Array.from({ length: 8 }, () => flood(session, 1, 256 * 1024).resume());
    const startedAt = performance.now();
    for (const end of await Promise.all(calls.map(endOf))) expect(end).toEqual({ grpcStatus: 0 });
    expect(performance.now() - startedAt).toBeGreaterThan(500);
  }, 20_000);

  it('a client that keeps its connection busy keeps a stalled call on it no more than four timeouts, logged as such', async () => {
    const lines: Record<string, unknown>[] = [];
    const port = await floodServer(500, lines);
    const session = rawSession(port);
    await new Promise((resolve) => session.once('connect', resolve));
    // A connection window large enough that the stalled stream does not take it all.
    session.setLocalWindowSize(8 * 1024 * 1024);
    const stalled = flood(session, 1, 256 * 1024);
    stalled.pause();
    // Another call on the same connection, read slowly: 4 MiB at about 800 KiB/s.
    const busy = flood(session, 128, 32 * 1024);
    void readSlowly(busy, 20);
    const startedAt = performance.now();
    expect(await endOf(stalled)).toEqual({ rstCode: constants.NGHTTP2_CANCEL });
    const tookMs = performance.now() - startedAt;
    expect(tookMs).toBeGreaterThanOrEqual(2_000);
    expect(tookMs).toBeLessThan(4_000);
    expect(await endOf(busy)).toEqual({ grpcStatus: 0 });
    expect(lines.filter((line) => line.event === 'unread-answer')).toEqual([
      expect.objectContaining({
        stalledMs: 2_000,
        msg: 'an answer went nowhere for 2000 ms while its connection took others: its call was reset',
      }),
    ]);
  }, 20_000);

  it("the server's own keepalive pings do not count as its client taking answers", async () => {
    const port = await floodServer(500, [], keepaliveChannelOptions({ timeMs: 100, timeoutMs: 5_000 }));
    const stalled = flood(rawSession(port), 1, 256 * 1024);
    stalled.pause();
    const startedAt = performance.now();
    expect(await endOf(stalled)).toEqual({ rstCode: constants.NGHTTP2_CANCEL });
    expect(performance.now() - startedAt).toBeLessThan(1_500);
  }, 20_000);

  it('a service whose every call slot is held by answers nobody takes serves again once they are reset', async () => {
    const opened = await backendsOf(goodsService)[0]!.open();
    cleanups.push(() => opened.dispose());
    await opened.store.createGoods(
      { name: 'kettle', category: 'kitchen', price: 30, description: '' },
      undefined,
    );
    const server = createServiceServer(goodsService, {
      store: opened.store,
      maxCallsInFlight: 4,
      unreadAnswerTimeoutMs: 500,
      log: lineLog([]),
    });
    const port = await server.listen('127.0.0.1', 0);
    cleanups.push(() => server.stop(100));
    // A client that grants no flow-control window: every answer stays with the service. Four calls
    // hold the slots, eight wait for them, and the next is refused at once.
    const hog = rawSession(port, 0);
    const held = Array.from({ length: 12 }, () =>
      rawCall(
        hog,
        '/shop.v1.GoodsService/ListGoods',
        ListGoodsRequest.encode({ pageSize: 0, pageToken: '' }).finish(),
      ),
    );
    const ends = held.map(endOf);
    const client = new GoodsServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    cleanups.push(() => client.close());
    const listGoods = () =>
      new Promise<string>((resolve) =>
        client.listGoods(
          { pageSize: 0, pageToken: '' },
          new Metadata(),
          { deadline: Date.now() + 5_000 },
          (error, response) =>
            resolve(error ? `code ${error.code}` : response!.results.map((goods) => goods.name).join()),
        ),
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await listGoods()).toBe('code 8');
    // Reset after 500 ms, the four running first, then the eight that got their slots.
    for (const end of await Promise.all(ends)) expect(end).toEqual({ rstCode: constants.NGHTTP2_CANCEL });
    expect(await listGoods()).toBe('kettle');
  }, 20_000);

  it('a distributor Watch stream whose client takes nothing of its snapshot is reset; other watchers are served', async () => {
    const distributor = createDistributorServer({ unreadAnswerTimeoutMs: 300 });
    const port = await distributor.listen('127.0.0.1', 0);
    cleanups.push(() => distributor.stop(100));
    const watchRequest = WatchRequest.encode({ subscription: undefined }).finish();
    const stalled = rawCall(rawSession(port, 0), '/shop.v1.DistributorService/Watch', watchRequest);
    expect(await endOf(stalled)).toEqual({ rstCode: constants.NGHTTP2_CANCEL });
    const reading = rawCall(rawSession(port), '/shop.v1.DistributorService/Watch', watchRequest);
    const answered = new Promise<boolean>((resolve) => {
      reading.once('data', () => resolve(true));
      reading.once('close', () => resolve(false));
    });
    expect(await answered).toBe(true);
    // Still open a while past the timeout: a stream that has taken everything is not stalled.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(reading.closed).toBe(false);
  }, 20_000);
});

describe('writesMoved', () => {
  it('moves when a write starts or ends, from the write after the one under way when first asked', () => {
    const ends: Array<() => void> = [];
    const stream = new Writable({
      highWaterMark: 1,
      write: (_chunk, _encoding, callback) => ends.push(() => callback()),
    });
    stream.write('a');
    const moved = writesMoved(stream);
    expect(writesMoved(stream)).toBe(moved);
    stream.write('b');
    stream.write('c');
    expect(moved.count).toBe(0);
    // "a" ends unseen; "b" starts: the stream moved.
    ends.shift()!();
    expect(moved.count).toBe(1);
    ends.shift()!();
    expect(moved.count).toBe(3);
    ends.shift()!();
    expect(moved.count).toBe(4);
  });

  it('counts a batch handed to _writev as one write', () => {
    const ends: Array<() => void> = [];
    const stream = new Writable({
      write: (_chunk, _encoding, callback) => ends.push(() => callback()),
      writev: (_chunks, callback) => ends.push(() => callback()),
    });
    stream.write('a');
    const moved = writesMoved(stream);
    stream.write('b');
    stream.write('c');
    ends.shift()!();
    expect(moved.count).toBe(1);
    ends.shift()!();
    expect(moved.count).toBe(2);
  });
});
