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
