import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort, spawnComponent } from '../e2e/support/processes.js';
import { makeTestPki } from '../helpers/certs.js';
import { http, httpJson, httpsGet, oneConnection, raw, rawBody } from '../helpers/http.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { type FakeGoods, startFakeGoods } from './support/fake-shop.js';

const ROW = { id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' };

/** Opens a TCP connection and resolves once it is connected; `closed` says when the server closed it. */
function open(port: number): Promise<{ socket: Socket; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    const socket = connect(port, '127.0.0.1', () => resolve({ socket, closed: () => closed }));
    socket.on('error', reject);
    socket.on('close', () => {
      closed = true;
    });
  });
}

describe('gateway connection limit', () => {
  const shared = new Closer();
  const perTest = new Closer();
  let distributor: string;
  let goods: FakeGoods;
  /** While set, every call to goods waits for it. */
  let hold: Promise<void> | undefined;
  let release: () => void = () => {};

  beforeAll(async () => {
    distributor = (await startDistributor(shared)).address;
    goods = await startFakeGoods(shared, distributor, { onCall: () => hold }, [ROW]);
  });
  afterEach(async () => {
    release();
    hold = undefined;
    await perTest.closeAll();
  });
  afterAll(() => shared.closeAll());

  /** Sockets opened one after the other (so the gateway sees them in order), destroyed after the test. */
  async function openIdle(port: number, count: number) {
    const sockets: Awaited<ReturnType<typeof open>>[] = [];
    for (let index = 0; index < count; index++) sockets.push(await open(port));
    perTest.add(sockets, (all) => {
      for (const { socket } of all) socket.destroy();
    });
    return sockets;
  }

  it('cap 1: the one connection is served, not kept for refusals', async () => {
    const { gateway, port } = await startGateway(perTest, distributor, { maxConnections: 1 });
    await waitForRoute(gateway, 'GET /goods', 1);
    expect((await http(port, 'GET', '/healthz')).status).toBe(200);
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
  });

  it('cap 50, 60 idle sockets: the longest idle are closed to make room and a real request is served', async () => {
    // 50 with 5 kept for refusals: 45 connections are served at once.
    const { gateway, port } = await startGateway(perTest, distributor, { maxConnections: 50 });
    await waitForRoute(gateway, 'GET /goods', 1);
    const keptAlive = oneConnection();
    perTest.add(keptAlive, (agent) => agent.destroy());
    expect((await http(port, 'GET', '/goods', { agent: keptAlive })).status).toBe(200);

    const sockets = await openIdle(port, 60);
    const result = await httpJson(port, 'GET', '/goods');
    expect(result.status).toBe(200);
    // The keep-alive connection idle the longest went first, then the silent sockets in the order
    // they came: 61 + 1 connections for 45 places.
    await vi.waitFor(() => expect(sockets.filter(({ closed }) => closed()).length).toBe(16));
    expect(sockets.slice(0, 16).every(({ closed }) => closed())).toBe(true);
    expect(sockets.slice(16).some(({ closed }) => closed())).toBe(false);
    // The keep-alive agent's socket was closed: its next request opens a new connection.
    expect((await http(port, 'GET', '/goods', { agent: keptAlive })).status).toBe(200);
  });

  it('with every connection busy, a new one is answered 503 with Retry-After and closed', async () => {
    const { gateway, port } = await startGateway(perTest, distributor, { maxConnections: 20 });
    await waitForRoute(gateway, 'GET /goods', 1);
    hold = new Promise((resolve) => {
      release = resolve;
    });
    const calls = goods.calls.ListGoods ?? 0;
    // 20 with 2 kept for refusals: 18 requests in flight fill every place.
    const busy = Array.from({ length: 18 }, () => httpJson(port, 'GET', '/goods'));
    await vi.waitFor(() => expect(goods.calls.ListGoods).toBe(calls + 18));

    const refused = await raw(port, 'GET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(refused).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(refused).toMatch(/\r\nRetry-After: 1\r\n/i);
    expect(refused).toMatch(/\r\nConnection: close\r\n/i);
    expect(rawBody(refused)).toBe(
      '{"key":null,"errorcode":1,"errormessage":"The gateway has too many connections open"}',
    );
    expect(goods.calls.ListGoods).toBe(calls + 18);
    // Its own pages too: a refused connection is closed, not kept open by a client that polls them.
    const refusedPage = await raw(port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(refusedPage).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(refusedPage).toMatch(/\r\nConnection: close\r\n/i);

    release();
    hold = undefined;
    expect((await Promise.all(busy)).map((answer) => answer.status)).toEqual(Array(18).fill(200));
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
  });

  it('over HTTPS, a socket that never finishes its TLS handshake is closed after the headers timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gateway-handshake-'));
    try {
      const pki = makeTestPki(dir, { names: ['gateway'] });
      const { certFile, keyFile } = pki.files('gateway');
      const { port } = await startGateway(perTest, distributor, {
        https: { certFile, keyFile },
        headersTimeoutMs: 300,
      });
      const silent = await open(port);
      const openedAt = performance.now();
      await vi.waitFor(() => expect(silent.closed()).toBe(true), { timeout: 5_000, interval: 20 });
      // At once: no answer can reach a client whose handshake never finished (not after a linger).
      expect(performance.now() - openedAt).toBeLessThan(1_500);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('over HTTPS, silent sockets are closed to make room for a client, as over plain HTTP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gateway-https-limit-'));
    try {
      const pki = makeTestPki(dir, { names: ['gateway'] });
      const { certFile, keyFile } = pki.files('gateway');
      // 9 served connections, and 1 kept for refusals.
      const { gateway, port } = await startGateway(perTest, distributor, {
        maxConnections: 10,
        https: { certFile, keyFile },
      });
      await waitForRoute(gateway, 'GET /goods', 1);
      // Before their handshake they were not counted: they filled the server's whole limit, and
      // the client past them was closed at accept (curl: SSL_ERROR_SYSCALL).
      const sockets = await openIdle(port, 10);
      const result = await httpsGet(`https://localhost:${port}/goods`, pki.caFile);
      expect(result.status).toBe(200);
      // The longest waiting went first.
      expect(sockets[0]?.closed()).toBe(true);
      expect(sockets.slice(-5).some(({ closed }) => closed())).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a gateway process with 200 file descriptors keeps serving under 300 idle sockets', async () => {
    const port = await freePort();
    const gateway = spawnComponent(
      'src/gateway/main.ts',
      ['--host', '127.0.0.1', '--port', String(port), '--distributor', distributor],
      {},
      { prefix: ['prlimit', '--nofile=200:200', '--'] },
    );
    perTest.add(gateway, (child) => {
      child.child.kill('SIGKILL');
    });
    await vi.waitFor(async () => expect((await httpJson(port, 'GET', '/goods')).status).toBe(200), {
      timeout: 20_000,
      interval: 100,
    });
    const sockets = await openIdle(port, 300);
    // Without a limit the process runs out of descriptors and resets new clients (ECONNRESET).
    for (let count = 0; count < 5; count++) {
      expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
    }
    expect(sockets.filter(({ closed }) => closed()).length).toBeGreaterThan(100);
    expect(gateway.child.exitCode).toBeNull();
  });
});
