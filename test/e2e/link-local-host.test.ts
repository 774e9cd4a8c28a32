import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeHostComponents } from './support/host-components.js';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './support/netns.js';
import {
  type ComponentProcess,
  descendantPids,
  isRunning,
  launcherEnv,
  spawnComponent,
} from './support/processes.js';

// `npm start` with the gateway on a link-local address, which it binds on the interface its zone id
// names (GATEWAY_HOST=fe80::1%eth0): the gateway said it listens at http://[fe80::1%eth0]:<port>,
// and the launcher, reading that with WHATWG URL (which takes no zone id) to ask the gateway whether
// the shop was ready, threw and exited. A host of its own (a network namespace) holds the address.
const HOSTS = { shop: 'fe80::1' } as const;
const ZONED_HOST = `${HOSTS.shop}%eth0`;
const READY =
  /^\[launcher\] the shop is ready: http:\/\/\[fe80::1%25eth0\]:(\d+) \(goods, members, purchases registered; \d+\.\d s\)$/;

/** GET <argv[2]> from the shop host at its link-local address, port argv[1]; prints the status. */
const GET = `
require('node:http').get({ host: '${ZONED_HOST}', port: Number(process.argv[1]), path: process.argv[2], timeout: 5000 }, (response) => {
  response.resume();
  response.on('end', () => process.stdout.write(String(response.statusCode)));
}).on('error', (error) => { process.stderr.write(String(error)); process.exitCode = 1; });
`;

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`the link-local host test must run under CI=true (as root), but ${unavailable}`);
}
if (unavailable) process.stderr.write(`\n[test] the link-local host test will skip: ${unavailable}.\n`);

describe.runIf(!unavailable)('the shop on a link-local address with a zone id (network namespace)', () => {
  let dataDir: string | undefined;
  let network: TestNetwork | undefined;
  let launcher: ComponentProcess | undefined;
  const others: ComponentProcess[] = [];

  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'shop-link-local-'));
    network = createTestNetwork(HOSTS);
    // Its own namespace: the distributor's port is free there whatever runs beside the test.
    launcher = spawnComponent(
      'src/launcher/main.ts',
      [],
      { ...launcherEnv({ distributorPort: 9000, gatewayPort: 0, dataDir }), GATEWAY_HOST: ZONED_HOST },
      { prefix: network.prefix('shop'), stdinOpen: true },
    );
  });

  afterAll(async () => {
    // Its components first: killed with it, they would stop only once they saw their stdin end.
    if (launcher) {
      for (const pid of descendantPids(launcher.child.pid!)) {
        if (isRunning(pid)) process.kill(pid, 'SIGKILL');
      }
    }
    await removeHostComponents([...(launcher ? [launcher] : []), ...others], dataDir, network);
  }, 30_000);

  it('is ready at the gateway’s address, zone id included, where GET /goods then answers 200', async () => {
    const line = await launcher!.waitForLine(READY, 60_000);
    const port = READY.exec(line)![1]!;
    expect(launcher!.lines.join('\n')).toMatch(
      new RegExp(`^\\[gateway *\\] .*listening on http://\\[fe80::1%25eth0\\]:${port},`, 'm'),
    );
    const run = await network!.run('shop', process.execPath, ['-e', GET, port, '/goods'], 10_000);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('200');
    // The launcher runs on: it neither exited nor warned.
    expect(isRunning(launcher!.child.pid!)).toBe(true);
    expect(launcher!.lines.filter((each) => /^\[launcher\] .*not ready/.test(each))).toEqual([]);
  }, 90_000);

  // A metrics port on such an address said it serves at http://[fe80::1%eth0]:<port>/metrics, no
  // URL (RFC 6874 writes the zone id %25eth0, as curl takes it).
  it('a metrics port there says where it serves, zone id written as in a URL, and answers a scrape', async () => {
    const goods = spawnComponent(
      'src/services/goods/main.ts',
      // Nobody to register with: the metrics port serves all the same.
      ['--host', ZONED_HOST, '--port', '0', '--metrics-port', '0', '--distributor', '127.0.0.1:9'],
      { DATA_DIR: join(dataDir!, 'goods'), MYSQL_URL: '' },
      { prefix: network!.prefix('shop') },
    );
    others.push(goods);
    const line = await goods.waitForLine(/metrics on /, 30_000);
    const port = /"msg":"metrics on http:\/\/\[fe80::1%25eth0\]:(\d+)\/metrics"/.exec(line)?.[1];
    expect(port, line).toBeDefined();
    const run = await network!.run('shop', process.execPath, ['-e', GET, port!, '/metrics'], 10_000);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('200');
  }, 60_000);
});
