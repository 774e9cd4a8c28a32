import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { endInSlices, SLICE_BYTES } from '../../src/gateway/sliced-write.js';

// endInSlices on a real HTTP answer: the writes it makes, in order, and the bytes the client gets.

describe('endInSlices', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  /** Serves `body` with endInSlices, recording each write and whether the one before had completed. */
  async function serve(
    body: Buffer,
  ): Promise<{ received: Buffer; writes: { bytes: number; afterPrevious: boolean }[] }> {
    const writes: { bytes: number; afterPrevious: boolean }[] = [];
    server = createServer((_request, response) => {
      let previousDone = true;
      const write = response.write.bind(response);
      const end = response.end.bind(response);
      response.write = ((chunk: Buffer, callback: (error?: Error | null) => void) => {
        writes.push({ bytes: chunk.length, afterPrevious: previousDone });
        previousDone = false;
        return write(chunk, (error) => {
          previousDone = true;
          callback(error);
        });
      }) as typeof response.write;
      response.end = ((chunk: Buffer) => {
        writes.push({ bytes: chunk.length, afterPrevious: previousDone });
        return end(chunk);
      }) as typeof response.end;
      response.writeHead(200, { 'Content-Length': body.length });
      endInSlices(response, body);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const received = await new Promise<Buffer>((resolve, reject) =>
      get({ host: '127.0.0.1', port, path: '/' }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve(Buffer.concat(chunks)));
      }).on('error', reject),
    );
    return { received, writes };
  }

  it('ends a short body in one write', async () => {
    const body = Buffer.alloc(SLICE_BYTES, 7);
    const { received, writes } = await serve(body);
    expect(received.equals(body)).toBe(true);
    expect(writes).toEqual([{ bytes: SLICE_BYTES, afterPrevious: true }]);
  });

  it('writes a long body a slice at a time, each once the one before has completed, and the client gets it whole', async () => {
    const body = Buffer.from(Array.from({ length: 5 * SLICE_BYTES + 123 }, (_, index) => index % 251));
    const { received, writes } = await serve(body);
    expect(received.equals(body)).toBe(true);
    expect(writes).toEqual([
      ...Array(5).fill({ bytes: SLICE_BYTES, afterPrevious: true }),
      { bytes: 123, afterPrevious: true },
    ]);
  });
});
