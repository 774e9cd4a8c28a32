import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { START_LOOKUP_TIMEOUT_MS } from '../../src/common/host-lookup.js';
import { removeHostComponents } from './support/host-components.js';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './support/netns.js';
import { type ComponentProcess, spawnComponent } from './support/processes.js';

// A service started while its DNS server is down: the server's host drops every packet from the
// service's host, so the system's resolver waits out its timeout (5 s, twice) on each lookup.
const HOSTS = { goods: '10.216.73.2', dns: '10.216.73.3' } as const;
const DISTRIBUTOR = 'distributor.shop.test:9000';
const TOKEN = 'dns-down-start-test-token-0123456789';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`the DNS-down start test must run under CI=true (as root), but ${unavailable}`);
}
if (unavailable) process.stderr.write(`\n[test] the DNS-down start test will skip: ${unavailable}.\n`);

describe.runIf(!unavailable)(
  unavailable
    ? `a service started while DNS does not answer (skipped: ${unavailable})`
    : 'a service started while DNS does not answer (network namespaces)',
  () => {
    let dataDir: string | undefined;
    let network: TestNetwork | undefined;
    const processes: ComponentProcess[] = [];

    beforeAll(() => {
      dataDir = mkdtempSync(join(tmpdir(), 'shop-dns-down-'));
      network = createTestNetwork(HOSTS);
      network.setHostNames('goods', {});
      network.setNameServer('goods', HOSTS.dns);
      network.dropPackets('dns', 'goods');
    });

    afterAll(() => removeHostComponents(processes, dataDir, network), 30_000);

    it('with --distributor a name, registers without waiting out the resolver', async () => {
      const goods = spawnComponent(
        'src/services/goods/main.ts',
        ['--metrics-port', 'off', '--distributor', DISTRIBUTOR],
        { SHOP_REGISTRY_TOKEN: TOKEN, DATA_DIR: dataDir!, MYSQL_URL: '' },
        { prefix: network!.prefix('goods') },
      );
      processes.push(goods);
      await goods.waitForLine(/listening on/, 30_000);
      const listeningAt = performance.now();
      // Whether the distributor is on this machine is looked up at start: it waited out the
      // resolver's 10 s before registering began (and before a SIGTERM meanwhile was acted on).
      await goods.waitForLine(/registering with/, 20_000);
      expect(performance.now() - listeningAt).toBeLessThan(START_LOOKUP_TIMEOUT_MS + 2_000);
    }, 60_000);
  },
);
