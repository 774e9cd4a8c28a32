import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { hostComponentStarter, removeHostComponents } from './support/host-components.js';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './support/netns.js';
import type { ComponentProcess } from './support/processes.js';

// The distributor's host drops every packet from goods (a host that is down, a firewall that drops)
// while goods starts, then can be reached again. Dropped, not refused: goods' TCP connect waits on
// its SYN, which the kernel sends again ever more slowly (here after 1, 2, 3, 4, 5, 7, 11, 19, 35
// and 67 s; on kernels without tcp_syn_linear_timeouts after 1, 3, 7, 15, 31 and 63 s). grpc-js has
// no connect timeout, so without a new attempt of its own goods would register only at the next
// retransmission after the host is back: half a minute later here.
const HOSTS = { distributor: '10.213.59.2', goods: '10.213.59.3' } as const;
const DISTRIBUTOR_ADDRESS = `${HOSTS.distributor}:9000`;
/** From goods' first attempt, past its retransmission at 35 s (or 31 s): the next is at 67 (or 63). */
const UNREACHABLE_MS = 37_000;
/** The connect timeout (10 s) replaces a hung attempt; a new one gets through within its first SYNs. */
const REGISTERED_WITHIN_MS = 9_000;
/** Goods' line once registered (its warnings say "not registered with the distributor"). */
const REGISTERED = /"msg":"registered with the distributor"/;

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`the unreachable-distributor test must run under CI=true (as root), but ${unavailable}`);
}
if (unavailable)
  process.stderr.write(`\n[test] the unreachable-distributor test will skip: ${unavailable}.\n`);

describe.runIf(!unavailable)(
  'a distributor host that drops packets, then is back (network namespaces)',
  () => {
    let dataDir: string | undefined;
    let network: TestNetwork | undefined;
    let pki: TestPki;
    const processes: ComponentProcess[] = [];

    const start = hostComponentStarter({
      network: () => network!,
      pki: () => pki,
      dataDir: () => dataDir!,
      processes,
    });

    beforeAll(() => {
      dataDir = mkdtempSync(join(tmpdir(), 'shop-unreachable-'));
      network = createTestNetwork(HOSTS);
      pki = makeTestPki(dataDir, { names: Object.keys(HOSTS), hosts: Object.values(HOSTS) });
    });

    afterAll(() => removeHostComponents(processes, dataDir, network), 30_000);

    it('registers within seconds of the host being reachable again, not at the next SYN retransmission', async () => {
      const distributor = start('distributor', 'src/distributor/main.ts', [
        '--host',
        HOSTS.distributor,
        '--port',
        '9000',
      ]);
      await distributor.waitForLine(/listening on/);
      const restore = network!.dropPackets('distributor', 'goods');
      const goods = start('goods', 'src/services/goods/main.ts', [
        '--host',
        HOSTS.goods,
        '--port',
        '9010',
        '--advertise-host',
        HOSTS.goods,
        '--distributor',
        DISTRIBUTOR_ADDRESS,
      ]);
      await goods.waitForLine(/"event":"registering"/, 30_000);
      await new Promise((resolve) => setTimeout(resolve, UNREACHABLE_MS));
      expect(goods.lines.some((line) => REGISTERED.test(line))).toBe(false);
      restore();
      const backAt = Date.now();
      await goods.waitForLine(REGISTERED, REGISTERED_WITHIN_MS);
      const waitedMs = Date.now() - backAt;
      expect(waitedMs).toBeLessThan(REGISTERED_WITHIN_MS);
      await expect(distributor.waitForLine(/node goods@\S+ joined/, 5_000)).resolves.toContain(
        `node goods@${HOSTS.goods}:9010 joined`,
      );
    }, 90_000);
  },
);
