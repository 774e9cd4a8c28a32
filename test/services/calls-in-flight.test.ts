import { connect as connectHttp2, constants as http2Constants } from 'node:http2';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Client, credentials, Server, ServerCredentials, type ServiceError, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { asIs, bytesMethod } from '../../src/common/bytes-method.js';
import { CallLimit, WAITING_PER_SLOT } from '../../src/services/common/calls-in-flight.js';

const HOLD = { Hold: bytesMethod('/test.v1.Hold/Hold') };

// The test that counts what waiting calls hold collects garbage first.
setFlagsFromString('--expose-gc');

describe('limitCallsInFlight', () => {
  let server: Server | undefined;
  let client: Client | undefined;
  afterEach(() => {
    client?.close();
    server?.forceShutdown();
  });

  /** A server whose one method holds every call until the test answers it, bounded to `limit`. */
  async function holdingServer(limit: number) {
    const held: Array<() => void> = [];
    let handlersRun = 0;
    server = new Server();
    const callLimit = new CallLimit(limit);
    server.addService(
      HOLD,
      callLimit.apply(HOLD, {
        Hold: (_call: unknown, callback: (error: null, value: Buffer) => void) => {
          handlersRun++;
          held.push(() => callback(null, Buffer.from('done')));
        },
      }),
    );
    const port = await new Promise<number>((resolve, reject) =>
      server!.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    const caller = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    client = caller;
    const settled: number[] = [];
    const call = (deadlineMs = 10_000, body = Buffer.alloc(0)) =>
      new Promise<number>((resolve) =>
        caller.makeUnaryRequest(
          HOLD.Hold.path,
          asIs,
          asIs,
          body,
          { deadline: Date.now() + deadlineMs },
          (error: ServiceError | null) => {
            const code = error ? error.code : status.OK;
            settled.push(code);
            resolve(code);
          },
        ),
      );
    return { held, settled, call, callLimit, port, handlersRun: () => handlersRun };
  }

  it('runs at most the limit at once; the others wait in order and run as slots free', async () => {
    const server = await holdingServer(2);
    const calls = Array.from({ length: 5 }, () => server.call());
    await expect.poll(() => server.handlersRun()).toBe(2);
    // Nothing is refused: the three others wait.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect([server.handlersRun(), server.settled]).toEqual([2, []]);
    server.held.shift()!();
    await expect.poll(() => server.handlersRun()).toBe(3);
    while (server.settled.length < 5) {
      for (const answer of server.held.splice(0)) answer();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await Promise.all(calls)).toEqual(Array(5).fill(status.OK));
    expect(server.handlersRun()).toBe(5);
  });

  it(`refuses at once, RESOURCE_EXHAUSTED, a call past ${WAITING_PER_SLOT} waiting per slot`, async () => {
    const server = await holdingServer(1);
    const calls = Array.from({ length: 1 + WAITING_PER_SLOT }, () => server.call());
    await expect.poll(() => server.callLimit.waiting).toBe(WAITING_PER_SLOT);
    expect(server.callLimit.running).toBe(1);
    expect(await server.call()).toBe(status.RESOURCE_EXHAUSTED);
    while (server.settled.length < 2 + WAITING_PER_SLOT) {
      for (const answer of server.held.splice(0)) answer();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await Promise.all(calls)).toEqual(Array(1 + WAITING_PER_SLOT).fill(status.OK));
    expect([server.callLimit.running, server.callLimit.waiting]).toEqual([0, 0]);
  });

  it('does not count waiting calls whose clients left: a new call waits, not refused', async () => {
    const server = await holdingServer(1);
    const first = server.call();
    await expect.poll(() => server.handlersRun()).toBe(1);
    const expired = Array.from({ length: WAITING_PER_SLOT }, () => server.call(100));
    expect(await Promise.all(expired)).toEqual(Array(WAITING_PER_SLOT).fill(status.DEADLINE_EXCEEDED));
    await expect.poll(() => server.callLimit.waiting).toBe(0);
    const patient = server.call();
    await expect.poll(() => server.callLimit.waiting).toBe(1);
    server.held.shift()!();
    expect(await first).toBe(status.OK);
    await expect.poll(() => server.handlersRun()).toBe(2);
    server.held.shift()!();
    expect(await patient).toBe(status.OK);
  });

  it('skips a waiting call whose deadline passed: it never runs, and the next one does', async () => {
    const server = await holdingServer(1);
    const first = server.call();
    await expect.poll(() => server.handlersRun()).toBe(1);
    const expired = server.call(200);
    const patient = server.call();
    expect(await expired).toBe(status.DEADLINE_EXCEEDED);
    // The server's own deadline passes a moment after the client's (the time the call took to arrive).
    await new Promise((resolve) => setTimeout(resolve, 50));
    server.held.shift()!();
    expect(await first).toBe(status.OK);
    await expect.poll(() => server.handlersRun()).toBe(2);
    server.held.shift()!();
    expect(await patient).toBe(status.OK);
    expect(server.handlersRun()).toBe(2);
  });

  it('gets every slot back after many calls, answered, refused, or out of time before or after they ran', async () => {
    const server = await holdingServer(4);
    const calls: Array<Promise<number>> = [];
    for (let round = 0; round < 25; round++) {
      for (let count = 0; count < 12; count++) calls.push(server.call(count % 3 === 0 ? 50 : 10_000));
      await new Promise((resolve) => setTimeout(resolve, 20));
      for (const answer of server.held.splice(0)) answer();
    }
    while (server.settled.length < calls.length) {
      for (const answer of server.held.splice(0)) answer();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const expected: number[] = [status.OK, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED];
    const codes = new Set(await Promise.all(calls));
    expect([...codes].filter((code) => !expected.includes(code)).map((code) => status[code])).toEqual([]);
    // The server sees a call's deadline pass on its own timer: on a busy machine, a little after the client.
    await expect
      .poll(() => [server.callLimit.running, server.callLimit.waiting], { timeout: 5_000 })
      .toEqual([0, 0]);
  });

  it('holds no request of a waiting call whose client left, however many leave while every slot is busy', async () => {
    const server = await holdingServer(1);
    const first = server.call();
    await expect.poll(() => server.handlersRun()).toBe(1);
    const gc = runInNewContext('gc') as () => void;
    const external = () => {
      gc();
      return process.memoryUsage().arrayBuffers;
    };
    const before = external();
    // Each waits (two at a time, the bound with one slot) and gives up: 80 of 512 KiB in all.
    const body = () => Buffer.alloc(512 * 1024, 1);
    for (let round = 0; round < 40; round++) {
      await Promise.all([server.call(40, body()), server.call(40, body())]);
    }
    await expect.poll(() => server.callLimit.waiting).toBe(0);
    // 80 requests held would be 40 MiB; the queue may keep up to twice its bound (4 of them). V8 frees
    // array buffers' memory on a background thread after a collection, so the count is read until it settles.
    await expect
      .poll(() => external() - before, { timeout: 5_000, interval: 100 })
      .toBeLessThan(8 * 1024 * 1024);
    server.held.shift()!();
    expect(await first).toBe(status.OK);
  });

  it('keeps a slot until the answer has left, not only until the handler answered', async () => {
    const server = await holdingServer(1);
    // A raw HTTP/2 client that opens no flow-control window: the answer cannot leave the server.
    const session = connectHttp2(`http://127.0.0.1:${server.port}`, { settings: { initialWindowSize: 0 } });
    try {
      const stuck = session.request({
        ':method': 'POST',
        ':path': HOLD.Hold.path,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      stuck.on('error', () => {});
      stuck.end(Buffer.alloc(5));
      await expect.poll(() => server.handlersRun()).toBe(1);
      server.held.shift()!();
      const next = server.call();
      await new Promise((resolve) => setTimeout(resolve, 200));
      // Answered, but its answer is still in the server: the slot is still taken.
      expect([server.handlersRun(), server.callLimit.waiting]).toEqual([1, 1]);
      stuck.close(http2Constants.NGHTTP2_CANCEL);
      await expect.poll(() => server.handlersRun()).toBe(2);
      server.held.shift()!();
      expect(await next).toBe(status.OK);
    } finally {
      session.destroy();
    }
  });
});
