import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { removeHostComponents } from './support/host-components.js';
import { httpFromHost } from './support/host-http.js';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './support/netns.js';
import { type ComponentProcess, spawnComponent } from './support/processes.js';
import {
  ipv6Layout,
  type ReadmeStart,
  readmeIpv6Address,
  readmeMultiHostLayout,
} from './support/readme-multi-host.js';

// The README's layout across machines on IPv6, by its own rules for it, each host a network
// namespace with the README's address (10.0.0.N written fd00::N) and no IPv4 address but loopback:
// its `npm run certs` line, its start lines (TLS_DIR, `--host ::`, `--distributor [fd00::1]:9000`),
// its curl and grpcurl lines from a client host; and the mistake it warns of, a service on
// `--host 0.0.0.0` listed at an IPv6 address.
const readmeLayout = readmeMultiHostLayout();
const layout = ipv6Layout(readmeLayout);

/** Where each component of the certs line is reached: `--host goods=fd00::2`. */
const ADDRESSES = new Map(
  layout.certsArgs.filter((word) => word.includes('=')).map((word) => word.split('=') as [string, string]),
);
/** A host per address of the layout, a client, and the README's second goods host (10.0.0.4). */
const SECOND_GOODS = readmeIpv6Address('10.0.0.4');
const HOSTS: Record<string, string> = {
  ...Object.fromEntries([...new Set(ADDRESSES.values())].map((address) => [hostOf(address), address])),
  [hostOf(SECOND_GOODS)]: SECOND_GOODS,
  client: 'fd00::99',
};
function hostOf(address: string): string {
  return `h${address.split('::')[1]}`;
}

/** The entry under src/ that `npm run <component>` runs from dist/ (scripts/component.sh). */
const scripts = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts;
function entryOf(component: string): string {
  const match = /component\.sh (\S+)\.js/.exec(scripts[component] ?? '');
  if (!match) throw new Error(`npm run ${component} runs no component: ${scripts[component]}`);
  return `src/${match[1]}.ts`;
}

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`the IPv6 multi-host test must run under CI=true (as root), but ${unavailable}`);
}
if (unavailable) process.stderr.write(`\n[test] the IPv6 multi-host test will skip: ${unavailable}.\n`);

describe.runIf(!unavailable)("the README's layout across machines, on IPv6 (network namespaces)", () => {
  let dir: string | undefined;
  let network: TestNetwork | undefined;
  const processes: ComponentProcess[] = [];
  const components = new Map<string, ComponentProcess>();

  /** A README start line, run on the host its certificate names, in a folder of that host's. */
  const start = ({ component, env, args }: ReadmeStart, address = ADDRESSES.get(component)!) => {
    const tlsDir = env.TLS_DIR === './certs' ? join(dir!, 'certs') : env.TLS_DIR;
    const started = spawnComponent(
      entryOf(component),
      [...args],
      { ...env, TLS_DIR: tlsDir, DATA_DIR: join(dir!, hostOf(address), 'data'), MYSQL_URL: '' },
      { prefix: network!.prefix(hostOf(address)) },
    );
    processes.push(started);
    return started;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shop-multi-host-ipv6-'));
    network = createTestNetwork(HOSTS);
    execFileSync(process.execPath, ['scripts/certs.mjs', '--out', join(dir, 'certs'), ...layout.certsArgs], {
      stdio: 'pipe',
    });
    // Any order, as the README says: all at once.
    for (const line of layout.starts) components.set(line.component, start(line));
    await Promise.all(
      [...components]
        .filter(([name]) => name !== 'distributor')
        .map(([, component]) => component.waitForLine(/registered with the distributor/)),
    );
  }, 60_000);

  afterAll(() => removeHostComponents(processes, dir, network), 30_000);

  it('follows what the README says of IPv6', () => {
    const prose = readmeLayout.section.replace(/\s+/g, ' ');
    expect(prose).toContain('the addresses written bare for `npm run certs` (`--host distributor=fd00::1`)');
    expect(prose).toContain('in brackets with a port (`--distributor [fd00::1]:9000`');
    expect(prose).toContain(
      "with `--host ::` where the lines below say `--host 0.0.0.0`, the gateway's included",
    );
    expect(layout.certsArgs).toContain('distributor=fd00::1');
    expect(layout.starts.find((line) => line.component === 'goods')?.args).toEqual(
      expect.arrayContaining(['--host', '::', '--distributor', '[fd00::1]:9000']),
    );
    expect(layout.starts.find((line) => line.component === 'gateway')?.args).toEqual(
      expect.arrayContaining(['--host', '::']),
    );
  });

  it('lists every service at its IPv6 address', async () => {
    const distributor = components.get('distributor')!;
    for (const [name, port] of [
      ['goods', 9010],
      ['members', 9020],
      ['purchases', 9030],
      ['gateway', 8000],
    ] as const) {
      // A node's id holds its address as the project writes one: an IPv6 host in brackets.
      const joined = await distributor.waitForLine(new RegExp(`"event":"join","node":"${name}@`), 10_000);
      expect(JSON.parse(joined)).toMatchObject({ node: `${name}@[${ADDRESSES.get(name)}]:${port}` });
    }
  });

  it("answers a POST /goods, then the README's curl line, from a client host", async () => {
    const [readmeUrl] = layout.curl;
    expect(readmeUrl).toBe(`http://[${ADDRESSES.get('gateway')}]:8000/goods`);
    // Ready once the gateway routes GET /goods to goods: the empty store answers "no data".
    await vi.waitFor(
      async () => expect((await httpFromHost(network!, 'client', 'GET', readmeUrl!)).status).toBe(200),
      { timeout: 20_000, interval: 250 },
    );
    const created = await httpFromHost(network!, 'client', 'POST', readmeUrl!, {
      name: 'test Goods',
      category: 'tests',
      price: 1000,
      description: 'test',
    });
    expect(JSON.parse(created.body)).toMatchObject({ errorcode: 0, errormessage: 'success' });
    const listed = await httpFromHost(network!, 'client', 'GET', readmeUrl!);
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.body)).toMatchObject({
      errorcode: 0,
      results: [{ id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' }],
    });
  }, 40_000);

  it("answers the README's grpcurl lines, at bracketed IPv6 addresses, from a client host", async () => {
    expect(layout.grpcurl.length).toBeGreaterThanOrEqual(2);
    const commands = layout.grpcurl.map((line) => line.replaceAll('certs/', `${join(dir!, 'certs')}/`));
    const run = await network!.run(
      'client',
      process.execPath,
      ['--import', 'tsx', 'test/e2e/support/grpcurl-probe.ts', ...commands],
      20_000,
    );
    expect(run.code, run.stderr).toBe(0);
    const outcomes = JSON.parse(run.stdout) as Array<{ status: string; output: unknown }>;
    for (const [index, outcome] of outcomes.entries()) {
      expect(outcome.status, `${commands[index]}\n${JSON.stringify(outcome.output)}`).toBe('OK');
    }
    const outputOf = (method: string): unknown =>
      outcomes[commands.findIndex((command) => command.endsWith(` ${method}`))]?.output;
    const listGoods = outputOf('shop.v1.GoodsService/ListGoods') as { results: Array<{ name: string }> };
    const list = outputOf('shop.v1.DistributorService/List') as {
      snapshot: { nodes: Array<{ name: string; host: string; port: number }> };
    };
    expect(listGoods.results.map((goods) => goods.name)).toEqual(['test Goods']);
    expect(list.snapshot.nodes.map(({ name, host, port }) => ({ name, host, port }))).toEqual(
      expect.arrayContaining(
        (['goods', 'members', 'purchases', 'gateway'] as const).map((name) => ({
          name,
          host: ADDRESSES.get(name),
          port: { goods: 9010, members: 9020, purchases: 9030, gateway: 8000 }[name],
        })),
      ),
    );
  }, 30_000);

  it('warns of a service on --host 0.0.0.0 listed at an IPv6 address, which its gateway passes over, then answers 503', async () => {
    // The README's goods line on a second goods host, with the IPv4 lines' --host 0.0.0.0 left in,
    // and --advertise-host in brackets, which it takes too.
    const goods = layout.starts.find((line) => line.component === 'goods')!;
    const args = goods.args.map((word, index) => {
      const flag = goods.args[index - 1];
      return flag === '--host' ? '0.0.0.0' : flag === '--advertise-host' ? `[${SECOND_GOODS}]` : word;
    });
    const second = start({ ...goods, args }, SECOND_GOODS);
    const warning = JSON.parse(await second.waitForLine(/"event":"unreachable-address"/, 20_000));
    expect(warning.msg).toMatch(/^listening on 0\.0\.0\.0, which takes no IPv6 connections/);
    const distributor = components.get('distributor')!;
    await distributor.waitForLine(new RegExp(`"node":"goods@\\[${SECOND_GOODS}\\]:9010"`), 10_000);

    const url = layout.curl[0]!;
    const gateway = components.get('gateway')!;
    // The gateway dials it as soon as it is listed, and meanwhile sends GET /goods to the instance
    // it reaches.
    for (let request = 0; request < 4; request += 1) {
      expect((await httpFromHost(network!, 'client', 'GET', url)).status).toBe(200);
    }
    const refused = await gateway.waitForLine(/"event":"upstream-connect-timeout"/, 20_000);
    expect(JSON.parse(refused)).toMatchObject({ upstream: `goods@[${SECOND_GOODS}]:9010` });
    // With the reachable instance gone, the route's only instance is the one nobody reaches.
    const first = components.get('goods')!;
    first.child.kill('SIGKILL');
    await first.exited();
    await vi.waitFor(
      async () => {
        const answer = await httpFromHost(network!, 'client', 'GET', url);
        expect(answer.status).toBe(503);
        expect(JSON.parse(answer.body).errormessage).toBe(
          'No instance of GET /goods can be reached from the gateway',
        );
      },
      { timeout: 10_000, interval: 250 },
    );
  }, 40_000);
});
