import { type ClientHttp2Session, connect as connectHttp2 } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_CONCURRENT_STREAMS } from '../../src/common/grpc-server.js';
import { GoodsServiceClient } from '../../src/gen/services.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { backendsOf } from '../services/support/backends.js';

// Every gRPC port bounds the calls open on one connection (MAX_CONCURRENT_STREAMS).

const LIST_GOODS = '/shop.v1.GoodsService/ListGoods';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A goods service on loopback with one kettle. */
async function goodsServer(): Promise<number> {
  const opened = await backendsOf(goodsService)[0]!.open();
  cleanups.push(() => opened.dispose());
  await opened.store.createGoods(
    { name: 'kettle', category: 'kitchen', price: 30, description: '' },
    undefined,
  );
  const server = createServiceServer(goodsService, { store: opened.store });
  const port = await server.listen('127.0.0.1', 0);
  cleanups.push(() => server.stop(100));
  return port;
}

async function rawSession(port: number): Promise<ClientHttp2Session> {
  const session = connectHttp2(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  cleanups.push(() => session.destroy());
  await new Promise((resolve) => session.once('remoteSettings', resolve));
  return session;
}

/** An HTTP/2 frame, by hand. */
function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** An HPACK header field, literal without indexing, new name, no Huffman coding (names and values < 128 bytes). */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([
    Buffer.from([0, name.length]),
    Buffer.from(name),
    Buffer.from([value.length]),
    Buffer.from(value),
  ]);
}

const FRAME_HEADERS = 1;
const FRAME_SETTINGS = 4;
const FRAME_GOAWAY = 7;
const FLAG_ACK = 1;
const FLAG_END_HEADERS = 4;

describe('calls open on one connection', () => {
  it('are announced bounded, and a client that opens more than the bound has its connection closed', async () => {
    const port = await goodsServer();
    expect((await rawSession(port)).remoteSettings.maxConcurrentStreams).toBe(MAX_CONCURRENT_STREAMS);

    // node:http2 (as grpc-js) holds calls past the bound back itself: a client that breaks the
    // protocol is written by hand, opening one call more than the bound, none of them half-closed.
    const socket: Socket = connect(port, '127.0.0.1');
    cleanups.push(() => socket.destroy());
    await new Promise((resolve) => socket.once('connect', resolve));
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
    });
    socket.on('error', () => {});
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write(
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0)),
      ]),
    );
    socket.write(frame(FRAME_SETTINGS, FLAG_ACK, 0, Buffer.alloc(0)));
    const headers = Buffer.concat([
      literal(':method', 'POST'),
      literal(':scheme', 'http'),
      literal(':path', LIST_GOODS),
      literal(':authority', 'localhost'),
      literal('content-type', 'application/grpc'),
      literal('te', 'trailers'),
    ]);
    const frames = Array.from({ length: MAX_CONCURRENT_STREAMS + 1 }, (_, index) =>
      frame(FRAME_HEADERS, FLAG_END_HEADERS, 1 + 2 * index, headers),
    );
    socket.write(Buffer.concat(frames));
    await closed;
    const types: number[] = [];
    for (let offset = 0; offset + 9 <= received.length; offset += 9 + received.readUIntBE(offset, 3)) {
      types.push(received[offset + 3]!);
    }
    expect(types).toContain(FRAME_GOAWAY);
  }, 20_000);

  it('many calls at once from a grpc-js client are all answered, those past --max-calls-in-flight refused at once', async () => {
    const port = await goodsServer();
    const client = new GoodsServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    cleanups.push(() => client.close());
    const calls = Array.from(
      { length: 600 },
      () =>
        new Promise<string>((resolve) =>
          client.listGoods(
            { pageSize: 0, pageToken: '' },
            new Metadata(),
            { deadline: Date.now() + 10_000 },
            (error) => resolve(error ? `code ${error.code}` : 'ok'),
          ),
        ),
    );
    const outcomes = await Promise.all(calls);
    expect(
      outcomes.filter((outcome) => outcome !== 'ok' && outcome !== `code ${status.RESOURCE_EXHAUSTED}`),
    ).toEqual([]);
    // Past 128 running and 256 waiting the service refuses at once. A stream limit below what the
    // client had open would have had grpc-js hold the rest back instead (at 64: all 600 answered
    // one by one, none refused), each waiting, up to its deadline, for a call to end.
    expect(
      outcomes.filter((outcome) => outcome === `code ${status.RESOURCE_EXHAUSTED}`).length,
    ).toBeGreaterThan(0);
    expect(outcomes.filter((outcome) => outcome === 'ok').length).toBeGreaterThanOrEqual(384);
  }, 20_000);
});
