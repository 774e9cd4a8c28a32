import http2 from 'node:http2';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import { listen } from '../../src/common/grpc-server.js';
import { admitStreamsInSlices } from '../../src/common/stream-admission.js';

const OPEN = { ...bytesMethod('/test.v1.Burst/Open', true), requestStream: true };

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** Counts event-loop turns: the number changes once per turn, in its check phase. */
function turnCounter(): () => number {
  let turn = 0;
  let immediate = setImmediate(function tick() {
    turn += 1;
    immediate = setImmediate(tick);
  });
  cleanups.push(() => clearImmediate(immediate));
  return () => turn;
}

/** A real server with one bidi method, its streams admitted in slices of `sliceMs`. */
async function start(sliceMs: number, onOpen: (server: Server) => void = () => {}) {
  const turn = turnCounter();
  const handled: Array<{ seq: number; turn: number }> = [];
  const server = new Server();
  server.addService(
    { Open: OPEN },
    {
      Open(call: ServerDuplexStream<Buffer, Buffer>) {
        handled.push({ seq: Number(call.metadata.get('x-seq')[0]), turn: turn() });
        onOpen(server);
        call.on('data', () => {});
        call.on('end', () => call.end());
      },
    },
  );
  const port = await listen(server, '127.0.0.1', 0, ServerCredentials.createInsecure());
  admitStreamsInSlices(server, { sliceMs });
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  await new Promise((resolve) => client.once('remoteSettings', resolve));
  cleanups.push(() => {
    client.destroy();
    server.forceShutdown();
  });
  /** Opens `count` streams at once, in one write: their HEADERS frames come to the server together. */
  const open = (count: number) =>
    Array.from({ length: count }, (_, seq) => {
      const stream = client.request(
        {
          ':method': 'POST',
          ':path': OPEN.path,
          'content-type': 'application/grpc',
          te: 'trailers',
          'x-seq': `${seq}`,
        },
        { endStream: false },
      );
      stream.on('error', () => {});
      return stream;
    });
  return { server, handled, open };
}

const until = async (condition: () => boolean, timeoutMs = 5_000) => {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe('admitStreamsInSlices', () => {
  it('hands every stream over, in the order they came, spread over turns once a slice is spent', async () => {
    const { handled, open } = await start(0);
    open(40);
    await until(() => handled.length === 40);
    expect(handled.map(({ seq }) => seq)).toEqual(Array.from({ length: 40 }, (_, seq) => seq));
    // With no time to spare in a turn, each stream after the first of a turn waits for the next.
    expect(new Set(handled.map(({ turn }) => turn)).size).toBe(40);
  });

  it('sets up streams in the turn they came while the slice lasts', async () => {
    const { handled, open } = await start(60_000);
    open(40);
    await until(() => handled.length === 40);
    expect(new Set(handled.map(({ turn }) => turn)).size).toBeLessThan(40);
  });

  it('drops a stream its client reset while it waited, and its error does not reach the process', async () => {
    const { handled, open } = await start(0);
    const streams = open(20);
    // Reset in the same tick as opened: the resets follow the HEADERS frames in the same write.
    for (const stream of streams.slice(10)) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await until(() => handled.length === 10);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(handled.map(({ seq }) => seq)).toEqual(Array.from({ length: 10 }, (_, seq) => seq));
  });

  it('hands nothing over once the server is shut down', async () => {
    const { handled, open } = await start(0, (server) => server.forceShutdown());
    open(20);
    await until(() => handled.length >= 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(handled.map(({ seq }) => seq)).toEqual([0]);
  });

  it('refuses a grpc-js that keeps its HTTP/2 servers elsewhere, rather than doing nothing', () => {
    expect(() => admitStreamsInSlices({} as Server, { sliceMs: 5 })).toThrow(/HTTP\/2 servers/);
  });
});
