import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials as grpcCredentials, Metadata, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registrationDescriptorSet } from '../../src/common/descriptors.js';
import { channelCredentials, secureNamingChannelOptions, serverCredentials } from '../../src/common/tls.js';
import { GoodsServiceClient } from '../../src/gen/services.js';
import { registerDistributorResolver } from '../../src/resolver/distributor-resolver.js';
import { junkNode } from '../distributor/support/junk-nodes.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { send } from '../helpers/http.js';
import { goodsDescriptorSetWithoutRoutes, goodsNode } from '../helpers/nodes.js';
import {
  attemptList,
  attemptRegistration,
  attemptWatch,
  type RogueServer,
  startRogueGoods,
  trafficDuring,
} from '../helpers/rogue.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { type ComponentProcess, freePorts, rssMiB, spawnComponent } from './support/processes.js';

const TOKEN = 'trust-test-token-0123456789abcdef';

/** A distributor, one goods and a gateway as OS processes, with `env` added to each. */
async function startProcesses(
  dataDir: string,
  env: (name: string) => NodeJS.ProcessEnv,
): Promise<{
  distributor: ComponentProcess;
  goods: ComponentProcess;
  gateway: ComponentProcess;
  distributorAddress: string;
  gatewayUrl: string;
  stop(): Promise<void>;
}> {
  const [distributorPort, gatewayPort] = await freePorts(2);
  const distributorAddress = `127.0.0.1:${distributorPort}`;
  const common = { DISTRIBUTOR_ADDRESS: distributorAddress, DATA_DIR: dataDir, MYSQL_URL: '' };
  const distributor = spawnComponent('src/distributor/main.ts', ['--port', String(distributorPort)], {
    ...common,
    ...env('distributor'),
  });
  await distributor.waitForLine(/listening on/);
  const goods = spawnComponent('src/services/goods/main.ts', ['--port', '0'], { ...common, ...env('goods') });
  const gateway = spawnComponent('src/gateway/main.ts', ['--port', String(gatewayPort)], {
    ...common,
    ...env('gateway'),
  });
  const processes = [gateway, goods, distributor];
  return {
    distributor,
    goods,
    gateway,
    distributorAddress,
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    async stop() {
      for (const process of processes) {
        process.child.kill('SIGTERM');
        await process.exited();
      }
    },
  };
}

async function waitForGoods(gatewayUrl: string): Promise<void> {
  await vi.waitFor(async () => expect((await send(`${gatewayUrl}/goods`)).body).toContain('"errorcode":0'), {
    timeout: 30_000,
    interval: 200,
  });
}

async function addGoods(gatewayUrl: string): Promise<void> {
  await vi.waitFor(
    async () => {
      const answer = await send(`${gatewayUrl}/goods`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'real', category: 'c', price: 1, description: 'd' }),
      });
      expect(answer.body).toContain('"errorcode":0');
    },
    { timeout: 30_000, interval: 200 },
  );
  await waitForGoods(gatewayUrl);
}

function expectAtLeast99Percent(result: { ok: number; total: number; failures: string[] }): void {
  expect(result.ok / result.total, result.failures.slice(0, 5).join('\n')).toBeGreaterThanOrEqual(0.99);
}

describe('trust with a registration token (the default of npm start), against real processes', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'shop-trust-token-'));
  let shop: Awaited<ReturnType<typeof startProcesses>>;
  let rogue: RogueServer;
  beforeAll(async () => {
    shop = await startProcesses(dataDir, () => ({ SHOP_REGISTRY_TOKEN: TOKEN }));
    await addGoods(shop.gatewayUrl);
    rogue = await startRogueGoods();
  }, 90_000);
  afterAll(async () => {
    await rogue?.stop();
    await shop?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses a rogue registration without the token or with a wrong one, and the rogue gets no request', async () => {
    const rogueNode = goodsNode({ host: '127.0.0.1', port: rogue.port });
    const result = await trafficDuring(`${shop.gatewayUrl}/goods`, async () => {
      for (const token of [undefined, 'a-wrong-token-0123456789abcdef']) {
        const outcome = await attemptRegistration(shop.distributorAddress, rogueNode, token ? { token } : {});
        expect(outcome).toMatchObject({ listed: false, code: status.UNAUTHENTICATED });
      }
    });
    expectAtLeast99Percent(result);
    expect(rogue.calls).toBe(0);
    // Logged once per peer, with its address, however often it tries.
    const refusals = shop.distributor.lines.filter(
      (line) => line.includes('UNAUTHENTICATED') || /unauthenticated/i.test(line),
    );
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    expect(refusals.length).toBeLessThanOrEqual(2);
  });

  it('refuses a token holder on another host the identity of a live node (ALREADY_EXISTS)', async () => {
    const listing = await attemptList(shop.distributorAddress, { token: TOKEN });
    const goods = listing.snapshot.nodes.find((node) => node.name === 'goods')!;
    const [host, port] = shop.distributorAddress.split(':') as [string, string];
    // The same token, from 127.0.0.2: another host as the distributor sees it.
    const fromElsewhere = await TcpProxy.start({ host, port: Number(port), localAddress: '127.0.0.2' });
    try {
      const result = await trafficDuring(`${shop.gatewayUrl}/goods`, async () => {
        const outcome = await attemptRegistration(
          `127.0.0.1:${fromElsewhere.port}`,
          goodsNode({ host: goods.host, port: goods.port, routes: [], descriptorSet: Buffer.alloc(0) }),
          { token: TOKEN },
        );
        expect(outcome).toMatchObject({ listed: false, code: status.ALREADY_EXISTS });
      });
      expectAtLeast99Percent(result);
      expect((await attemptList(shop.distributorAddress, { token: TOKEN })).snapshot.nodes).toContainEqual(
        goods,
      );
    } finally {
      await fromElsewhere.close();
    }
  });

  it('keeps the topology and the descriptor sets from callers without the token', async () => {
    expect((await attemptList(shop.distributorAddress)).code).toBe(status.UNAUTHENTICATED);
    expect(await attemptWatch(shop.distributorAddress)).toEqual({ code: status.UNAUTHENTICATED });
    const listed = await attemptList(shop.distributorAddress, { token: TOKEN });
    expect(listed.code).toBe(status.OK);
    expect(listed.snapshot.nodes.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses an oversized descriptor set with a clear status', async () => {
    const outcome = await attemptRegistration(
      shop.distributorAddress,
      junkNode('oversized', rogue.port, 300 * 1024),
      { token: TOKEN },
    );
    expect(outcome.listed).toBe(false);
    if (!outcome.listed) {
      expect([status.INVALID_ARGUMENT, status.RESOURCE_EXHAUSTED]).toContain(outcome.code);
      expect(outcome.details).toMatch(/descriptor/);
    }
  });

  it.each([
    ['without credentials', undefined],
    ['with the token', TOKEN],
  ])(
    'survives the 20 × 256 KiB junk flood %s: real nodes stay listed and real traffic succeeds',
    async (_label, token) => {
      const distributorPid = shop.distributor.child.pid!;
      const rssBefore = rssMiB(distributorPid);
      const listed: Array<() => void> = [];
      let refused = 0;
      const result = await trafficDuring(`${shop.gatewayUrl}/goods`, async () => {
        const outcomes = await Promise.all(
          Array.from({ length: 20 }, (_, index) =>
            attemptRegistration(
              shop.distributorAddress,
              // Twenty distinct sets (of slightly different sizes): one shared set would cost one copy.
              junkNode(`junk${index}`, rogue.port, 256 * 1024 - index * 16),
              token ? { token } : {},
            ),
          ),
        );
        for (const outcome of outcomes) {
          if (outcome.listed) listed.push(outcome.close);
          else refused++;
        }
      });
      try {
        expectAtLeast99Percent(result);
        if (!token) expect(listed).toHaveLength(0);
        else expect(refused).toBeGreaterThan(0);
        const after = await attemptList(shop.distributorAddress, { token: TOKEN });
        expect(after.code).toBe(status.OK);
        expect((await send(`${shop.gatewayUrl}/goods`)).body).toContain('"name":"real"');
        // Every open stream is sent the list (up to 4 MiB) on each of the joins: measured here,
        // about 120 MiB before and 270 MiB at the peak (README, "Trust"); bounded, not leaking.
        const rssAfter = rssMiB(distributorPid);
        process.stdout.write(
          `distributor RSS under the flood ${token ? 'with' : 'without'} the token: ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB\n`,
        );
        expect(rssAfter).toBeLessThan(320);
      } finally {
        for (const close of listed) close();
      }
    },
  );
});

describe('trust with mutual TLS, against real processes', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'shop-trust-mtls-'));
  let pki: TestPki;
  let shop: Awaited<ReturnType<typeof startProcesses>>;
  // The TLS server name that goes with secure naming, as the components send it (not an IP address).
  const distributorName = () => secureNamingChannelOptions(pki.files('members'), 'distributor');
  const tlsEnv = (name: string): NodeJS.ProcessEnv => {
    const files = pki.files(name);
    return { TLS_CA: files.caFile, TLS_CERT: files.certFile, TLS_KEY: files.keyFile };
  };
  beforeAll(async () => {
    pki = makeTestPki(dataDir, { names: ['distributor', 'gateway', 'goods', 'members'] });
    shop = await startProcesses(dataDir, tlsEnv);
    await addGoods(shop.gatewayUrl);
  }, 90_000);
  afterAll(async () => {
    await shop?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses callers without a certificate from the CA', async () => {
    expect(
      (await attemptList(shop.distributorAddress, { credentials: grpcCredentials.createInsecure() })).code,
    ).toBe(status.UNAVAILABLE);
    const foreign = channelCredentials(pki.foreignFiles('goods'), { expectedName: 'distributor' });
    expect(
      (
        await attemptList(shop.distributorAddress, {
          credentials: foreign,
          channelOptions: distributorName(),
        })
      ).code,
    ).toBe(status.UNAVAILABLE);
    const own = channelCredentials(pki.files('members'), { expectedName: 'distributor' });
    expect(
      (await attemptList(shop.distributorAddress, { credentials: own, channelOptions: distributorName() }))
        .code,
    ).toBe(status.OK);
  });

  it("refuses a registration under another principal's name with PERMISSION_DENIED; the impostor gets no request", async () => {
    const rogue = await startRogueGoods(serverCredentials(pki.files('members')));
    try {
      const result = await trafficDuring(`${shop.gatewayUrl}/goods`, async () => {
        const outcome = await attemptRegistration(
          shop.distributorAddress,
          goodsNode({ host: '127.0.0.1', port: rogue.port }),
          {
            credentials: channelCredentials(pki.files('members'), { expectedName: 'distributor' }),
            channelOptions: distributorName(),
          },
        );
        expect(outcome).toMatchObject({ listed: false, code: status.PERMISSION_DENIED });
      });
      expectAtLeast99Percent(result);
      expect(rogue.calls).toBe(0);
    } finally {
      await rogue.stop();
    }
  });

  it("secure naming: a goods listing that points at a server without goods' certificate gets no traffic", async () => {
    // The listing gets in (a goods certificate registered it), but the server behind it is not goods.
    const rogue = await startRogueGoods(serverCredentials(pki.files('members')));
    const listing = await attemptRegistration(
      shop.distributorAddress,
      goodsNode({ host: '127.0.0.1', port: rogue.port }),
      {
        credentials: channelCredentials(pki.files('goods'), { expectedName: 'distributor' }),
        channelOptions: distributorName(),
      },
    );
    try {
      expect(listing.listed).toBe(true);
      const result = await trafficDuring(`${shop.gatewayUrl}/goods`, async () => {}, { count: 100 });
      expectAtLeast99Percent(result);
      expect(rogue.calls).toBe(0);
    } finally {
      if (listing.listed) listing.close();
      await rogue.stop();
    }
  });
  /**
   * Members' certificate registers members, as it may, with members' own descriptor set, at a server
   * of its own that serves GoodsService as well; a resolver follows the list. Runs `check` with
   * them, then takes them all down.
   */
  async function withMembersServingGoods(
    check: (
      rogue: { calls: number },
      client: (target: string, expectedName?: string) => GoodsServiceClient,
    ) => Promise<void>,
  ): Promise<void> {
    const rogue = await startRogueGoods(serverCredentials(pki.files('members')));
    const listing = await attemptRegistration(
      shop.distributorAddress,
      goodsNode({
        name: 'members',
        host: '127.0.0.1',
        port: rogue.port,
        descriptorSet: registrationDescriptorSet(['shop.v1.MembersService']),
      }),
      {
        credentials: channelCredentials(pki.files('members'), { expectedName: 'distributor' }),
        channelOptions: distributorName(),
      },
    );
    const resolver = registerDistributorResolver({
      distributor: shop.distributorAddress,
      credentials: channelCredentials(pki.files('gateway'), { expectedName: 'distributor' }),
      channelOptions: distributorName(),
    });
    const clients: GoodsServiceClient[] = [];
    // Without expectedName, a client that checks the CA and the host name (every certificate here
    // names localhost); with it, one that checks the component's name, as the gateway does.
    const client = (target: string, expectedName?: string): GoodsServiceClient => {
      const made = new GoodsServiceClient(
        target,
        channelCredentials(pki.files('gateway'), expectedName ? { expectedName } : {}),
        expectedName
          ? secureNamingChannelOptions(pki.files('gateway'), expectedName)
          : { 'grpc.ssl_target_name_override': 'localhost' },
      );
      clients.push(made);
      return made;
    };
    try {
      expect(listing.listed).toBe(true);
      await vi.waitFor(() =>
        expect(resolver.snapshot?.nodes.some((node) => node.name === 'members')).toBe(true),
      );
      await check(rogue, client);
    } finally {
      for (const each of clients) each.close();
      resolver.close();
      if (listing.listed) listing.close();
      await rogue.stop();
    }
  }

  it("a node of another name that defines GoodsService is refused, even without goods' routes; a distributor:///shop.v1.GoodsService client calls goods alone", async () => {
    // Members' certificate, members' name, goods' service without its REST routes: before the
    // shop's contract named who serves each service, it was listed, for distributor:/// clients to
    // pick if it came first.
    const refused = await attemptRegistration(
      shop.distributorAddress,
      goodsNode({
        name: 'members',
        host: '127.0.0.1',
        port: 1,
        descriptorSet: goodsDescriptorSetWithoutRoutes(),
      }),
      {
        credentials: channelCredentials(pki.files('members'), { expectedName: 'distributor' }),
        channelOptions: distributorName(),
      },
    );
    expect(refused).toMatchObject({
      listed: false,
      code: status.PERMISSION_DENIED,
      details: expect.stringContaining('service "shop.v1.GoodsService" is served by "goods"'),
    });
    await withMembersServingGoods(async (rogue, client) => {
      const goods = client('distributor:///shop.v1.GoodsService');
      for (let call = 0; call < 20; call++) {
        await new Promise<void>((resolve, reject) =>
          goods.listGoods({}, new Metadata(), { deadline: Date.now() + 5_000 }, (error) =>
            error ? reject(error) : resolve(),
          ),
        );
      }
      expect(rogue.calls).toBe(0);
    });
  });

  it("a client that names the service it expects (expectedName 'goods') sends no call to a listed server without goods' certificate", async () => {
    // Whatever the list says: here a target that resolves to members' node, serving GoodsService.
    await withMembersServingGoods(async (rogue, client) => {
      const goods = client('distributor:///members', 'goods');
      const failure = await new Promise<unknown>((resolve) =>
        goods.listGoods({}, new Metadata(), { deadline: Date.now() + 5_000 }, (error) => resolve(error)),
      );
      expect(failure).toMatchObject({ code: status.UNAVAILABLE });
      expect(rogue.calls).toBe(0);
    });
  });
});

describe('certificates about to expire, against real processes', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'shop-trust-expiring-'));
  let pki: TestPki;
  let shop: Awaited<ReturnType<typeof startProcesses>>;
  beforeAll(async () => {
    // Three days left of 63: within the week, and the last twentieth of its life, that each
    // component warns of, whatever its role.
    pki = makeTestPki(dataDir, {
      names: ['distributor', 'gateway', 'goods'],
      leafDays: 3,
      leafNotBefore: new Date(Date.now() - 60 * 86_400_000),
    });
    shop = await startProcesses(dataDir, (name) => {
      const files = pki.files(name);
      return { TLS_CA: files.caFile, TLS_CERT: files.certFile, TLS_KEY: files.keyFile };
    });
    await addGoods(shop.gatewayUrl);
  }, 90_000);
  afterAll(async () => {
    await shop?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('each component says once, however many of its channels and servers use the certificate, that it expires', async () => {
    const warnings = (process: ComponentProcess) =>
      process.lines
        .filter((line) => line.includes('"event":"tls-certificate-expiring"'))
        .map((line) => JSON.parse(line) as { level: number; file: string; setting: string; validTo: string });
    const components = { distributor: shop.distributor, goods: shop.goods, gateway: shop.gateway };
    for (const [name, process] of Object.entries(components)) {
      await vi.waitFor(() => expect(warnings(process)).toHaveLength(1), { timeout: 10_000, interval: 100 });
      const [warning] = warnings(process);
      expect(warning).toMatchObject({
        level: 40,
        file: pki.files(name).certFile,
        setting: '--tls-cert (TLS_CERT)',
      });
      const daysLeft = (Date.parse(warning!.validTo) - Date.now()) / 86_400_000;
      expect(daysLeft).toBeGreaterThan(2.9);
      expect(daysLeft).toBeLessThanOrEqual(3);
    }
    // Served from every side of the gateway since (its upstream channel to goods included): still once.
    await waitForGoods(shop.gatewayUrl);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    for (const process of Object.values(components)) expect(warnings(process)).toHaveLength(1);
  });
});
