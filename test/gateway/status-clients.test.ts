import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/config.js';
import { machineAddresses, parseStatusClients, StatusClients } from '../../src/gateway/status-clients.js';

describe('parseStatusClients', () => {
  it('takes local, any, and addresses and networks', () => {
    expect(parseStatusClients('local', 'S')).toEqual([]);
    expect(parseStatusClients('', 'S')).toEqual([]);
    expect(parseStatusClients('*', 'S')).toBe('any');
    expect(parseStatusClients(' ANY ', 'S')).toBe('any');
    expect(parseStatusClients('local, 10.0.0.5,10.1.0.0/16, fd00::/8', 'S')).toEqual([
      '10.0.0.5',
      '10.1.0.0/16',
      'fd00::/8',
    ]);
  });

  it('refuses what is no address or network, and * beside anything', () => {
    for (const value of [
      'prometheus.internal',
      '10.0.0.0/33',
      '10.0.0.0/8/1',
      '10.0.0.0/',
      '::1/129',
      'fe80::1%eth0',
      'fe80::%eth0/64',
      '*,10.0.0.1',
    ]) {
      expect(() => parseStatusClients(value, 'GATEWAY_STATUS_CLIENTS'), value).toThrow(ConfigError);
    }
    expect(() => parseStatusClients('shop.internal', 'GATEWAY_STATUS_CLIENTS')).toThrow(
      /^GATEWAY_STATUS_CLIENTS: expected local, \* \(any client\), or IP addresses and networks/,
    );
  });
});

describe('StatusClients', () => {
  const own = () => ['10.9.9.9', 'fe80::1%eth0', '::ffff:10.8.8.8'];

  it("answers loopback and this machine's own addresses, and no other client by default", () => {
    const clients = new StatusClients([], own);
    for (const address of [
      '127.0.0.1',
      '127.0.0.2',
      '::1',
      '::ffff:127.0.0.1',
      '10.9.9.9',
      '::ffff:10.9.9.9',
      'fe80::1%eth0',
      '10.8.8.8',
    ]) {
      expect(clients.allows(address), address).toBe(true);
    }
    // A link-local address is the machine's on its own link only: on another, another host's.
    for (const address of [
      '10.9.9.8',
      '192.0.2.1',
      'fe80::2%eth0',
      'fe80::1%eth1',
      '2001:db8::1',
      undefined,
    ]) {
      expect(clients.allows(address), String(address)).toBe(false);
    }
  });

  it('answers the addresses and networks listed besides', () => {
    const clients = new StatusClients(parseStatusClients('192.0.2.7,10.1.0.0/16,2001:db8::/32', 'S'), own);
    for (const address of ['192.0.2.7', '::ffff:192.0.2.7', '10.1.255.3', '2001:db8::5', '127.0.0.1']) {
      expect(clients.allows(address), address).toBe(true);
    }
    for (const address of ['192.0.2.8', '10.2.0.1', '2001:db9::1']) {
      expect(clients.allows(address), address).toBe(false);
    }
  });

  it("names this machine's link-local addresses with their zone, as a client's socket does", () => {
    const info = { netmask: 'ffff:ffff:ffff:ffff::', mac: '02:00:00:00:00:01', internal: false } as const;
    const addresses = machineAddresses({
      eth0: [
        { ...info, address: '10.9.9.9', netmask: '255.255.255.0', family: 'IPv4', cidr: '10.9.9.9/24' },
        { ...info, address: 'fd00::9', family: 'IPv6', cidr: 'fd00::9/64', scopeid: 0 },
        { ...info, address: 'fe80::9', family: 'IPv6', cidr: 'fe80::9/64', scopeid: 2 },
      ],
    });
    expect(addresses).toEqual(['10.9.9.9', 'fd00::9', 'fe80::9%eth0', 'fe80::9%2']);
    const clients = new StatusClients([], () => addresses);
    expect(clients.allows('fe80::9%eth0')).toBe(true);
    expect(clients.allows('fe80::9%eth1')).toBe(false);
  });

  it('answers any client with any', () => {
    expect(new StatusClients('any', () => []).allows('203.0.113.9')).toBe(true);
  });
});
