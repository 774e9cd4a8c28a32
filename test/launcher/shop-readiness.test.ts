import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HttpEndpoint } from '../../src/common/http-endpoint.js';
import type { GatewayStatusView } from '../../src/launcher/gateway-status-probe.js';
import { ShopReadiness } from '../../src/launcher/shop-readiness.js';

// What the launcher makes of the gateway's /status.json, served by a real HTTP server as the
// gateway serves it: a restarted service counts as back only with a registration made after it
// exited, not while the gateway still lists the instance that died.

type Node = GatewayStatusView['nodes'][number];

describe('ShopReadiness', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  });

  async function gatewayServing(status: { current: GatewayStatusView }): Promise<string> {
    const server: Server = createServer((request, response) => {
      expect(request.url).toBe('/status.json');
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify(status.current));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => server.close());
    return `http://0.0.0.0:${(server.address() as AddressInfo).port}`;
  }

  const node = (name: string, registeredAt: string, extra: Partial<Node> = {}): Node => ({
    id: `${name}@127.0.0.1:1`,
    name,
    state: 'serving',
    address: '127.0.0.1:1',
    registeredAt,
    // The gateway holds a connection to it: it serves it (see shop-readiness-reach.test.ts).
    connected: true,
    ...extra,
  });
  const statusOf = (nodes: Node[], registered = true): GatewayStatusView => ({
    registered,
    nodes,
    routes: nodes.map((each) => ({ listed: true, serving: [each.id] })),
  });

  function makeReadiness(
    fetchStatus?: (endpoint: HttpEndpoint, timeoutMs: number) => Promise<GatewayStatusView>,
  ): { readiness: ShopReadiness; lines: string[] } {
    const lines: string[] = [];
    const readiness = new ShopReadiness({
      services: ['goods', 'members'],
      say: (text, level) => lines.push(`${level} ${text}`),
      warnAfterMs: 1_000,
      ...(fetchStatus ? { fetchStatus } : {}),
    });
    cleanups.push(() => readiness.stop());
    return { readiness, lines };
  }

  it('ready once the gateway is registered and routes every service; again only after a registration made since the restart', async () => {
    const early = new Date(Date.now() - 60_000).toISOString();
    const status = { current: statusOf([node('goods', early)], false) };
    const url = await gatewayServing(status);
    const { readiness, lines } = makeReadiness();
    readiness.start();
    readiness.gatewayListening(url);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(lines).toEqual([]);
    status.current = statusOf([node('goods', early), node('members', early)]);
    await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 2_000, interval: 50 });
    const dialled = url.replace('0.0.0.0', '127.0.0.1');
    expect(lines[0]).toMatch(
      new RegExp(`^info the shop is ready: ${dialled} \\(goods, members registered; \\d+\\.\\d s\\)$`),
    );

    // goods died: the gateway still lists it, registered before.
    readiness.restarted('goods');
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(lines).toHaveLength(1);
    status.current = statusOf([node('goods', new Date().toISOString()), node('members', early)]);
    await vi.waitFor(() => expect(lines).toHaveLength(2), { timeout: 2_000, interval: 50 });
    expect(lines[1]).toMatch(/^info the shop is ready again: .* \(goods back; \d+\.\d s after it exited\)$/);

    // The distributor restarted: every service must register again, and kept ones do not count.
    readiness.restarted('distributor');
    status.current = statusOf([
      node('goods', new Date(Date.now() + 5).toISOString(), { kept: true }),
      node('members', early),
    ]);
    await vi.waitFor(() => expect(lines).toHaveLength(3), { timeout: 3_000, interval: 50 });
    expect(lines[2]).toBe(
      'warn the shop is not ready 1 s after distributor exited: goods, members have not registered with the distributor, or the gateway does not route to them yet (see their lines above); the launcher says so once the shop is ready',
    );
    const later = new Date(Date.now() + 5).toISOString();
    status.current = statusOf([node('goods', later), node('members', later)]);
    await vi.waitFor(() => expect(lines).toHaveLength(4), { timeout: 3_000, interval: 50 });
    expect(lines[3]).toMatch(/^info the shop is ready again: .* \(distributor back; /);
  });

  // A service whose database cannot be used (one that does not exist yet, a password refused)
  // registers and stays draining: the warning said it had not registered with the distributor.
  it('says of a service registered but draining that it is not serving, not that it has not registered', async () => {
    const now = new Date().toISOString();
    const status = {
      current: statusOf([node('goods', now, { state: 'draining' }), node('members', now)]),
    };
    const { readiness, lines } = makeReadiness();
    readiness.start();
    readiness.gatewayListening(await gatewayServing(status));
    await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 3_000, interval: 50 });
    expect(lines[0]).toBe(
      'warn the shop is not ready 1 s after the start: goods is registered but not serving (draining, as a service is until its database answers: see its lines above); the launcher says so once the shop is ready',
    );
    status.current = statusOf([node('goods', now), node('members', now)]);
    await vi.waitFor(() => expect(lines).toHaveLength(2), { timeout: 3_000, interval: 50 });
    expect(lines[1]).toMatch(/^info the shop is ready: /);
  });

  // A gateway on `--host fe80::1%eth0` said it listens at http://[fe80::1%25eth0]:8000, which WHATWG
  // URL takes no zone id in: the launcher threw there and exited, the shop still running without it.
  it('asks a gateway on a link-local address with a zone id there, zone id included, and says where it is ready', async () => {
    const asked: HttpEndpoint[] = [];
    const now = new Date().toISOString();
    const { readiness, lines } = makeReadiness(async (endpoint) => {
      asked.push(endpoint);
      return statusOf([node('goods', now), node('members', now)]);
    });
    readiness.start();
    readiness.gatewayListening('http://[fe80::1%25eth0]:8000');
    await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 2_000, interval: 50 });
    expect(asked[0]).toEqual({ protocol: 'http', host: 'fe80::1%eth0', port: 8000 });
    expect(lines[0]).toMatch(
      /^info the shop is ready: http:\/\/\[fe80::1%25eth0\]:8000 \(goods, members registered; \d+\.\d s\)$/,
    );
  });

  it('asks a gateway on every IPv6 interface at ::1', async () => {
    const asked: HttpEndpoint[] = [];
    const { readiness, lines } = makeReadiness(async (endpoint) => {
      asked.push(endpoint);
      const now = new Date().toISOString();
      return statusOf([node('goods', now), node('members', now)]);
    });
    readiness.start();
    readiness.gatewayListening('https://[::]:8443');
    await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 2_000, interval: 50 });
    expect(asked[0]).toEqual({ protocol: 'https', host: '::1', port: 8443 });
    expect(lines[0]).toMatch(/^info the shop is ready: https:\/\/\[::1\]:8443 /);
  });

  // A server on ::ffff:0.0.0.0 takes IPv4 connections alone: asked at ::1 (as one on :: is), the
  // gateway refused the launcher, which warned that the shop was not ready while it was.
  it('asks a gateway on the IPv4 any-address mapped into IPv6 at 127.0.0.1, not ::1', async () => {
    const asked: HttpEndpoint[] = [];
    const { readiness, lines } = makeReadiness(async (endpoint) => {
      asked.push(endpoint);
      const now = new Date().toISOString();
      return statusOf([node('goods', now), node('members', now)]);
    });
    readiness.start();
    readiness.gatewayListening('http://[::ffff:0.0.0.0]:8000');
    await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 2_000, interval: 50 });
    expect(asked[0]).toEqual({ protocol: 'http', host: '127.0.0.1', port: 8000 });
    expect(lines[0]).toMatch(/^info the shop is ready: http:\/\/127\.0\.0\.1:8000 /);
  });

  // Registered and routed at addresses the gateway has no connection to: not ready (a request would
  // fail), and the warning says where; beside a service that has not registered at all.
  it('is not ready while the gateway holds a connection to no instance of a service, and names its addresses', async () => {
    const now = new Date().toISOString();
    const status = {
      current: statusOf([
        node('goods', now, { connected: undefined, unreachableSeconds: 12 }),
        node('goods', now, { id: 'goods@[fd00::2]:9010', address: '[fd00::2]:9010', connected: undefined }),
      ]),
    };
    const { readiness, lines } = makeReadiness(async () => status.current);
    readiness.start();
    readiness.gatewayListening('http://127.0.0.1:8000');
    await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 3_000, interval: 50 });
    expect(lines[0]).toBe(
      'warn the shop is not ready 1 s after the start: members has not registered with the distributor, or the gateway does not route to it yet (see its lines above); goods (at 127.0.0.1:1, [fd00::2]:9010) is registered, but the gateway has not connected to it there yet (no answer to its attempts so far; see its lines above): if that lasts, give it an address the gateway reaches, --host (SERVICE_HOST) or --advertise-host (ADVERTISE_HOST), or open the way from the gateway to that address; the launcher says so once the shop is ready',
    );
    // One of them connected: that is enough.
    status.current = statusOf([
      node('goods', now, { connected: undefined, unreachableSeconds: 14 }),
      node('goods', now, { id: 'goods@[fd00::2]:9010', address: '[fd00::2]:9010' }),
      node('members', now),
    ]);
    await vi.waitFor(() => expect(lines).toHaveLength(2), { timeout: 3_000, interval: 50 });
    expect(lines[1]).toMatch(/^info the shop is ready: /);
  });

  // One service the gateway has failed to connect to for long, another it is still connecting to:
  // each is told as it is. Told together, the one whose attempts had failed for 25 s was said "not
  // connected yet", as if its connection were merely being made.
  it('tells a service whose connection attempts failed apart from one still being connected to', async () => {
    const now = new Date().toISOString();
    const { readiness, lines } = makeReadiness(async () =>
      statusOf([
        node('goods', now, { connected: undefined, unreachableSeconds: 25 }),
        node('members', now, { connected: undefined }),
      ]),
    );
    readiness.start();
    readiness.gatewayListening('http://127.0.0.1:8000');
    await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 3_000, interval: 50 });
    const advice = (pronoun: string, address: string): string =>
      `give ${pronoun} an address the gateway reaches, --host (SERVICE_HOST) or --advertise-host (ADVERTISE_HOST), or open the way from the gateway to ${address}`;
    expect(lines[0]).toBe(
      'warn the shop is not ready 1 s after the start: ' +
        `goods (at 127.0.0.1:1) is registered, but the gateway cannot connect to it there (its attempts failing for 25 s; see its lines above): ${advice('it', 'that address')}; ` +
        `members (at 127.0.0.1:1) is registered, but the gateway has not connected to it there yet (no answer to its attempts so far; see its lines above): if that lasts, ${advice('it', 'that address')}; ` +
        'the launcher says so once the shop is ready',
    );
  });

  // Registered and routed, the gateway's connection to it still being made: on loopback that takes
  // milliseconds, and asked again only 250 ms on, a healthy start was said ready up to that much
  // later than before the launcher waited for connections. Fake timers: no wall time measured.
  it('asks again at once while the gateway is still connecting to a service, a bounded number of times, and at the usual pace once a connection failed', async () => {
    vi.useFakeTimers();
    cleanups.push(() => vi.useRealTimers());
    const now = new Date().toISOString();
    let goods = node('goods', now, { connected: undefined });
    let asks = 0;
    const lines: string[] = [];
    const readiness = new ShopReadiness({
      services: ['goods', 'members'],
      say: (text, level) => lines.push(`${level} ${text}`),
      fetchStatus: async () => {
        asks++;
        return statusOf([goods, node('members', now)]);
      },
    });
    cleanups.push(() => readiness.stop());
    readiness.start();
    readiness.gatewayListening('http://127.0.0.1:8000');
    await vi.advanceTimersByTimeAsync(0);
    expect(asks).toBe(1);
    await vi.advanceTimersByTimeAsync(20);
    expect(asks).toBe(2);
    // 25 quick asks in all, then every 250 ms.
    await vi.advanceTimersByTimeAsync(24 * 20);
    expect(asks).toBe(26);
    await vi.advanceTimersByTimeAsync(240);
    expect(asks).toBe(26);
    await vi.advanceTimersByTimeAsync(10);
    expect(asks).toBe(27);
    expect(lines).toEqual([]);
    goods = node('goods', now);
    await vi.advanceTimersByTimeAsync(250);
    expect(asks).toBe(28);
    expect(lines).toEqual([expect.stringMatching(/^info the shop is ready: /)]);

    // A new wait (a restart) has its quick asks again, but not for a connection that failed.
    goods = node('goods', now, { connected: undefined, unreachableSeconds: 0 });
    readiness.restarted('purchases');
    await vi.advanceTimersByTimeAsync(0);
    expect(asks).toBe(29);
    await vi.advanceTimersByTimeAsync(249);
    expect(asks).toBe(29);
    goods = node('goods', now);
    await vi.advanceTimersByTimeAsync(1);
    expect(asks).toBe(30);
    expect(lines[1]).toMatch(/^info the shop is ready again: .* \(purchases back; /);
  });

  // The quick asks are for a connection about to be made, once nothing else is missing: while a
  // service has not registered (seconds, on a slow machine or MySQL), the usual pace.
  it('asks at the usual pace while a service is missing, even with another still being connected to', async () => {
    vi.useFakeTimers();
    cleanups.push(() => vi.useRealTimers());
    const now = new Date().toISOString();
    let asks = 0;
    const readiness = new ShopReadiness({
      services: ['goods', 'members'],
      say: () => {},
      fetchStatus: async () => {
        asks++;
        return statusOf([node('goods', now, { connected: undefined })]);
      },
    });
    cleanups.push(() => readiness.stop());
    readiness.start();
    readiness.gatewayListening('http://127.0.0.1:8000');
    await vi.advanceTimersByTimeAsync(0);
    expect(asks).toBe(1);
    await vi.advanceTimersByTimeAsync(249);
    expect(asks).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(asks).toBe(2);
    // Stopped: no timer left to ask again.
    readiness.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps waiting, without throwing, when it cannot read where the gateway says it listens, and says so', async () => {
    const { readiness, lines } = makeReadiness(async () => {
      throw new Error('never asked');
    });
    readiness.start();
    expect(() => readiness.gatewayListening('http://[fe80::1%eth0')).not.toThrow();
    await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 3_000, interval: 50 });
    expect(lines[0]).toBe(
      'warn the shop is not ready 1 s after the start: the gateway says it listens at "http://[fe80::1%eth0", which the launcher cannot read as a URL',
    );
  });

  it('warns once that the gateway has not said where it listens, and says nothing after stop()', async () => {
    const { readiness, lines } = makeReadiness();
    readiness.start();
    await vi.waitFor(() => expect(lines).toHaveLength(1), { timeout: 3_000, interval: 50 });
    expect(lines[0]).toBe(
      'warn the shop is not ready 1 s after the start: the gateway has not said that it listens yet (see its lines above)',
    );
    readiness.restarted('goods');
    readiness.stop();
    readiness.restarted('members');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(lines).toHaveLength(1);
  });
});
