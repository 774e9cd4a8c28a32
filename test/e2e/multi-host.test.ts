import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { hostComponentStarter } from './support/host-components.js';
import { httpFromHost } from './support/host-http.js';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './support/netns.js';
import type { ComponentProcess } from './support/processes.js';

// Three hosts and a client, each a network namespace with its own address on a bridge that exists
// only inside the test's namespaces. Nothing here talks to this machine's own network.
const HOSTS = {
  distributor: '10.213.57.2',
  goods: '10.213.57.3',
  gateway: '10.213.57.4',
  client: '10.213.57.5',
} as const;
// Fresh namespaces: the default ports are free in them.
const PORTS = { distributor: 9000, goods: 9010, gateway: 8000 } as const;
const DISTRIBUTOR_ADDRESS = `${HOSTS.distributor}:${PORTS.distributor}`;
const GOODS_ADDRESS = `${HOSTS.goods}:${PORTS.goods}`;
const GATEWAY_URL = `http://${HOSTS.gateway}:${PORTS.gateway}`;

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`the multi-host test must run under CI=true (as root), but ${unavailable}`);
}
if (unavailable) process.stderr.write(`\n[test] the multi-host test will skip: ${unavailable}.\n`);

interface GoodsProbeOutcome {
  code: number;
  details: string;
  names: string[];
}

describe.runIf(!unavailable)(
  unavailable
    ? `distributor, goods and gateway on separate hosts (skipped: ${unavailable})`
    : 'distributor, goods and gateway on separate hosts (network namespaces), over mutual TLS',
  () => {
    let dataDir: string | undefined;
    let network: TestNetwork | undefined;
    let pki: TestPki;
    let distributor: ComponentProcess;
    const processes: ComponentProcess[] = [];

    const start = hostComponentStarter({
      network: () => network!,
      pki: () => pki,
      dataDir: () => dataDir!,
      processes,
    });

    /** An HTTP request to the gateway, sent from the client host. */
    const fromClient = (method: string, path: string, body?: unknown) =>
      httpFromHost(network!, 'client', method, `${GATEWAY_URL}${path}`, body);

    /** ListGoods on goods from the client host, with the client's certificate or only the CA. */
    const probeGoods = async (options: {
      clientCertificate: boolean;
      expectedName?: string;
    }): Promise<GoodsProbeOutcome> => {
      const files = pki.files('client');
      const args = ['--import', 'tsx', 'test/e2e/support/goods-probe.ts', '--address', GOODS_ADDRESS];
      args.push('--ca', files.caFile);
      if (options.clientCertificate) args.push('--cert', files.certFile, '--key', files.keyFile);
      if (options.expectedName) args.push('--expected-name', options.expectedName);
      const run = await network!.run('client', process.execPath, args, 20_000);
      if (run.code !== 0) throw new Error(`goods-probe failed (exit ${run.code}): ${run.stderr}`);
      return JSON.parse(run.stdout) as GoodsProbeOutcome;
    };

    beforeAll(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'shop-multi-host-'));
      network = createTestNetwork(HOSTS);
      // Every certificate names every test address; secure naming itself goes by the URI SAN.
      pki = makeTestPki(dataDir, { names: Object.keys(HOSTS), hosts: Object.values(HOSTS) });
      distributor = start('distributor', 'src/distributor/main.ts', [
        '--host',
        HOSTS.distributor,
        '--port',
        String(PORTS.distributor),
      ]);
      await distributor.waitForLine(/listening on/);
      const goods = start('goods', 'src/services/goods/main.ts', [
        '--host',
        HOSTS.goods,
        '--port',
        String(PORTS.goods),
        '--advertise-host',
        HOSTS.goods,
        '--distributor',
        DISTRIBUTOR_ADDRESS,
      ]);
      start('gateway', 'src/gateway/main.ts', [
        '--host',
        HOSTS.gateway,
        '--port',
        String(PORTS.gateway),
        '--distributor',
        DISTRIBUTOR_ADDRESS,
      ]);
      await goods.waitForLine(/registered with the distributor/);
    }, 90_000);

    afterAll(async () => {
      try {
        await Promise.all(
          processes.map(async (component) => {
            component.child.kill('SIGTERM');
            let timer: NodeJS.Timeout | undefined;
            const stopped = await Promise.race([
              component.exited().then(() => true),
              new Promise<false>((resolve) => {
                timer = setTimeout(() => resolve(false), 10_000);
              }),
            ]);
            clearTimeout(timer);
            if (!stopped) {
              component.child.kill('SIGKILL');
              await component.exited();
            }
          }),
        );
      } finally {
        if (dataDir) rmSync(dataDir, { recursive: true, force: true });
        network?.remove();
      }
    }, 30_000);

    it('lists goods under the address it advertised, on its own host', async () => {
      await expect(distributor.waitForLine(/node goods@\S+ joined/, 10_000)).resolves.toContain(
        `node goods@${GOODS_ADDRESS} joined`,
      );
    });

    it("answers the book's POST /goods, then GET /goods, asked from a fourth host", async () => {
      // Ready once the gateway routes GET /goods to goods: the empty store answers "no data".
      await vi.waitFor(
        async () => {
          const answer = await fromClient('GET', '/goods');
          expect(answer.status).toBe(200);
        },
        { timeout: 30_000, interval: 250 },
      );
      const created = await fromClient('POST', '/goods', {
        name: 'test Goods',
        category: 'tests',
        price: 1000,
        description: 'test',
      });
      expect(created.status).toBe(200);
      expect(JSON.parse(created.body)).toMatchObject({ errorcode: 0, errormessage: 'success' });
      const listed = await fromClient('GET', '/goods');
      expect(listed.status).toBe(200);
      expect(JSON.parse(listed.body)).toEqual({
        key: expect.any(Number),
        errorcode: 0,
        errormessage: 'success',
        results: [{ id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' }],
      });
    }, 60_000);

    it('serves gRPC to a client certificate from the CA, by identity or by host name, and refuses a client without one', async () => {
      const [byIdentity, byHostName, withoutCertificate] = await Promise.all([
        probeGoods({ clientCertificate: true, expectedName: 'goods' }),
        probeGoods({ clientCertificate: true }),
        probeGoods({ clientCertificate: false, expectedName: 'goods' }),
      ]);
      expect(byIdentity).toEqual({ code: status.OK, details: '', names: ['test Goods'] });
      expect(byHostName).toEqual({ code: status.OK, details: '', names: ['test Goods'] });
      // Refused in the handshake: the server asked for a client certificate (TLS alert 116).
      expect(withoutCertificate.code, withoutCertificate.details).toBe(status.UNAVAILABLE);
      expect(withoutCertificate.details).toMatch(/certificate required/);
      expect(withoutCertificate.names).toEqual([]);
    }, 60_000);
  },
);
