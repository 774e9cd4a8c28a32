import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as connectHttp2 } from 'node:http2';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { promisify } from 'node:util';
import { Server } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  http2ServersOf,
  idleConnectionOptions,
  keepaliveChannelOptions,
  listen,
  shutdown,
} from '../../src/common/grpc-server.js';
import type { Logger } from '../../src/common/logger.js';
import { serverCredentials } from '../../src/common/tls.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { checkHealth } from '../helpers/grpc-clients.js';
import { grpcFrame, openRawCall } from '../helpers/raw-grpc.js';
import { backendsOf } from '../services/support/backends.js';

// Connections to the gRPC ports: how many may be open at once (grpc-server.ts's listen), and how
// long one may stay without a call (grpc.max_connection_idle_ms), on a bare server, a service and
// the distributor.

/**
 * A socket to `port` that sends nothing, and a promise of its close. It reads nothing either unless
 * `reading`: a socket that reads nothing does not see the server close its side.
 */
function silentSocket(port: number, reading = false): { socket: Socket; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  if (reading) socket.resume();
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, closed };
}

function within<T>(promise: Promise<T>, ms: number): Promise<T | 'not yet'> {
  return Promise.race([
    promise,
    new Promise<'not yet'>((resolve) => setTimeout(() => resolve('not yet'), ms)),
  ]);
}

/**
 * An HTTP/2 peer written by hand: the preface and SETTINGS, an ACK to every SETTINGS and PING (so
 * keepalive keeps it), no call ever; after a GOAWAY it answers nothing and never closes its side.
 */
function silentHttp2Peer(port: number, ca?: Buffer): { socket: Socket; goaway(): boolean } {
  // allowHalfOpen: the end of the server's side does not end this one.
  const raw = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  // Over TLS the TLS socket takes its half-open setting from the socket it wraps. Trust is not
  // what is tested: the certificate's name is not checked.
  const socket = ca
    ? connectTls({ socket: raw, ca, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined })
    : raw;
  raw.on('error', () => {});
  socket.on('error', () => {});
  let goaway = false;
  let pending = Buffer.alloc(0);
  socket.write(
    Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
      Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
    ]),
  );
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) return;
      const [type, flags] = [pending[3]!, pending[4]!];
      const payload = pending.subarray(9, 9 + length);
      pending = pending.subarray(9 + length);
      if (goaway) continue;
      if (type === 4 && (flags & 1) === 0) socket.write(Buffer.from([0, 0, 0, 4, 1, 0, 0, 0, 0]));
      if (type === 6 && (flags & 1) === 0)
        socket.write(Buffer.concat([Buffer.from([0, 0, 8, 6, 1, 0, 0, 0, 0]), payload]));
      if (type === 7) goaway = true;
    }
  });
  return { socket, goaway: () => goaway };
}

const execFileAsync = promisify(execFile);

function lineLog(lines: Record<string, unknown>[]): Logger {
  return pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
}

describe('connections to a gRPC port', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  let testPki: { dir: string; pki: TestPki } | undefined;
  /** A CA and a goods certificate, made on first use. */
  const pki = (): TestPki => {
    if (!testPki) {
      const dir = mkdtempSync(join(tmpdir(), 'grpc-connections-'));
      testPki = { dir, pki: makeTestPki(dir, { names: ['goods'] }) };
    }
    return testPki.pki;
  };
  afterAll(() => {
    if (testPki) rmSync(testPki.dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A server with the health service on `maxConnections`, logging into `lines`. */
  async function roomedServer(
    maxConnections: number,
    lines: Record<string, unknown>[],
    credentials?: ReturnType<typeof serverCredentials>,
  ): Promise<number> {
    const server = new Server();
    new HealthImplementation({ '': 'SERVING' }).addToServer(server);
    const port = await listen(server, '127.0.0.1', 0, credentials, { maxConnections, log: lineLog(lines) });
    cleanups.push(() => shutdown(server, 100));
    return port;
  }

  /**
   * An HTTP/2 connection of its own that makes health calls by hand; over `over` when given, a
   * TCP socket to the port (bound to a loopback address of its own, say).
   */
  function rawClient(port: number, ca?: Buffer, over?: Socket) {
    // Over TLS, trust is not what is tested: the certificate's name is not checked.
    const tls = { ca, checkServerIdentity: () => undefined, ALPNProtocols: ['h2'] };
    const session = ca
      ? connectHttp2(`https://127.0.0.1:${port}`, {
          ...tls,
          ...(over ? { createConnection: () => connectTls({ ...tls, socket: over }) } : {}),
        })
      : connectHttp2(`http://127.0.0.1:${port}`, over ? { createConnection: () => over } : {});
    session.on('error', () => {});
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    cleanups.push(() => void session.destroy());
    const call = (method: 'Check' | 'Watch') => {
      const stream = openRawCall(session, `/grpc.health.v1.Health/${method}`);
      // An empty HealthCheckRequest, then the client's half of the call ends.
      stream.end(grpcFrame(new Uint8Array(0)));
      const firstAnswer = new Promise<void>((resolve) => stream.once('data', () => resolve()));
      const ended = new Promise<void>((resolve) => stream.once('close', () => resolve()));
      return { firstAnswer, ended };
    };
    return { session, closed, call };
  }

  it('past maxConnections, a connection that never called is closed to make room, the oldest first, and a client that calls gets in; logged once', async () => {
    const lines: Record<string, unknown>[] = [];
    const port = await roomedServer(3, lines);
    const held = [silentSocket(port, true), silentSocket(port, true), silentSocket(port, true)];
    cleanups.push(() => {
      for (const { socket } of held) socket.destroy();
    });
    for (const { socket } of held) await new Promise((resolve) => socket.once('connect', resolve));
    expect(await checkHealth(`127.0.0.1:${port}`)).toBe('SERVING');
    expect(await within(held[0]!.closed, 5_000)).toBeUndefined();
    expect(await within(held[1]!.closed, 100)).toBe('not yet');
    // Two more that never call: whether the health client's connection is still open or not, the
    // oldest of the first ones goes next.
    const more = [silentSocket(port, true), silentSocket(port, true)];
    cleanups.push(() => {
      for (const { socket } of more) socket.destroy();
    });
    expect(await within(held[1]!.closed, 5_000)).toBeUndefined();
    expect(lines.filter((line) => line.event === 'connection-limit')).toEqual([
      expect.objectContaining({
        level: 40,
        maxConnections: 3,
        action: 'evicted',
        msg: 'connection limit reached: closed a connection with no call open to make room',
      }),
    ]);
  });

  it('a stop that begins in the turn a connection is closed for room ends once its port has closed, not never', async () => {
    const server = new Server();
    new HealthImplementation({ '': 'SERVING' }).addToServer(server);
    const port = await listen(server, '127.0.0.1', 0, undefined, { maxConnections: 1 });
    const first = rawClient(port);
    await new Promise((resolve) => first.session.once('remoteSettings', resolve));
    // The second connection has the room close the first (never called): its session is destroyed,
    // and closed only in a later turn, when the stop has begun (a signal read in the same turn).
    let stopped: Promise<void> | undefined;
    http2ServersOf(server)[0]!.once('connection', () => {
      stopped = shutdown(server, 200);
    });
    const second = rawClient(port);
    await vi.waitFor(() => expect(stopped).toBeDefined());
    // grpc-js's tryShutdown waited on that session's close(), which never called back: the stop
    // never ended, its grace past or not.
    expect(await within(stopped!, 2_000)).toBeUndefined();
    await first.closed;
    await second.closed;
  });

  it('a connection that never called goes before one that called; of those that called, the one idle longest', async () => {
    const port = await roomedServer(3, []);
    const first = rawClient(port);
    await first.call('Check').ended;
    const second = rawClient(port);
    await second.call('Check').ended;
    const silent = silentSocket(port, true);
    await new Promise((resolve) => silent.socket.once('connect', resolve));
    // Full: the silent socket goes, though both clients have been idle longer.
    const third = rawClient(port);
    await third.call('Check').ended;
    expect(await within(silent.closed, 5_000)).toBeUndefined();
    expect(await within(first.closed, 100)).toBe('not yet');
    // Full again, every one has called: the first client, idle the longest, goes.
    const fourth = rawClient(port);
    await fourth.call('Check').ended;
    expect(await within(first.closed, 5_000)).toBeUndefined();
    expect(await within(second.closed, 100)).toBe('not yet');
  });

  it('a connection with a call open is not closed for room by a client of its own address: when every one has a call open, the new one waits for its first call, then is closed; logged once each', async () => {
    const lines: Record<string, unknown>[] = [];
    const port = await roomedServer(2, lines);
    const watchers = [rawClient(port), rawClient(port)];
    // Health Watch streams stay open: each connection has a call open.
    await Promise.all(watchers.map((watcher) => watcher.call('Watch').firstAnswer));
    // Sockets past the room wait for a first call they never make, and close nobody's.
    const late = [silentSocket(port, true), silentSocket(port, true)];
    cleanups.push(() => {
      for (const { socket } of late) socket.destroy();
    });
    for (const { closed } of late) expect(await within(closed, 200)).toBe('not yet');
    // A client that calls from the same address as every other is closed at its call.
    await expect(checkHealth(`127.0.0.1:${port}`)).rejects.toThrow(/UNAVAILABLE|DEADLINE_EXCEEDED/);
    for (const watcher of watchers) expect(await within(watcher.closed, 50)).toBe('not yet');
    expect(lines.filter((line) => line.event === 'connection-limit')).toEqual([
      expect.objectContaining({
        level: 40,
        action: 'refused',
        msg: 'connection limit reached with a call open on every connection, and no address holding more than the new one: the new connection was closed',
      }),
    ]);
    // A call that ends makes its connection one that can go.
    watchers[0]!.session.destroy();
    await vi.waitFor(async () => expect(await checkHealth(`127.0.0.1:${port}`)).toBe('SERVING'), {
      timeout: 10_000,
      interval: 100,
    });
  });

  it('a call whose connection is closed for room sees the connection drop, never an RST_STREAM NO_ERROR (grpc-js: INTERNAL "Call ended without gRPC status")', async () => {
    const port = await roomedServer(1, []);
    const watcher = rawClient(port);
    await watcher.call('Watch').firstAnswer;
    // The order of the session's RST_STREAM frames and the socket's end was a race, which a client
    // in this process never lost: the calls come from another, as a real client's do.
    const script = `
      const http2 = require('node:http2');
      (async () => {
        const codes = [];
        for (let i = 0; i < 12; i++) {
          const session = http2.connect('http://127.0.0.1:${port}');
          session.on('error', () => {});
          const stream = session.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' });
          stream.on('error', () => {});
          stream.end(Buffer.from([0, 0, 0, 0, 0]));
          await new Promise((resolve) => stream.once('close', resolve));
          codes.push(stream.rstCode);
          session.destroy();
        }
        process.stdout.write(JSON.stringify(codes));
      })();`;
    const { stdout } = await execFileAsync(process.execPath, ['-e', script]);
    const codes = JSON.parse(stdout) as number[];
    expect(codes).toHaveLength(12);
    // 0 is a frame from the server; a dropped connection is CANCEL or INTERNAL_ERROR, made by Node.
    expect(codes).not.toContain(0);
    expect(await within(watcher.closed, 50)).toBe('not yet');
  });

  /** A raw client whose connection comes from `address`, one of loopback's (127.0.0.0/8). */
  async function clientFrom(address: string, port: number): Promise<ReturnType<typeof rawClient>> {
    const socket = connect({ host: '127.0.0.1', port, localAddress: address });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    return rawClient(port, undefined, socket);
  }

  it('when every connection has a call open, the room is shared by address: a client holding it all gives its newest connection up to another address that calls, down to an equal share', async () => {
    const lines: Record<string, unknown>[] = [];
    const port = await roomedServer(4, lines);
    // One address holds the whole room with a Watch open on each connection, one after the other.
    const hog: Array<ReturnType<typeof rawClient>> = [];
    for (let i = 0; i < 4; i++) {
      const client = await clientFrom('127.0.0.2', port);
      await client.call('Watch').firstAnswer;
      hog.push(client);
    }
    // A socket from another address that makes no call closes nobody's.
    const silent = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9' });
    silent.on('error', () => {});
    cleanups.push(() => void silent.destroy());
    await new Promise((resolve) => silent.once('connect', resolve));
    for (const client of hog) expect(await within(client.closed, 100)).toBe('not yet');
    // Another address that calls gets in, and is served: the hog's newest connection makes room.
    const b = await clientFrom('127.0.0.3', port);
    expect(await within(b.call('Watch').firstAnswer, 5_000)).toBeUndefined();
    expect(await within(hog[3]!.closed, 5_000)).toBeUndefined();
    // The hog coming back is refused at its call: no address holds more than its own.
    const again = await clientFrom('127.0.0.2', port);
    again.call('Watch');
    expect(await within(again.closed, 5_000)).toBeUndefined();
    // A third address makes room out of the hog's three, again its newest.
    const c = await clientFrom('127.0.0.4', port);
    expect(await within(c.call('Watch').firstAnswer, 5_000)).toBeUndefined();
    expect(await within(hog[2]!.closed, 5_000)).toBeUndefined();
    // Two each for the hog, one for b and c: b's second connection finds no address holding more than b.
    const bAgain = await clientFrom('127.0.0.3', port);
    bAgain.call('Watch');
    expect(await within(bAgain.closed, 5_000)).toBeUndefined();
    for (const kept of [hog[0]!, hog[1]!, b, c]) expect(await within(kept.closed, 50)).toBe('not yet');
    expect(lines.filter((line) => line.event === 'connection-limit')).toEqual([
      expect.objectContaining({
        level: 40,
        action: 'displaced',
        addressGroup: '127.0.0.2',
        msg: 'connection limit reached with a call open on every connection: closed the newest connection of the address holding the most, to make room for another address',
      }),
      expect.objectContaining({ action: 'refused' }),
    ]);
  });

  it('a flood of sockets that never call, from one address, turns over its own places past a full room: a client that calls from another gets in', async () => {
    const lines: Record<string, unknown>[] = [];
    const port = await roomedServer(2, lines);
    const hog = [await clientFrom('127.0.0.2', port), await clientFrom('127.0.0.2', port)];
    for (const client of hog) await client.call('Watch').firstAnswer;
    // The caller's connection comes first and waits past the room; twenty that never call follow.
    const callerSocket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.3' });
    callerSocket.on('error', () => {});
    await new Promise((resolve) => callerSocket.once('connect', resolve));
    const flood = Array.from({ length: 20 }, () => {
      const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9' });
      socket.on('error', () => {});
      socket.resume();
      return { socket, closed: new Promise<void>((resolve) => socket.once('close', () => resolve())) };
    });
    cleanups.push(() => {
      for (const { socket } of flood) socket.destroy();
    });
    await Promise.all(flood.map(({ socket }) => new Promise((resolve) => socket.once('connect', resolve))));
    // Past the room (2), four may wait: the flood's own oldest went, not the caller (and past
    // Node's hard stop some may have been dropped before the room saw them).
    await vi.waitFor(
      async () => {
        let open = 0;
        for (const { closed } of flood) if ((await within(closed, 0)) === 'not yet') open++;
        expect(open).toBeLessThanOrEqual(3);
      },
      { timeout: 5_000, interval: 50 },
    );
    const caller = rawClient(port, undefined, callerSocket);
    expect(await within(caller.call('Watch').firstAnswer, 5_000)).toBeUndefined();
    // The hog's newest connection made room for it.
    expect(await within(hog[1]!.closed, 5_000)).toBeUndefined();
    expect(await within(hog[0]!.closed, 50)).toBe('not yet');
    const actions = lines.filter((line) => line.event === 'connection-limit').map((line) => line.action);
    expect(actions.filter((action) => action !== 'refused')).toEqual(['evicted', 'displaced']);
  });

  it('a connection waiting past a full room moves into a place that comes free, and is then the first to go for room', async () => {
    const port = await roomedServer(2, []);
    const watchers = [rawClient(port), rawClient(port)];
    await Promise.all(watchers.map((watcher) => watcher.call('Watch').firstAnswer));
    const waiting = silentSocket(port, true);
    cleanups.push(() => void waiting.socket.destroy());
    await new Promise((resolve) => waiting.socket.once('connect', resolve));
    expect(await within(waiting.closed, 200)).toBe('not yet');
    // A place comes free: the waiting socket takes it, as one that never called.
    watchers[0]!.session.destroy();
    await watchers[0]!.closed;
    // The next to come closes it, not a connection that called.
    const next = rawClient(port);
    expect(await within(next.call('Check').firstAnswer, 5_000)).toBeUndefined();
    expect(await within(waiting.closed, 5_000)).toBeUndefined();
    expect(await within(watchers[1]!.closed, 50)).toBe('not yet');
  });

  it('a connection waiting past a full room for a first call it never makes is closed after 10 s, and nobody else', async () => {
    const lines: Record<string, unknown>[] = [];
    const port = await roomedServer(2, lines);
    const watchers = [rawClient(port), rawClient(port)];
    await Promise.all(watchers.map((watcher) => watcher.call('Watch').firstAnswer));
    const waiting = silentSocket(port, true);
    cleanups.push(() => void waiting.socket.destroy());
    await new Promise((resolve) => waiting.socket.once('connect', resolve));
    // As long as a slow TLS handshake may take, not for ever.
    expect(await within(waiting.closed, 8_500)).toBe('not yet');
    expect(await within(waiting.closed, 4_000)).toBeUndefined();
    expect(lines.filter((line) => line.event === 'connection-limit').map((line) => line.action)).toEqual([
      'evicted',
    ]);
    // The connections in the room keep their calls.
    for (const watcher of watchers) expect(await within(watcher.closed, 50)).toBe('not yet');
  }, 20_000);

  it('sockets that never call, from one address, turn over their own places in the room, not those of a client from another that has yet to call', async () => {
    const port = await roomedServer(3, []);
    const hog = await clientFrom('127.0.0.2', port);
    await hog.call('Watch').firstAnswer;
    const silentFrom9 = () => {
      const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9' });
      socket.on('error', () => {});
      socket.resume();
      cleanups.push(() => void socket.destroy());
      return new Promise<Socket>((resolve) => socket.once('connect', () => resolve(socket)));
    };
    // Two silent places, then a caller's connection that has not called yet.
    await silentFrom9();
    await silentFrom9();
    const callerSocket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.3' });
    callerSocket.on('error', () => {});
    const callerClosed = new Promise<void>((resolve) => callerSocket.once('close', () => resolve()));
    await new Promise((resolve) => callerSocket.once('connect', resolve));
    // Five more from the same address: each closes one of that address's own.
    for (let i = 0; i < 5; i++) await silentFrom9();
    expect(await within(callerClosed, 200)).toBe('not yet');
    const caller = rawClient(port, undefined, callerSocket);
    expect(await within(caller.call('Check').firstAnswer, 5_000)).toBeUndefined();
    expect(await within(hog.closed, 50)).toBe('not yet');
  });

  it('on a TLS port bound to every address, one peer address and port reaching two local addresses are two connections', async () => {
    const { certFile, keyFile } = pki().files('goods');
    const server = new Server();
    new HealthImplementation({ '': 'SERVING' }).addToServer(server);
    const port = await listen(server, '0.0.0.0', 0, serverCredentials({ certFile, keyFile }), {
      maxConnections: 2,
    });
    cleanups.push(() => shutdown(server, 100));
    // Two TCP connections from the same address and port, to 127.0.0.1 and to 127.0.0.2.
    const localPort = await new Promise<number>((resolve) => {
      // A port free on 127.0.0.1: one a listener got, closed before it accepted anything.
      const listener = createNetServer().listen(0, '127.0.0.1', () => {
        const { port: free } = listener.address() as { port: number };
        listener.close(() => resolve(free));
      });
    });
    const raws = ['127.0.0.1', '127.0.0.2'].map((host) => {
      const raw = connect({ host, port, localAddress: '127.0.0.1', localPort });
      raw.on('error', () => {});
      return raw;
    });
    await Promise.all(raws.map((raw) => new Promise((resolve) => raw.once('connect', resolve))));
    const ca = readFileSync(pki().caFile);
    const [watching, idle] = raws.map((raw) => rawClient(port, ca, raw));
    await watching!.call('Watch').firstAnswer;
    await idle!.call('Check').ended;
    // Full: the idle one goes (it called once), never the one with its Watch open.
    const third = rawClient(port, ca);
    await third.call('Check').ended;
    expect(await within(idle!.closed, 5_000)).toBeUndefined();
    expect(await within(watching!.closed, 100)).toBe('not yet');
  });

  it('forty connections at once leave the room at its size, and a client that calls is served', async () => {
    const server = new Server();
    new HealthImplementation({ '': 'SERVING' }).addToServer(server);
    const port = await listen(server, '127.0.0.1', 0, undefined, { maxConnections: 5 });
    cleanups.push(() => shutdown(server, 100));
    const sockets = Array.from({ length: 5 }, () => silentSocket(port, true));
    await Promise.all(sockets.map(({ socket }) => new Promise((resolve) => socket.once('connect', resolve))));
    sockets.push(...Array.from({ length: 40 }, () => silentSocket(port, true)));
    cleanups.push(() => {
      for (const { socket } of sockets) socket.destroy();
    });
    const [http2Server] = http2ServersOf(server);
    const open = (): Promise<number> =>
      new Promise((resolve, reject) =>
        http2Server!.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      );
    // The server may count five while connections the kernel has already completed still wait in
    // its backlog, and a close reaches the client a moment after the server counts it: so wait on
    // the clients' side, where a close is final, then check the server agrees.
    const stillOpen = async (): Promise<number> => {
      let count = 0;
      for (const { closed } of sockets) if ((await within(closed, 0)) === 'not yet') count++;
      return count;
    };
    await vi.waitFor(async () => expect(await stillOpen()).toBe(5), { timeout: 5_000, interval: 50 });
    expect(await open()).toBe(5);
    expect(await checkHealth(`127.0.0.1:${port}`)).toBe('SERVING');
  });

  it('over TLS, a connection that never finished its handshake is closed to make room', async () => {
    const { certFile, keyFile } = pki().files('goods');
    const port = await roomedServer(1, [], serverCredentials({ certFile, keyFile }));
    const silent = silentSocket(port, true);
    await new Promise((resolve) => silent.socket.once('connect', resolve));
    const client = rawClient(port, readFileSync(pki().caFile));
    await client.call('Check').ended;
    expect(await within(silent.closed, 5_000)).toBeUndefined();
    expect(await within(client.closed, 100)).toBe('not yet');
  });

  it.each(['plaintext', 'TLS'])(
    'a connection closed for want of calls is destroyed after the grace if its peer never closes its side (%s)',
    async (transport) => {
      const server = new Server({
        ...keepaliveChannelOptions({ timeMs: 1_000, timeoutMs: 500 }),
        ...idleConnectionOptions(300),
      });
      new HealthImplementation({ '': 'SERVING' }).addToServer(server);
      const tls = transport === 'TLS';
      const { certFile, keyFile } = tls ? pki().files('goods') : { certFile: '', keyFile: '' };
      const credentials = tls ? serverCredentials({ certFile, keyFile }) : undefined;
      const port = await listen(server, '127.0.0.1', 0, credentials, {
        maxConnections: 1,
        halfOpenGraceMs: 300,
      });
      cleanups.push(() => shutdown(server, 100));
      const peer = silentHttp2Peer(port, tls ? readFileSync(pki().caFile) : undefined);
      cleanups.push(() => void peer.socket.destroy());
      await vi.waitFor(() => expect(peer.goaway()).toBe(true), { timeout: 5_000, interval: 20 });
      const [http2Server] = http2ServersOf(server);
      const open = (): Promise<number> =>
        new Promise((resolve, reject) =>
          http2Server!.getConnections((error, count) => (error ? reject(error) : resolve(count))),
        );
      await vi.waitFor(async () => expect(await open()).toBe(0), { timeout: 3_000, interval: 50 });
    },
  );

  interface Limits {
    maxConnections: number;
    maxConnectionIdleMs: number;
    log: Logger;
  }
  const factories = {
    'a service': async (options: Limits) => {
      const opened = await backendsOf(goodsService)[0]!.open();
      const server = createServiceServer(goodsService, { store: opened.store, ...options });
      const port = await server.listen('127.0.0.1', 0);
      return {
        port,
        stop: async () => {
          await server.stop(100);
          await opened.dispose();
        },
      };
    },
    'the distributor': async (options: Limits) => {
      const server = createDistributorServer(options);
      const port = await server.listen('127.0.0.1', 0);
      return { port, stop: () => server.stop(100) };
    },
  };

  it.each(Object.entries(factories))(
    '%s stops within its grace while a client that reads nothing, and never sent its HTTP/2 preface, is connected',
    async (_name, start) => {
      const { port, stop } = await start({
        maxConnections: 10,
        maxConnectionIdleMs: 60_000,
        log: lineLog([]),
      });
      let stopped: Promise<void> | undefined;
      cleanups.push(() => stopped ?? stop());
      const silent = silentSocket(port);
      cleanups.push(() => void silent.socket.destroy());
      await new Promise((resolve) => silent.socket.once('connect', resolve));
      const startedAt = performance.now();
      stopped = stop();
      await stopped;
      // stop(100): the grace, then the connection destroyed; before, 10 s or more (the half-open
      // grace, or keepalive), and without either for ever.
      expect(performance.now() - startedAt).toBeLessThan(3_000);
    },
  );

  it.each(Object.entries(factories))(
    '%s closes a connection that makes no call for maxConnectionIdleMs, and one that never called to keep --max-connections',
    async (_name, start) => {
      const lines: Record<string, unknown>[] = [];
      const { port, stop } = await start({
        maxConnections: 2,
        maxConnectionIdleMs: 300,
        log: lineLog(lines),
      });
      cleanups.push(stop);
      // An HTTP/2 client that answers pings, so keepalive keeps it, and never calls.
      const idle = connectHttp2(`http://127.0.0.1:${port}`);
      idle.on('error', () => {});
      const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
      cleanups.push(() => void idle.destroy());
      await new Promise((resolve) => idle.once('connect', resolve));
      expect(await within(idleClosed, 5_000)).toBeUndefined();
      const [first, second, third] = [
        silentSocket(port, true),
        silentSocket(port, true),
        silentSocket(port, true),
      ];
      cleanups.push(() => {
        for (const { socket } of [first, second, third]) socket.destroy();
      });
      expect(await within(first.closed, 5_000)).toBeUndefined();
      expect(await within(second.closed, 100)).toBe('not yet');
      expect(lines.filter((line) => line.event === 'connection-limit')).toEqual([
        expect.objectContaining({ action: 'evicted', maxConnections: 2 }),
      ]);
    },
  );
});
