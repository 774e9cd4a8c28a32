import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { removeHostComponents } from './support/host-components.js';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './support/netns.js';
import { type ComponentProcess, spawnComponent } from './support/processes.js';

// A service host with two addresses, listening on its second: found probing IPv6 hosts, where a
// service on `--host fd12:212::2` called the distributor from fd12:212::12 (the source the system
// picked) and was listed there, where nothing listened. The same on IPv4: the first address of an
// interface is the source of its connections, and the service listens on the second.
const HOSTS = { registry: '10.213.61.2', shop: '10.213.61.3' } as const;
const SECOND_ADDRESS = '10.213.61.13';
// The same with the address named: `--host` a name that resolves to the second address (a hosts
// file of the shop host's own, as a DNS server's answer) was listed at the first, 10.213.61.3.
const SECOND_NAME = 'goods.shop.test';
const NAMED_PORT = 9011;
// A name for both of the shop host's addresses, its first first (as the system sorts them here
// too), whose port another goods holds there: grpc-js binds the second alone, listed there.
const TAKEN_NAME = 'both.shop.test';
const TAKEN_PORT = 9012;
// A name for both of the shop host's addresses and another machine's, with a metrics port: the gRPC
// port listened on both, the admin port on the first alone, and a scrape of the second failed.
const METRICS_NAME = 'metrics.shop.test';
const METRICS_PORT = 9114;
/** A machine's own name as a Debian /etc/hosts gives it, on loopback. */
const LOOPBACK_NAME = 'self.shop.test';
/** An address of the test network that no host holds. */
const OTHER_MACHINES_ADDRESS = '10.213.61.1';
const DISTRIBUTOR = `${HOSTS.registry}:9000`;
const TOKEN = 'listen-address-test-token-0123456789';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`the listen-address test must run under CI=true (as root), but ${unavailable}`);
}
if (unavailable) process.stderr.write(`\n[test] the listen-address test will skip: ${unavailable}.\n`);

/** GET /goods from the registry host; prints the status. */
const GET_GOODS = `
require('node:http').get('http://${HOSTS.registry}:8000/goods', { timeout: 5000 }, (response) => {
  response.resume();
  response.on('end', () => process.stdout.write(String(response.statusCode)));
}).on('error', (error) => { process.stderr.write(String(error)); process.exitCode = 1; });
`;

/** GET http://<argv[1]>/metrics from the registry host; prints the status. */
const SCRAPE = `
require('node:http').get('http://' + process.argv[1] + '/metrics', { timeout: 5000 }, (response) => {
  response.resume();
  response.on('end', () => process.stdout.write(String(response.statusCode)));
}).on('error', (error) => { process.stderr.write(String(error)); process.exitCode = 1; });
`;

describe.runIf(!unavailable)(
  'a service listening on one of its host’s two addresses (network namespaces)',
  () => {
    let dataDir: string | undefined;
    let network: TestNetwork | undefined;
    const processes: ComponentProcess[] = [];
    let distributor: ComponentProcess;
    let named: ComponentProcess;
    let taken: ComponentProcess;
    let onLoopback: ComponentProcess;
    let metered: ComponentProcess;

    const start = (
      host: keyof typeof HOSTS,
      entry: string,
      args: string[],
      folder = dataDir!,
    ): ComponentProcess => {
      const component = spawnComponent(
        entry,
        args,
        { SHOP_REGISTRY_TOKEN: TOKEN, DATA_DIR: folder, MYSQL_URL: '' },
        { prefix: network!.prefix(host) },
      );
      processes.push(component);
      return component;
    };

    beforeAll(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'shop-listen-address-'));
      network = createTestNetwork(HOSTS);
      execFileSync('ip', [
        '-n',
        network.namespace('shop'),
        'addr',
        'add',
        `${SECOND_ADDRESS}/24`,
        'dev',
        'eth0',
      ]);
      // Another machine's address too, which the system sorts first (the longer prefix shared with
      // the host's own 10.213.61.3): the service cannot bind it, so it must not be listed there.
      network.setHostNames('shop', {
        [SECOND_NAME]: [OTHER_MACHINES_ADDRESS, SECOND_ADDRESS],
        [TAKEN_NAME]: [HOSTS.shop, SECOND_ADDRESS],
        [LOOPBACK_NAME]: ['127.0.1.1'],
        [METRICS_NAME]: [HOSTS.shop, SECOND_ADDRESS, OTHER_MACHINES_ADDRESS],
      });
      distributor = start('registry', 'src/distributor/main.ts', [
        '--host',
        HOSTS.registry,
        '--metrics-port',
        'off',
      ]);
      await distributor.waitForLine(/listening on/);
      start('registry', 'src/gateway/main.ts', ['--host', HOSTS.registry, '--distributor', DISTRIBUTOR]);
      const goods = start('shop', 'src/services/goods/main.ts', [
        '--host',
        SECOND_ADDRESS,
        '--metrics-port',
        'off',
        '--distributor',
        DISTRIBUTOR,
      ]);
      /** A goods on the shop host at `host`, registering with the distributor, its store its own. */
      const shopGoods = (host: string, port: number, folder: string): ComponentProcess =>
        start(
          'shop',
          'src/services/goods/main.ts',
          ['--host', host, '--port', String(port), '--metrics-port', 'off', '--distributor', DISTRIBUTOR],
          join(dataDir!, folder),
        );
      named = shopGoods(SECOND_NAME, NAMED_PORT, 'named');
      await goods.waitForLine(/registered with the distributor/);
      await named.waitForLine(/registered with the distributor/);
      const holder = shopGoods(HOSTS.shop, TAKEN_PORT, 'holder');
      await holder.waitForLine(/registered with the distributor/);
      taken = shopGoods(TAKEN_NAME, TAKEN_PORT, 'taken');
      await taken.waitForLine(/registered with the distributor/);
      onLoopback = shopGoods(LOOPBACK_NAME, 9013, 'loopback');
      await onLoopback.waitForLine(/registering with/);
      metered = start(
        'shop',
        'src/services/goods/main.ts',
        [
          '--host',
          METRICS_NAME,
          '--port',
          '9014',
          '--metrics-port',
          String(METRICS_PORT),
          '--distributor',
          DISTRIBUTOR,
        ],
        join(dataDir!, 'metered'),
      );
      await metered.waitForLine(/"event":"metrics"/);
    }, 90_000);

    afterAll(() => removeHostComponents(processes, dataDir, network), 30_000);

    it('is listed at the address it listens on, not the one it called the distributor from, and the gateway reaches it', async () => {
      await expect(distributor.waitForLine(/node goods@\S+:9010 joined/, 10_000)).resolves.toContain(
        `node goods@${SECOND_ADDRESS}:9010 joined`,
      );
      // The empty store answers "no data" with 200; listed at the other address, it was 503.
      await vi.waitFor(
        async () => {
          const run = await network!.run('registry', process.execPath, ['-e', GET_GOODS], 10_000);
          expect(run.stdout).toBe('200');
        },
        { timeout: 20_000, interval: 250 },
      );
    }, 40_000);

    it('with --host a name, is listed at the address the name resolves to there', async () => {
      await expect(
        distributor.waitForLine(new RegExp(`node goods@\\S+:${NAMED_PORT} joined`), 10_000),
      ).resolves.toContain(`node goods@${SECOND_ADDRESS}:${NAMED_PORT} joined`);
    });

    it('with --host a name whose first address has its port taken, is listed where it listens', async () => {
      // Listed at the name's first address of this host, it took the other goods' node (the same
      // address and port), and the gateway's requests for it went to that one.
      await vi.waitFor(
        () =>
          expect(distributor.lines.join('\n')).toContain(`node goods@${SECOND_ADDRESS}:${TAKEN_PORT} joined`),
        { timeout: 10_000, interval: 100 },
      );
      expect(taken.lines.join('\n')).toContain(`"unbound":["${HOSTS.shop}"]`);
    });

    it('with --host a name of its loopback alone, warns that the distributor elsewhere lists it where nothing listens', () => {
      // Bound on 127.0.1.1 alone, it was listed at the address it called the distributor from, without a word.
      expect(onLoopback.lines.join('\n')).toContain('"event":"unreachable-address"');
    });

    it('with --host a name, warns of the addresses it resolves to that it could not bind', () => {
      // grpc-js bound the name's one address of this host and told the other's failure only at
      // its INFO verbosity: the service said "listening on goods.shop.test:9011" alone.
      const warning = named.lines.find((line) => line.includes('"event":"unbound-address"'));
      expect(warning).toBeDefined();
      expect(JSON.parse(warning!)).toMatchObject({
        level: 40,
        host: SECOND_NAME,
        bound: [SECOND_ADDRESS],
        unbound: [OTHER_MACHINES_ADDRESS],
      });
    });

    it('with --host a name, serves /metrics on every address the gRPC port listens on, the others warned of once', async () => {
      for (const address of [HOSTS.shop, SECOND_ADDRESS]) {
        const run = await network!.run(
          'registry',
          process.execPath,
          ['-e', SCRAPE, `${address}:${METRICS_PORT}`],
          10_000,
        );
        expect({ address, status: run.stdout, error: run.stderr }).toEqual({
          address,
          status: '200',
          error: '',
        });
      }
      // The metrics port takes the addresses the gRPC port is bound on, not the name looked up
      // again: the address of another machine is told once, by the gRPC port.
      const metrics = metered.lines.find((line) => line.includes('"event":"metrics"'));
      expect(JSON.parse(metrics!)).toMatchObject({
        host: METRICS_NAME,
        port: METRICS_PORT,
        addresses: [HOSTS.shop, SECOND_ADDRESS],
      });
      const warning = metered.lines.find((line) => line.includes('"event":"unbound-address"'));
      expect(JSON.parse(warning!)).toMatchObject({
        level: 40,
        host: METRICS_NAME,
        bound: [HOSTS.shop, SECOND_ADDRESS],
        unbound: [OTHER_MACHINES_ADDRESS],
      });
      expect(metered.lines.filter((line) => line.includes('"event":"metrics-unbound-address"'))).toEqual([]);
    }, 30_000);
  },
);
