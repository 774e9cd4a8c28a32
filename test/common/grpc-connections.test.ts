import { connect as connectHttp2 } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { Server } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listen, shutdown } from '../../src/common/grpc-server.js';
import type { Logger } from '../../src/common/logger.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { checkHealth } from '../helpers/grpc-clients.js';
import { backendsOf } from '../services/support/backends.js';

// Connections to the gRPC ports: how many may be open at once (grpc-server.ts's listen), and how
// long one may stay without a call (grpc.max_connection_idle_ms), on a bare server, a service and
// the distributor.

/** A socket to `port` that sends nothing, and a promise of its close. */
function silentSocket(port: number): { socket: Socket; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, closed };
}

function within<T>(promise: Promise<T>, ms: number): Promise<T | 'not yet'> {
  return Promise.race([
    promise,
    new Promise<'not yet'>((resolve) => setTimeout(() => resolve('not yet'), ms)),
  ]);
}

function lineLog(lines: Record<string, unknown>[]): Logger {
  return pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
}

describe('connections to a gRPC port', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('past maxConnections, a new connection is closed as soon as it is accepted, once logged; room comes back as they close', async () => {
    const server = new Server();
    new HealthImplementation({ '': 'SERVING' }).addToServer(server);
    const lines: Record<string, unknown>[] = [];
    const port = await listen(server, '127.0.0.1', 0, undefined, { maxConnections: 3, log: lineLog(lines) });
    cleanups.push(() => shutdown(server, 100));
    const held = [silentSocket(port), silentSocket(port), silentSocket(port)];
    cleanups.push(() => {
      for (const { socket } of held) socket.destroy();
    });
    await Promise.all(held.map(({ socket }) => new Promise((resolve) => socket.once('connect', resolve))));
    const extra = [silentSocket(port), silentSocket(port)];
    await Promise.all(extra.map(({ closed }) => closed));
    await expect(checkHealth(`127.0.0.1:${port}`)).rejects.toThrow(/UNAVAILABLE|DEADLINE_EXCEEDED/);
    expect(lines.filter((line) => line.event === 'connection-limit')).toEqual([
      expect.objectContaining({
        level: 40,
        maxConnections: 3,
        msg: 'connection limit reached: new connections to the gRPC port are closed',
      }),
    ]);
    expect(await within(held[0]!.closed, 100)).toBe('not yet');
    for (const { socket } of held) socket.destroy();
    await vi.waitFor(async () => expect(await checkHealth(`127.0.0.1:${port}`)).toBe('SERVING'), {
      timeout: 10_000,
      interval: 100,
    });
  });

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
    '%s takes at most --max-connections, and closes a connection that makes no call for maxConnectionIdleMs',
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
      const second = silentSocket(port);
      cleanups.push(() => void second.socket.destroy());
      await new Promise((resolve) => second.socket.once('connect', resolve));
      const third = silentSocket(port);
      expect(await within(third.closed, 5_000)).toBeUndefined();
      expect(lines.filter((line) => line.event === 'connection-limit')).toHaveLength(1);
      expect(await within(idleClosed, 5_000)).toBeUndefined();
    },
  );
});
