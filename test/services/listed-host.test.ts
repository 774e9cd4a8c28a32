import { describe, expect, it } from 'vitest';
import { registeredHostOf } from '../../src/services/common/listed-host.js';
import { captureLog } from '../helpers/log-capture.js';

// A service on a link-local address (SERVICE_HOST=fe80::1%eth0, which it binds on that interface)
// is reached by no gateway: grpc-js takes no zone id, and it is listed at the address it calls the
// distributor from, where nothing listens. It warned of IPv4 connections, or of nothing at all.

describe('registeredHostOf a service listening on a link-local address', () => {
  it.each([
    ['127.0.0.1:9000', ''],
    ['[2001:db8::1]:9000', ''],
    ['[2001:db8::1]:9000', '2001:db8::7'],
  ])(
    'warns that no gateway reaches it (distributor %s, --advertise-host "%s")',
    async (distributor, advertiseHost) => {
      const { log, lines } = captureLog('goods');
      const host = 'fe80::1%eth0';
      await expect(
        registeredHostOf({ host, advertiseHost, distributor, boundAddresses: [host], log }),
      ).resolves.toBe(advertiseHost);
      const warnings = lines.filter((line) => line.event === 'unreachable-address');
      expect(warnings).toEqual([
        expect.objectContaining({
          host,
          distributor,
          msg: expect.stringMatching(
            /^listening on fe80::1%eth0 only, a link-local address, which no gateway reaches: gRPC here dials no zone id.* set --host \(SERVICE_HOST\) to another address of this machine, or :: \(every one\)$/,
          ),
        }),
      ]);
    },
  );

  it('says nothing of a link-local address among others it binds (a name of several)', async () => {
    const { log, lines } = captureLog('goods');
    await registeredHostOf({
      host: 'shop.test',
      advertiseHost: '',
      distributor: '[2001:db8::1]:9000',
      boundAddresses: ['fe80::1%eth0', '2001:db8::2'],
      log,
    });
    expect(lines.filter((line) => line.event === 'unreachable-address')).toEqual([]);
  });
});
