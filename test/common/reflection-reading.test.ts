import { connect } from 'node:http2';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Server } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, shutdown } from '../../src/common/grpc-server.js';
import { addReflection } from '../../src/common/reflection.js';
import { grpcFrame, openRawCall } from '../helpers/raw-grpc.js';

// A reflection stream answers each request with a service's files (some 18 KB from a request of
// 27 bytes): its client must take the answers for the server to read more requests.

describe('a reflection stream whose client takes none of its answers', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  // file_containing_symbol (field 4).
  const request = grpcFrame(
    new BinaryWriter()
      .uint32((4 << 3) | 2)
      .string('shop.v1.GoodsService')
      .finish(),
  );

  async function reflectionStream(initialWindowSize: number) {
    const server = new Server();
    addReflection(server, ['shop.v1.GoodsService']);
    const port = await listen(server, '127.0.0.1', 0);
    cleanups.push(() => shutdown(server, 100));
    const session = connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize } });
    session.on('error', () => {});
    cleanups.push(() => session.destroy());
    return openRawCall(session, '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo');
  }

  it('is not read on: its requests wait in its client, not its answers in the server', async () => {
    // A window of 0: the client takes nothing of what the server answers.
    const stream = await reflectionStream(0);
    const requests = Buffer.concat(Array.from({ length: 20_000 }, () => request));
    stream.write(requests);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // Before, the server read every request and held an answer for each (80 MB for 200,000 of them,
    // 5 MB sent), until its unread-answer timeout, 30 s on; a client on a fast link sent far more.
    expect(stream.bufferSize).toBeGreaterThan(requests.length / 2);
  });

  it('while a client that takes its answers gets one for each of its requests', async () => {
    const stream = await reflectionStream(65_535);
    const count = 2_000;
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const trailers = new Promise<Record<string, unknown>>((resolve) => stream.once('trailers', resolve));
    stream.end(Buffer.concat(Array.from({ length: count }, () => request)));
    expect(Number((await trailers)['grpc-status'])).toBe(0);
    const received = Buffer.concat(chunks);
    let answers = 0;
    for (let offset = 0; offset < received.length; offset += 5 + received.readUInt32BE(offset + 1)) answers++;
    expect(answers).toBe(count);
  });
});
