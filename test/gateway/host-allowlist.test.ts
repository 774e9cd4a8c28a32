import dns from 'node:dns';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HostAllowlist, hostLines, namesSeveralHosts } from '../../src/common/host-allowlist.js';
import { createGateway } from '../../src/gateway/gateway-server.js';
import { raw, rawBody } from '../helpers/http.js';
import { captureLog } from '../helpers/log-capture.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { type FakeGoods, startFakeGoods } from './support/fake-shop.js';

describe('HostAllowlist', () => {
  it('answers IP literals, localhost and the names given, by Host with or without a port', () => {
    const allowlist = new HostAllowlist(['shop.example', '.internal.example'], ['Build-Host']);
    for (const host of [
      '127.0.0.1',
      '127.0.0.1:8000',
      '10.0.0.3:8000',
      '[::1]:8000',
      '[fe80::1]',
      'localhost',
      'LOCALHOST:8000',
      'app.localhost:8000',
      'shop.example',
      'Shop.Example.:8000',
      'internal.example',
      'api.internal.example',
      'build-host:8000',
    ]) {
      expect(allowlist.allows(host), host).toBe(true);
    }
    for (const host of [
      'attacker.example',
      'attacker.example:8000',
      'evilinternal.example',
      'shop.example.attacker.example',
      '127.0.0.1.nip.io',
      'localhost.attacker.example',
      '[not-an-ip]:8000',
      // Only a port may follow the brackets (the admin port has no check of its own for a list).
      '[::1]attacker.example',
      '[::1], attacker.example',
      '[::1]:http',
      'shop.example:http',
      '',
    ]) {
      expect(allowlist.allows(host), host).toBe(false);
    }
    // HTTP/1.0 without Host: no browser sends it.
    expect(allowlist.allows(undefined)).toBe(true);
    expect(new HostAllowlist(['*']).allows('anything.example')).toBe(true);
  });
});

describe('namesSeveralHosts', () => {
  const request = (rawHeaders: string[]) => ({
    rawHeaders,
    headers: { host: rawHeaders[rawHeaders.findIndex((name) => name.toLowerCase() === 'host') + 1] },
  });

  it('counts Host lines in any case, and nothing else', () => {
    expect(hostLines(['Host', 'a', 'Accept', '*/*'])).toBe(1);
    expect(hostLines(['host', 'a', 'HOST', 'b', 'Hosts', 'c'])).toBe(2);
    expect(hostLines([])).toBe(0);
  });

  it('tells two Host lines and a list on one line from one host', () => {
    expect(namesSeveralHosts(request(['Host', 'a', 'Accept', '*/*']))).toBe(false);
    expect(namesSeveralHosts(request(['Accept', '*/*']))).toBe(false);
    expect(namesSeveralHosts(request(['host', 'a', 'HOST', 'b']))).toBe(true);
    expect(namesSeveralHosts(request(['Host', 'a, b']))).toBe(true);
  });
});

describe('gateway: a Host it is not known by (DNS rebinding)', () => {
  const closer = new Closer();
  let goods: FakeGoods;
  let port: number;
  let allowingPort: number;
  const captured = captureLog('gateway');

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    goods = await startFakeGoods(closer, distributor, {}, []);
    const started = await startGateway(closer, distributor, { log: captured.log });
    port = started.port;
    const allowing = await startGateway(closer, distributor, { allowedHosts: ['shop.example'] });
    allowingPort = allowing.port;
    await waitForRoute(started.gateway, 'GET /goods', 1);
    await waitForRoute(allowing.gateway, 'GET /goods', 1);
  });
  afterAll(() => closer.closeAll());

  const request = (onPort: number, line: string, host: string) =>
    raw(onPort, `${line} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);

  it('is answered 421 with the envelope, on every path, and no service is called', async () => {
    const before = { ...goods.calls };
    for (const line of [
      'GET /goods',
      'POST /goods',
      'GET /status.json',
      'GET /metrics',
      'GET /openapi.json',
    ]) {
      const answer = await request(port, line, 'attacker.example:8000');
      expect(answer, line).toMatch(/^HTTP\/1\.1 421 /);
      expect(JSON.parse(rawBody(answer)), line).toEqual({
        key: null,
        errorcode: 1,
        errormessage:
          'This gateway does not answer to the host name in Host: add it to --allowed-hosts (GATEWAY_ALLOWED_HOSTS), or call it by IP address or localhost',
      });
    }
    expect(goods.calls).toEqual(before);
    // Logged at warn once in the limiter's interval, naming the first Host and the setting.
    expect(captured.lines.filter((line) => line.event === 'host-not-allowed')).toEqual([
      expect.objectContaining({
        level: 40,
        host: 'attacker.example:8000',
        msg: expect.stringContaining('--allowed-hosts (GATEWAY_ALLOWED_HOSTS)'),
      }),
    ]);
  });

  it('answers by IP address, localhost, and the names --allowed-hosts gives', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
      expect(await request(port, 'GET /goods', host), host).toMatch(/^HTTP\/1\.1 200 /);
    }
    expect(await request(port, 'GET /goods', 'shop.example')).toMatch(/^HTTP\/1\.1 421 /);
    expect(await request(allowingPort, 'GET /goods', 'shop.example:8000')).toMatch(/^HTTP\/1\.1 200 /);
    expect(await request(allowingPort, 'GET /healthz', 'attacker.example')).toMatch(/^HTTP\/1\.1 421 /);
  });
});

describe('gateway: its own --host name', () => {
  const closer = new Closer();
  afterAll(() => closer.closeAll());

  it('is answered, as the URL it announces (the launcher asks that URL whether the shop is ready)', async () => {
    const distributor = (await startDistributor(closer)).address;
    const gateway = closer.add(createGateway({ distributor }), (started) => started.stop());
    // A name of this machine that is neither localhost nor its host name (a DNS name given as
    // GATEWAY_HOST): Node's listen resolves it with dns.lookup.
    const lookup = vi.spyOn(dns, 'lookup').mockImplementationOnce(((_name: string, ...rest: unknown[]) => {
      const callback = rest.at(-1) as (error: null, address: string, family: number) => void;
      callback(null, '127.0.0.1', 4);
    }) as unknown as typeof dns.lookup);
    const port = await gateway.listen('gateway.shop.test', 0).finally(() => lookup.mockRestore());
    const get = (host: string) =>
      raw(port, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    expect(await get(`gateway.shop.test:${port}`)).toMatch(/^HTTP\/1\.1 200 /);
    expect(await get('Gateway.Shop.Test.')).toMatch(/^HTTP\/1\.1 200 /);
    expect(await get(`rebound.test:${port}`)).toMatch(/^HTTP\/1\.1 421 /);
  });
});
