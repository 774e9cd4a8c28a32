import { once } from 'node:events';
import { type ClientHttp2Stream, connect, constants } from 'node:http2';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { shutdown } from '../../src/common/grpc-server.js';
import {
  createHealth,
  endHealthWatches,
  MAX_NAME_IN_CHECK_MESSAGE,
  MAX_WATCHED_NAME_LENGTH,
  watchedNames,
} from '../../src/common/health.js';
import { checkHealth } from '../helpers/grpc-clients.js';
import { grpcFrame, openRawCall } from '../helpers/raw-grpc.js';
import { wire } from '../services/support/raw-call.js';

// grpc.health.v1.Health as every server of the shop serves it (distributor and services).

describe('createHealth', () => {
  let server: Server | undefined;
  afterEach(() => server?.forceShutdown());

  async function serve(health: ReturnType<typeof createHealth>): Promise<number> {
    server = new Server();
    health.addToServer(server);
    return new Promise((resolve, reject) =>
      server!.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
  }

  /** A Watch call for `service`, and the frames it has received so far. */
  async function watch(port: number, service: string) {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const stream: ClientHttp2Stream = openRawCall(session, '/grpc.health.v1.Health/Watch');
    const frames: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => frames.push(chunk));
    stream.end(grpcFrame(wire.text(1, service)));
    await vi.waitFor(() => expect(frames.length).toBeGreaterThan(0));
    return {
      frames,
      async cancel() {
        stream.close(constants.NGHTTP2_CANCEL);
        await once(stream, 'close');
        session.close();
      },
    };
  }

  it('forgets the name of a Watch once its last call ended: ever new names do not grow the process', async () => {
    const health = createHealth({ '': 'SERVING' });
    const port = await serve(health);
    const kept = await watch(port, '');
    // Names as long as a Watch takes, each watched by a call that then ends.
    const gone = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        watch(port, `${index}`.padStart(MAX_WATCHED_NAME_LENGTH, 'x')),
      ),
    );
    expect(watchedNames(health)).toBe(21);
    await Promise.all(gone.map((call) => call.cancel()));
    await vi.waitFor(() => expect(watchedNames(health)).toBe(1));

    // The call still open is still told of a change.
    const before = kept.frames.length;
    health.setStatus('', 'NOT_SERVING');
    await vi.waitFor(() => expect(kept.frames.length).toBe(before + 1));
    await kept.cancel();
    await vi.waitFor(() => expect(watchedNames(health)).toBe(0));
  });

  /** The status a Watch call for `service` ended with at once (it got no message). */
  async function refusedWatch(port: number, service: string): Promise<number> {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      const stream = openRawCall(session, '/grpc.health.v1.Health/Watch');
      stream.on('data', () => {});
      stream.end(grpcFrame(wire.text(1, service)));
      const [headers] = (await once(stream, 'response')) as [Record<string, string>];
      return Number(headers['grpc-status']);
    } finally {
      session.close();
    }
  }

  it('holds at most maxWatches Watch calls at once, and a name of at most MAX_WATCHED_NAME_LENGTH', async () => {
    const health = createHealth({ '': 'SERVING' }, { maxWatches: 3 });
    const port = await serve(health);
    const open = await Promise.all([watch(port, ''), watch(port, ''), watch(port, 'other')]);
    expect(await refusedWatch(port, '')).toBe(status.RESOURCE_EXHAUSTED);
    // One ended gives its place back.
    await open[0]!.cancel();
    await vi.waitFor(async () => {
      const again = await watch(port, '');
      open.push(again);
    });
    expect(await refusedWatch(port, '')).toBe(status.RESOURCE_EXHAUSTED);
    for (const call of open.slice(1)) await call.cancel();
    expect(await refusedWatch(port, 'x'.repeat(MAX_WATCHED_NAME_LENGTH + 1))).toBe(status.INVALID_ARGUMENT);
    expect(watchedNames(health)).toBe(0);
  });

  it('ends a Watch whose request comes only once its Watch calls were ended, without holding the stop its grace', async () => {
    const health = createHealth({ '': 'SERVING' });
    const port = await serve(health);
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      // Set up (its HEADERS came), but its handler waits for the request, which is held back.
      const stream = openRawCall(session, '/grpc.health.v1.Health/Watch');
      stream.on('data', () => {});
      // Trailers-only: a call ended before any message says its status in its response headers.
      const response = once(stream, 'response');
      await new Promise((resolve) => setTimeout(resolve, 100));
      health.setStatus('', 'NOT_SERVING');
      endHealthWatches(health, 'the server is stopping');
      const started = performance.now();
      const stopped = shutdown(server!, 5_000);
      stream.end(grpcFrame(wire.text(1, '')));
      await stopped;
      expect(performance.now() - started).toBeLessThan(2_000);
      const [headers] = (await response) as [Record<string, string>];
      expect(Number(headers['grpc-status'])).toBe(status.UNAVAILABLE);
      expect(decodeURIComponent(headers['grpc-message']!)).toBe('the server is stopping');
    } finally {
      session.close();
    }
  });

  it('keeps a name while another call still watches it', async () => {
    const health = createHealth({ shop: 'NOT_SERVING' });
    const port = await serve(health);
    const first = await watch(port, 'shop');
    const second = await watch(port, 'shop');
    await first.cancel();
    const before = second.frames.length;
    health.setStatus('shop', 'SERVING');
    await vi.waitFor(() => expect(second.frames.length).toBe(before + 1));
    expect(watchedNames(health)).toBe(1);
    await second.cancel();
    await vi.waitFor(() => expect(watchedNames(health)).toBe(0));
  });

  it('answers a Check of an unknown name of any length NOT_FOUND at once, with a message a grpc-js client takes', async () => {
    const health = createHealth({ '': 'SERVING' });
    const port = await serve(health);
    const address = `127.0.0.1:${port}`;
    await expect(checkHealth(address, 'nothing')).rejects.toMatchObject({
      code: status.NOT_FOUND,
      details: 'Health status unknown for service nothing',
    });
    // Repeated whole in the message, a name this long never reached the caller: its call waited
    // for the deadline (5 s in checkHealth).
    const long = 'n'.repeat(200_000);
    const started = Date.now();
    const refusal = await checkHealth(address, long).catch((error: unknown) => error);
    expect(refusal).toMatchObject({ code: status.NOT_FOUND });
    expect((refusal as { details: string }).details).toBe(
      `Health status unknown for service ${'n'.repeat(MAX_NAME_IN_CHECK_MESSAGE)}…`,
    );
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(await checkHealth(address)).toBe('SERVING');
  });

  it('cuts a long unknown name that holds replacement patterns ($&) as it is, not expanded', async () => {
    const health = createHealth({ '': 'SERVING' });
    const port = await serve(health);
    // Taken as a pattern, each "$&" of the cut became the whole name again: 25 MB of message.
    const name = '$&'.repeat(MAX_NAME_IN_CHECK_MESSAGE).padEnd(100_000, 'n');
    const started = Date.now();
    const refusal = await checkHealth(`127.0.0.1:${port}`, name).catch((error: unknown) => error);
    expect(refusal).toMatchObject({ code: status.NOT_FOUND });
    expect((refusal as { details: string }).details).toBe(
      `Health status unknown for service ${'$&'.repeat(MAX_NAME_IN_CHECK_MESSAGE / 2)}…`,
    );
    expect(Date.now() - started).toBeLessThan(4_000);
  });
});
