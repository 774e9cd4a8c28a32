import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as connectHttp2 } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultGrpcMaxConnections } from '../../src/common/max-connections.js';
import { createDistributorServer, type DistributorServer } from '../../src/distributor/distributor-server.js';
import { type ComponentProcess, spawnComponent } from '../e2e/support/processes.js';

// A service run under a low open-file limit (a container's, or systemd's LimitNOFILE), flooded with
// silent sockets on its gRPC port and its admin port at once: its default --max-connections must
// leave it descriptors, so that a client that comes still gets in (a silent socket is closed for
// it). Before, the gRPC port alone had three quarters of the limit, and its waiting room and the
// admin port's 32 came on top: every descriptor went, a new client was accepted and closed at once
// by libuv, and the service could open nothing (no database connection, no file) until the flood
// stopped.

const OPEN_FILES = 256;

/** Keeps `count` silent sockets open to `port`, opening another for each one closed, until stopped. */
function flood(port: number, count: number): { stop(): void } {
  let stopped = false;
  const live = new Set<Socket>();
  const open = (): void => {
    if (stopped) return;
    const socket = connect(port, '127.0.0.1');
    live.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => {
      live.delete(socket);
      if (!stopped) setTimeout(open, 20);
    });
  };
  for (let i = 0; i < count; i++) open();
  return {
    stop() {
      stopped = true;
      for (const socket of live) socket.destroy();
    },
  };
}

/** Whether a new HTTP/2 connection to `port` is served (the server's SETTINGS arrive) within 3 s. */
async function served(port: number): Promise<boolean> {
  const session = connectHttp2(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  try {
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 3_000);
      session.once('remoteSettings', () => {
        clearTimeout(timer);
        resolve(true);
      });
      session.once('close', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
  } finally {
    session.destroy();
  }
}

describe('a service under a low open-file limit', () => {
  let distributor: DistributorServer;
  let distributorPort: number;
  let dataDir: string;
  let goods: ComponentProcess | undefined;

  beforeAll(async () => {
    distributor = createDistributorServer();
    distributorPort = await distributor.listen('127.0.0.1', 0);
    dataDir = await mkdtemp(join(tmpdir(), 'shop-open-files-'));
  });
  afterAll(async () => {
    if (goods && goods.child.exitCode === null) {
      goods.child.kill('SIGKILL');
      await goods.exited();
    }
    await distributor.stop(100);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps, by default, the descriptors its rooms and admin port may hold within ¾ of the limit', () => {
    for (const files of [128, 256, 1024, 65_536]) {
      for (const addresses of [1, 2]) {
        const room = defaultGrpcMaxConnections(addresses, files);
        const waiting = Math.min(64, Math.max(4, Math.ceil(room / 10)));
        expect(addresses * (room + waiting + 1) + 32).toBeLessThanOrEqual((files * 3) / 4);
        expect(room).toBeGreaterThan(files / 3 / addresses);
      }
    }
  });

  it('still serves a new client while silent sockets flood its gRPC and admin ports', async () => {
    goods = spawnComponent(
      'src/services/goods/main.ts',
      ['--port', '0', '--metrics-port', '0', '--distributor', `127.0.0.1:${distributorPort}`],
      { MYSQL_URL: '', DATA_DIR: dataDir },
      { prefix: ['prlimit', `--nofile=${OPEN_FILES}:${OPEN_FILES}`] },
    );
    const output = (): string => goods!.lines.join('\n');
    const node = await vi.waitFor(
      () => {
        const found = distributor.registry.snapshot().nodes.find((candidate) => candidate.name === 'goods');
        expect(found, output()).toBeDefined();
        return found!;
      },
      { timeout: 20_000, interval: 50 },
    );
    const metricsLine = await goods.waitForLine(/metrics on http:\/\/[^:]+:\d+\/metrics/, 5_000);
    const metricsPort = Number(/metrics on http:\/\/[^:]+:(\d+)\/metrics/.exec(metricsLine)![1]);
    expect(await served(node.port)).toBe(true);
    const pid = goods.child.pid!;
    const floods = [flood(node.port, 400), flood(metricsPort, 60)];
    try {
      // The floods fill what they may: the gRPC room, its waiting room and the admin port.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const results: boolean[] = [];
      let mostFiles = 0;
      for (let i = 0; i < 5; i++) {
        mostFiles = Math.max(mostFiles, readdirSync(`/proc/${pid}/fd`).length);
        results.push(await served(node.port));
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(mostFiles, output()).toBeLessThan(OPEN_FILES - 8);
      expect(results).toEqual([true, true, true, true, true]);
    } finally {
      for (const each of floods) each.stop();
    }
    expect(goods.child.exitCode).toBeNull();
    expect(output()).not.toContain('EMFILE');
  }, 60_000);
});
