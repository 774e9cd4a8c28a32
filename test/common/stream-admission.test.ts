import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import http2, { type Http2Server } from 'node:http2';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import { listen } from '../../src/common/grpc-server.js';
import {
  admitStreamsInSlices,
  type StreamAdmission,
  type StreamAdmissionOptions,
} from '../../src/common/stream-admission.js';
import { useTestPki } from '../helpers/certs.js';

const OPEN = { ...bytesMethod('/test.v1.Burst/Open', true), requestStream: true };

const testPki = useTestPki('stream-admission-', { names: ['distributor'] });

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

/** A real server with one bidi method, its streams admitted as `options` say. */
async function start(
  options: StreamAdmissionOptions,
  /** Called as each stream comes, before the admission sees it, with how many have come. */
  onArrival: (count: number, admission: StreamAdmission) => void = () => {},
) {
  const turn = turnCounter();
  const handled: Array<{ seq: number; connection: string; turn: number; waiting: number }> = [];
  let received = 0;
  const server = new Server();
  server.addService(
    { Open: OPEN },
    {
      Open(call: ServerDuplexStream<Buffer, Buffer>) {
        handled.push({
          seq: Number(call.metadata.get('x-seq')[0]),
          connection: String(call.metadata.get('x-connection')[0]),
          turn: turn(),
          waiting: received - handled.length - 1,
        });
        call.on('data', () => {});
        call.on('end', () => call.end());
      },
    },
  );
  const port = await listen(server, '127.0.0.1', 0, ServerCredentials.createInsecure());
  const admission = admitStreamsInSlices(server, options);
  // Called before the admission for every stream that comes: how many have come so far.
  const http2Servers = (server as unknown as { http2Servers: Map<Http2Server, unknown> }).http2Servers;
  for (const http2Server of http2Servers.keys()) {
    http2Server.prependListener('stream', () => onArrival(++received, admission));
  }
  /** A new connection to the server, and a function that opens streams on it (see `open`). */
  const connect = async (name: string) => {
    const client = http2.connect(`http://127.0.0.1:${port}`, { peerMaxConcurrentStreams: 100_000 });
    client.on('error', () => {});
    await new Promise((resolve) => client.once('remoteSettings', resolve));
    cleanups.push(() => client.destroy());
    /** Opens `count` streams at once, in one write: their HEADERS frames come to the server together. */
    return (count: number) =>
      Array.from({ length: count }, (_, seq) => {
        const stream = client.request(
          {
            ':method': 'POST',
            ':path': OPEN.path,
            'content-type': 'application/grpc',
            te: 'trailers',
            'x-seq': `${seq}`,
            'x-connection': name,
          },
          { endStream: false },
        );
        stream.on('error', () => {});
        return stream;
      });
  };
  cleanups.push(() => server.forceShutdown());
  const open = await connect('first');
  return { server, admission, handled, open, connect };
}

const until = async (condition: () => boolean, timeoutMs = 5_000) => {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

/**
 * How many steps the iterators of every Map and Set take while `run` runs, and how many entries
 * their forEach visits (which uses no iterator): the work of a scan, counted rather than timed,
 * since a loaded machine makes any timing flaky.
 */
function countMapAndSetSteps(run: () => void): number {
  // Map's keys, values and entries share one iterator prototype; Set's have another.
  const prototypes = [new Map().values(), new Set().values()].map(
    (iterator) => Object.getPrototypeOf(iterator) as { next: () => IteratorResult<unknown> },
  );
  const originals = prototypes.map((prototype) => prototype.next);
  const collections = [Map.prototype, Set.prototype] as unknown as Array<{
    forEach: (this: { size: number }, ...args: unknown[]) => void;
  }>;
  const originalForEaches = collections.map((collection) => collection.forEach);
  let steps = 0;
  prototypes.forEach((prototype, i) => {
    const original = originals[i]!;
    prototype.next = function next(this: unknown) {
      steps += 1;
      return original.call(this);
    };
  });
  collections.forEach((collection, i) => {
    const original = originalForEaches[i]!;
    collection.forEach = function forEach(this: { size: number }, ...args: unknown[]) {
      steps += this.size;
      return original.apply(this, args);
    };
  });
  try {
    run();
  } finally {
    prototypes.forEach((prototype, i) => {
      prototype.next = originals[i]!;
    });
    collections.forEach((collection, i) => {
      collection.forEach = originalForEaches[i]!;
    });
  }
  return steps;
}

/** A connection as the admission sees it, with no socket behind it. */
function fakeSession(remoteAddress: string) {
  return {
    destroyed: false,
    socket: { remoteAddress },
    goaway() {},
    destroy() {
      this.destroyed = true;
    },
  };
}

/**
 * An admission over a stand-in HTTP/2 server, whose streams come from fake sessions (for what real
 * sockets cannot do in a test: tens of thousands of connections, a connection gone at a set time).
 */
function fakeServer(options: StreamAdmissionOptions) {
  const http2Server = new EventEmitter();
  http2Server.on('stream', () => {});
  const server = { http2Servers: new Map([[http2Server, {}]]) } as unknown as Server;
  const admission = admitStreamsInSlices(server, options);
  const emit = (session: unknown): void => {
    const stream = Object.assign(new EventEmitter(), {
      session,
      closed: false,
      destroyed: false,
      close() {},
    });
    http2Server.emit('stream', stream, {}, 0, []);
  };
  return { admission, emit };
}

describe('admitStreamsInSlices', () => {
  it('hands every stream over, in the order they came, spread over turns once a slice is spent', async () => {
    const { handled, open } = await start({ sliceMs: 0 });
    open(40);
    await until(() => handled.length >= 40);
    expect(handled.map(({ seq }) => seq)).toEqual(Array.from({ length: 40 }, (_, seq) => seq));
    // With no time to spare in a turn, each stream after the first of a turn waits for the next.
    expect(new Set(handled.map(({ turn }) => turn)).size).toBe(40);
  });

  it('queues nothing while the slice lasts', async () => {
    const { handled, open } = await start({ sliceMs: 60_000 });
    open(40);
    await until(() => handled.length >= 40);
    expect(handled.map(({ seq }) => seq)).toEqual(Array.from({ length: 40 }, (_, seq) => seq));
    expect(handled.every(({ waiting }) => waiting === 0)).toBe(true);
  });

  it('drops a stream its client reset while it waited, and its error does not reach the process', async () => {
    const { handled, open } = await start({ sliceMs: 0 });
    const streams = open(20);
    // Reset in the same tick as opened: the resets follow the HEADERS frames in the same write.
    for (const stream of streams.slice(10)) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await until(() => handled.length >= 10);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(handled.map(({ seq }) => seq)).toEqual(Array.from({ length: 10 }, (_, seq) => seq));
  });

  it('takes turns between connections: one that opens few streams does not wait behind one that opened many', async () => {
    const { handled, open, connect } = await start({ sliceMs: 0 });
    const openOther = await connect('other');
    open(200);
    // Once the first connection's streams wait, the other opens three.
    await until(() => handled.length >= 2);
    openOther(3);
    await until(() => handled.length >= 203);
    const order = handled.map(({ connection }) => connection);
    const lastOther = order.lastIndexOf('other');
    // One stream of each in turn: the other's three are handed over within a few of its coming,
    // where in arrival order they waited for every one of the 200.
    expect(lastOther).toBeLessThan(20);
    expect(handled.filter(({ connection }) => connection === 'other').map(({ seq }) => seq)).toEqual([
      0, 1, 2,
    ]);
    expect(handled.filter(({ connection }) => connection === 'first').map(({ seq }) => seq)).toEqual(
      Array.from({ length: 200 }, (_, seq) => seq),
    );
  });

  it('reads a connection no more while many of its streams wait, so that Node sets up no more of them than grpc-js takes', async () => {
    const { handled, open } = await start({ sliceMs: 0 });
    // 20,000 streams in about 600 KiB: without the stop, all of them are read (and set up by Node)
    // long before grpc-js has taken a few hundred, one a turn.
    open(20_000);
    await until(() => handled.length >= 2_000, 30_000);
    // 256 waiting stop the reads; a read of 64 KiB (some 2,000 streams) may come on top, and one a
    // connection gets every 2 s however many wait.
    expect(Math.max(...handled.map(({ waiting }) => waiting))).toBeLessThan(6_000);
  });

  it('holds no more than maxWaiting streams in all however many connections flood, closing the flooding ones', async () => {
    let mostWaiting = 0;
    let closed = 0;
    // What waits as each stream comes, before the admission takes it.
    const { handled, connect } = await start(
      { sliceMs: 0, maxWaiting: 2_000, onConnectionClosed: () => closed++ },
      (_count, admission) => {
        mostWaiting = Math.max(mostWaiting, admission.waiting());
      },
    );
    // A connection of many nodes from the flood's address, its reads stopped with 300 waiting.
    const busy = (await connect('busy'))(300);
    // 20 connections of 3,000 each: a read of each brings some 2,000 before its reads stop, so that
    // without the bound some 40,000 waited at once.
    const flooders = await Promise.all(Array.from({ length: 20 }, (_, c) => connect(`flood-${c}`)));
    const floods = flooders.map((open) => open(3_000));
    await until(() => handled.filter(({ connection }) => connection === 'busy').length >= 300, 30_000);
    expect(mostWaiting).toBeLessThanOrEqual(2_000);
    expect(closed).toBeGreaterThan(0);
    // A stream of a closed connection is destroyed with it, and lets go of its session.
    expect(floods.some(([first]) => first!.destroyed && !first!.session)).toBe(true);
    // The busy connection held fewer than the flood's: it was not closed, and every stream of it came.
    expect(busy[0]!.session?.destroyed).toBe(false);
    expect(handled.filter(({ connection }) => connection === 'busy').map(({ seq }) => seq)).toEqual(
      Array.from({ length: 300 }, (_, seq) => seq),
    );
  });

  it('closes a flooding connection with a GOAWAY of ENHANCE_YOUR_CALM, which tells its client why', async () => {
    let closed = 0;
    const { open } = await start({ sliceMs: 0, maxWaiting: 500, onConnectionClosed: () => closed++ });
    const streams = open(2_000);
    const goaway = new Promise<number>((resolve) => streams[0]!.session!.once('goaway', resolve));
    expect(await goaway).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(closed).toBeGreaterThan(0);
  });

  it('past the bound, finds the connection to close without a scan of every connection waiting', () => {
    // Stand-ins for 10,000 connections: as many real sockets would pass the machine's open files.
    const { admission, emit } = fakeServer({ sliceMs: 0, maxWaiting: 8_000 });
    const sessions = Array.from({ length: 10_000 }, (_, c) => fakeSession(`10.0.${c >> 8}.${c & 255}`));
    // The first stream of the turn is handed over; the rest wait.
    emit(sessions[0]!);
    for (const session of sessions) emit(session);
    // Every stream from here on is past the bound and closes a connection.
    const steps = countMapAndSetSteps(() => {
      for (const session of sessions) emit(session);
    });
    expect(admission.waiting()).toBeLessThanOrEqual(8_000);
    admission.close();
    // A scan of the connections waiting read each of them for every stream past the bound: some
    // 10,000 steps a stream, 270 µs of the loop's time among 20,000 connections (10 s for 40,000).
    expect(steps / sessions.length).toBeLessThan(10);
  });

  it('past the bound, forgets the streams of a connection gone already, without counting a close', () => {
    let closed = 0;
    const { admission, emit } = fakeServer({ sliceMs: 0, maxWaiting: 3, onConnectionClosed: () => closed++ });
    const gone = fakeSession('10.0.0.1');
    const other = fakeSession('10.0.0.2');
    emit(gone);
    for (let i = 0; i < 3; i++) emit(gone);
    // Its client went away while its streams waited; they wait only to be dropped.
    gone.destroyed = true;
    emit(other);
    expect(admission.waiting()).toBe(1);
    expect(closed).toBe(0);
    expect(other.destroyed).toBe(false);
    admission.close();
  });

  it("over TLS too, stops and starts a connection's reads, and hands every stream over", async () => {
    const files = testPki.pki.files('distributor');
    const server = new Server();
    let handled = 0;
    let received = 0;
    let mostWaiting = 0;
    server.addService(
      { Open: OPEN },
      {
        Open(call: ServerDuplexStream<Buffer, Buffer>) {
          handled += 1;
          mostWaiting = Math.max(mostWaiting, received - handled);
          call.on('data', () => {});
          call.on('end', () => call.end());
        },
      },
    );
    const credentials = ServerCredentials.createSsl(null, [
      { cert_chain: readFileSync(files.certFile), private_key: readFileSync(files.keyFile) },
    ]);
    const port = await listen(server, '127.0.0.1', 0, credentials);
    admitStreamsInSlices(server, { sliceMs: 0 });
    const http2Servers = (server as unknown as { http2Servers: Map<Http2Server, unknown> }).http2Servers;
    for (const http2Server of http2Servers.keys()) http2Server.prependListener('stream', () => received++);
    const client = http2.connect(`https://127.0.0.1:${port}`, {
      ca: readFileSync(files.caFile),
      peerMaxConcurrentStreams: 100_000,
    });
    client.on('error', () => {});
    cleanups.push(() => {
      client.destroy();
      server.forceShutdown();
    });
    await new Promise((resolve) => client.once('remoteSettings', resolve));
    for (let seq = 0; seq < 5_000; seq += 1) {
      const stream = client.request(
        { ':method': 'POST', ':path': OPEN.path, 'content-type': 'application/grpc', te: 'trailers' },
        { endStream: false },
      );
      stream.on('error', () => {});
    }
    await until(() => handled >= 5_000, 30_000);
    // Its reads stopped at 256 waiting, a read (of up to 16 KiB of TLS records) on top.
    expect(mostWaiting).toBeLessThan(2_500);
    // The connection still carries calls once its reads started again.
    const answered = await new Promise<boolean>((resolve) => {
      client.ping((error) => resolve(!error));
    });
    expect(answered).toBe(true);
  });

  it('once closed, refuses the streams still waiting, unprocessed, so that clients may retry them', async () => {
    // Closed as the 20th stream comes: the first was set up, those between wait (no time is left
    // in the slice), the 20th comes after the close.
    const { handled, open } = await start({ sliceMs: 0 }, (count, admission) => {
      if (count === 20) admission.close();
    });
    const streams = open(20);
    const refused = new Set<number>();
    for (const [seq, stream] of streams.entries()) {
      stream.on('close', () => {
        if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) refused.add(seq);
      });
    }
    await until(() => handled.length + refused.size >= 20);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(handled[0]!.seq).toBe(0);
    expect(refused.size).toBeGreaterThan(0);
    // Each stream either went to grpc-js or was refused, never both, and none waited once closed.
    expect([...handled.map(({ seq }) => seq), ...refused].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, seq) => seq),
    );
    // What comes after goes to grpc-js, every stream of it.
    const before = handled.length;
    open(3);
    await until(() => handled.length >= before + 3);
    expect(handled.slice(before).map(({ seq }) => seq)).toEqual([0, 1, 2]);
  });

  it('puts one queue in place however often it is called', async () => {
    const { server, handled, open } = await start({ sliceMs: 0 });
    const http2Servers = (server as unknown as { http2Servers: Map<Http2Server, unknown> }).http2Servers;
    const listenersOf = () => [...http2Servers.keys()].map((http2Server) => http2Server.listeners('stream'));
    const before = listenersOf();
    admitStreamsInSlices(server, { sliceMs: 0 });
    expect(listenersOf()).toEqual(before);
    open(10);
    await until(() => handled.length >= 10);
    expect(handled.map(({ seq }) => seq)).toEqual(Array.from({ length: 10 }, (_, seq) => seq));
  });

  it('refuses a grpc-js that keeps its HTTP/2 servers elsewhere, rather than doing nothing', () => {
    expect(() => admitStreamsInSlices({} as Server, { sliceMs: 5 })).toThrow(/HTTP\/2 servers/);
  });
});
