import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { hostComponentStarter, removeHostComponents } from './support/host-components.js';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './support/netns.js';
import type { ComponentProcess } from './support/processes.js';

// The distributor reached by a DNS name, as across machines with DNS: two hosts that can run it, a
// goods host and a gateway host, each with its own view of the names (a hosts file of its own, as
// a DNS server's answer). The name is moved from one distributor host to the other.
const HOSTS = {
  first: '10.216.71.2',
  second: '10.216.71.3',
  goods: '10.216.71.4',
  gateway: '10.216.71.5',
} as const;
const DISTRIBUTOR = 'distributor.shop.test';
const GOODS = 'goods.shop.test';
/** A name for the host's own loopback, as a machine's own name is in its /etc/hosts. */
const LOOPBACK_NAME = 'self.shop.test';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`the distributor host name test must run under CI=true (as root), but ${unavailable}`);
}
if (unavailable) process.stderr.write(`\n[test] the distributor host name test will skip: ${unavailable}.\n`);

describe.runIf(!unavailable)(
  unavailable
    ? `a distributor reached by a host name (skipped: ${unavailable})`
    : 'a distributor reached by a host name that moves to another host (network namespaces, mutual TLS)',
  () => {
    let dataDir: string | undefined;
    let network: TestNetwork | undefined;
    let pki: TestPki;
    const processes: ComponentProcess[] = [];

    /** Points the names at `distributorHost`'s address on every host. */
    const pointNames = (distributorHost: 'first' | 'second'): void => {
      for (const host of Object.keys(HOSTS)) {
        network!.setHostNames(host, {
          [DISTRIBUTOR]: [HOSTS[distributorHost]],
          [GOODS]: [HOSTS.goods],
          [LOOPBACK_NAME]: ['127.0.0.1'],
        });
      }
    };

    const start = hostComponentStarter({
      network: () => network!,
      pki: () => pki,
      dataDir: () => dataDir!,
      processes,
    });
    const startDistributor = (host: 'first' | 'second') =>
      start(host, 'src/distributor/main.ts', ['--host', HOSTS[host], '--metrics-port', 'off'], {
        identity: 'distributor',
      });

    beforeAll(() => {
      dataDir = mkdtempSync(join(tmpdir(), 'shop-distributor-name-'));
      network = createTestNetwork(HOSTS);
      pki = makeTestPki(dataDir, { names: ['distributor', 'goods', 'gateway'], hosts: [DISTRIBUTOR, GOODS] });
      pointNames('first');
    });

    afterAll(async () => {
      await removeHostComponents(processes, dataDir, network);
    }, 30_000);

    it('is followed to its new address within a few seconds, inside the gateways\u2019 restart grace', async () => {
      const first = startDistributor('first');
      await first.waitForLine(/listening on/);
      start('goods', 'src/services/goods/main.ts', [
        '--host',
        '0.0.0.0',
        '--advertise-host',
        GOODS,
        '--metrics-port',
        'off',
        '--distributor',
        `${DISTRIBUTOR}:9000`,
      ]);
      const gateway = start('gateway', 'src/gateway/main.ts', [
        '--host',
        HOSTS.gateway,
        '--distributor',
        `${DISTRIBUTOR}:9000`,
      ]);
      await Promise.all([
        first.waitForLine(new RegExp(`node goods@${GOODS}:9010 joined`), 60_000),
        first.waitForLine(/node gateway@\S+ joined/, 60_000),
      ]);

      // As a move is done: the new host up, the name pointed at it, the old one stopped. grpc-js
      // resolved the name when the components started, moments ago, so without a shorter interval
      // it would not resolve it again for 30 s.
      const second = startDistributor('second');
      await second.waitForLine(/listening on/);
      pointNames('second');
      const movedAt = performance.now();
      first.child.kill('SIGTERM');
      await Promise.all([
        second.waitForLine(new RegExp(`node goods@${GOODS}:9010 joined`), 20_000),
        second.waitForLine(/node gateway@\S+ joined/, 20_000),
      ]);
      const tookMs = performance.now() - movedAt;
      // The gateway routes from its last list for 7 s (--restart-grace-ms); both were back after
      // 8 to 13 s before, about 1 s now.
      expect(tookMs).toBeLessThan(5_000);
      expect(gateway.lines.join('\n')).not.toMatch(/"level":50/);
    }, 120_000);

    it('named by a name of this machine’s loopback, is on this machine: no unreachable-address warning', async () => {
      // On the goods host, whose own distributor listens on loopback; services listen there by default.
      const local = start('goods', 'src/distributor/main.ts', ['--port', '9100', '--metrics-port', 'off'], {
        identity: 'distributor',
      });
      await local.waitForLine(/listening on/);
      const goods = start(
        'goods',
        'src/services/goods/main.ts',
        ['--port', '9110', '--metrics-port', 'off', '--distributor', `${LOOPBACK_NAME}:9100`],
        { dataDir: join(dataDir!, 'local') },
      );
      await local.waitForLine(/node goods@127\.0\.0\.1:9110 joined/, 60_000);
      expect(goods.lines.join('\n')).not.toContain('unreachable-address');
    }, 90_000);
  },
);
