import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peerIdentities, serverCredentials } from '../../../src/common/tls.js';
import { createDistributorServer } from '../../../src/distributor/distributor-server.js';
import { createGateway, type Gateway, type GatewayOptions } from '../../../src/gateway/gateway-server.js';
import type { AnyShopService } from '../../../src/services/common/define-service.js';
import { parseMysqlUrl } from '../../../src/services/common/mysql-url.js';
import type { ServiceConfig, StorageConfig } from '../../../src/services/common/service-config.js';
import { type RunningService, startService } from '../../../src/services/common/start-service.js';
import { SHOP_SERVICES, type ShopServiceName } from '../../../src/services/service-list.js';
import type { TestPki } from '../../helpers/certs.js';
import { createTestDatabase } from '../../helpers/mysql.js';

/** Which store the shop runs on in a test. */
export type Backend = { kind: 'sqlite' } | { kind: 'mysql'; serverUrl: string };

export type ServiceName = ShopServiceName;
const SERVICES: readonly AnyShopService[] = SHOP_SERVICES;

/**
 * The whole shop in one test process, every part real: a distributor, the three services on a
 * fresh store, and a gateway, all on 127.0.0.1 with ports the OS picked.
 */
export interface Shop {
  readonly gatewayUrl: string;
  readonly gateway: Gateway;
  readonly distributorAddress: string;
  /** Where the services keep their data (to fill a table behind their backs). */
  readonly storage: StorageConfig;
  readonly services: Map<ServiceName, RunningService[]>;
  /** Starts one more instance of a service on a new port, on the shop's store or on another one. */
  startInstance(name: ServiceName, storage?: StorageConfig): Promise<RunningService>;
  stop(): Promise<void>;
}

/** How the shop's components trust each other: a registration token, and mTLS when a PKI is given. */
export interface ShopTrust {
  /** The registration token; false: none (with a PKI, mTLS alone, as across machines). */
  registryToken?: string | false;
  /** Every component gets its certificate from this PKI (names: distributor, gateway and the services). */
  pki?: Pick<TestPki, 'files'>;
}

/** The token every test shop uses unless told otherwise: the shop runs as `npm start` runs it. */
export const TEST_REGISTRY_TOKEN = 'test-shop-registry-token-0123456789';

export async function startShop(
  backend: Backend,
  gatewayOptions: Partial<GatewayOptions> = {},
  trust: ShopTrust = {},
): Promise<Shop> {
  const { pki } = trust;
  const registryToken =
    trust.registryToken === false ? undefined : (trust.registryToken ?? TEST_REGISTRY_TOKEN);
  const cleanups: Array<() => Promise<void> | void> = [];
  let storage: StorageConfig;
  if (backend.kind === 'mysql') {
    const database = await createTestDatabase(backend.serverUrl);
    cleanups.push(() => database.drop());
    storage = { kind: 'mysql', connection: parseMysqlUrl(database.url, 'test database') };
  } else {
    const dataDir = mkdtempSync(join(tmpdir(), 'shop-e2e-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    storage = { kind: 'sqlite', dataDir };
  }
  const distributor = createDistributorServer({
    ...(registryToken ? { registryToken } : {}),
    ...(pki
      ? {
          credentials: serverCredentials(pki.files('distributor')),
          requireCertificateIdentity: true,
          peerIdentities,
        }
      : {}),
  });
  const distributorPort = await distributor.listen('127.0.0.1', 0);
  const distributorAddress = `127.0.0.1:${distributorPort}`;
  cleanups.unshift(() => distributor.stop(100));

  const config: ServiceConfig = {
    host: '127.0.0.1',
    port: 0,
    distributor: distributorAddress,
    advertiseHost: '127.0.0.1',
    storage,
    logLevel: 'silent',
    registryToken,
  };
  const services = new Map<ServiceName, RunningService[]>();
  const startInstance = async (name: ServiceName, ownStorage?: StorageConfig): Promise<RunningService> => {
    const running = await startService(
      SERVICES.find((service) => service.name === name)!,
      { ...config, storage: ownStorage ?? storage, ...(pki ? { tls: pki.files(name) } : {}) },
      {
        graceMs: 1_000,
        drainNoticeMs: 500,
        registrationBackoff: { initialMs: 20, maxMs: 200 },
      },
    );
    services.set(name, [...(services.get(name) ?? []), running]);
    cleanups.unshift(() => running.stop());
    return running;
  };
  for (const { name } of SHOP_SERVICES) await startInstance(name);

  const gateway = createGateway({
    distributor: distributorAddress,
    registrationBackoff: { initialMs: 20, maxMs: 200 },
    ...(registryToken ? { registryToken } : {}),
    ...(pki ? { tls: pki.files('gateway') } : {}),
    ...gatewayOptions,
  });
  const gatewayPort = await gateway.listen('127.0.0.1', 0);
  cleanups.unshift(() => gateway.stop());
  return {
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    gateway,
    distributorAddress,
    storage,
    services,
    startInstance,
    async stop() {
      for (const cleanup of cleanups) await cleanup();
    },
  };
}

/** True once the gateway routes `METHOD /path` to `count` serving instances. */
export function servingCount(gateway: Gateway, method: string, path: string): number {
  return (
    gateway.routes().find((route) => route.method === method && route.path === path)?.serving.length ?? 0
  );
}
