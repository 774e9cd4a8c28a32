import { describe, expect, it, vi } from 'vitest';
import { hostSetting } from '../../src/common/common-settings.js';
import { loadSettings } from '../../src/common/settings.js';

// A machine whose interfaces are not named eth0, as most are not (enp3s0, wlan0, ens5).
vi.mock('node:os', async (importOriginal) => ({
  ...(await importOriginal<typeof import('node:os')>()),
  networkInterfaces: () => ({
    lo: [{ address: '::1', family: 'IPv6', internal: true }],
    enp3s0: [
      { address: '192.168.1.20', family: 'IPv4', internal: false },
      { address: 'fe80::5054:ff:fe12:3456', family: 'IPv6', internal: false },
    ],
  }),
}));

// On Linux every interface is listed in /sys/class/net, with an address or not (wg0: none yet).
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    readdirSync: ((path: string, ...rest: unknown[]) =>
      path === '/sys/class/net'
        ? ['enp3s0', 'lo', 'wg0']
        : (fs.readdirSync as (...args: unknown[]) => unknown)(path, ...rest)) as typeof fs.readdirSync,
  };
});

describe('a link-local host to listen on without a zone id', () => {
  const host = { host: hostSetting('X_HOST', '127.0.0.1') };

  it('is refused naming the zone id of the interface that holds it, however the address is written', () => {
    for (const value of ['fe80::5054:ff:fe12:3456', 'FE80:0:0:0:5054:FF:FE12:3456']) {
      expect(() => loadSettings(host, [], { X_HOST: value })).toThrow(
        `X_HOST: a link-local address (fe80::/10) is bound on one interface, named by a zone id (${value}%enp3s0), got "${value}"`,
      );
    }
  });

  it('is refused saying that no interface holds it when none does, rather than naming one', () => {
    expect(() => loadSettings(host, [], { X_HOST: 'fe80::1' })).toThrow(
      `X_HOST: a link-local address (fe80::/10) is bound on one interface, named by a zone id (fe80::1%<interface>: none of this machine's holds it), got "fe80::1"`,
    );
  });
});

describe('a link-local host to listen on with a zone id naming no interface', () => {
  const host = { host: hostSetting('X_HOST', '127.0.0.1') };

  it('is refused naming the zone id, rather than failing to listen with a bare EINVAL', () => {
    expect(() => loadSettings(host, ['--host', 'fe80::1%nosuch0'], {})).toThrow(
      `--host: the zone id "nosuch0" names no interface: this machine has none of that name (interfaces here: enp3s0, lo, wg0), got "fe80::1%nosuch0"`,
    );
    // A number is no name: the system reads the zone by name (if_nametoindex).
    expect(() => loadSettings(host, [], { X_HOST: 'fe80::1%2' })).toThrow(
      /the zone id "2" names no interface/,
    );
  });

  it('names the interface that holds the address when one does', () => {
    expect(() => loadSettings(host, [], { X_HOST: 'fe80::5054:ff:fe12:3456%eth0' })).toThrow(
      `X_HOST: the zone id "eth0" names no interface: this machine has none of that name (fe80::5054:ff:fe12:3456%enp3s0 is held by enp3s0), got "fe80::5054:ff:fe12:3456%eth0"`,
    );
  });

  it('takes one naming an interface of this machine, one without an address yet too', () => {
    expect(loadSettings(host, [], { X_HOST: 'fe80::5054:ff:fe12:3456%enp3s0' }).host).toBe(
      'fe80::5054:ff:fe12:3456%enp3s0',
    );
    // Its listen fails with EADDRNOTAVAIL until the address is there: a reason that may pass.
    expect(loadSettings(host, [], { X_HOST: 'fe80::1%wg0' }).host).toBe('fe80::1%wg0');
  });
});
