import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { registrationDescriptorSet } from '../../src/common/descriptors.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { createGateway, type Gateway } from '../../src/gateway/gateway-server.js';
import { NodeState } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { purchasesService } from '../../src/services/purchases/purchases-service.js';
import type { PurchasesStore } from '../../src/services/purchases/purchases-store.js';
import { type HttpResult, send } from '../helpers/http.js';
import { createTestDatabase } from '../helpers/mysql.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { servingCount } from './support/shop.js';

/**
 * Issue 8 §2: a write that succeeds but is answered as a failure. Each purchases instance is reached
 * through a TCP proxy that is cut the moment a purchase has been committed, before its answer leaves
 * the service: what a crash, a kill or a network loss at the worst moment does. Everything else is
 * the real thing: distributor, gateway, purchases servers and their store (SQLite file or MariaDB).
 */

/** Cuts an instance's network once, right after the next purchase commits (shared by all instances). */
interface Trap {
  armed: boolean;
  /** How many answers were cut. */
  fired: number;
}

/** The store as the service sees it, except that a committed purchase may cut the instance's network. */
function cutAfterCommit(store: PurchasesStore, trap: Trap, cut: () => void): PurchasesStore {
  const writes = new Set<PropertyKey>(['createPurchase', 'createPurchaseOnce']);
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (!writes.has(property)) return value.bind(target);
      return async (...args: unknown[]) => {
        const result = await value.apply(target, args);
        if (trap.armed) {
          trap.armed = false;
          trap.fired++;
          cut();
        }
        return result;
      };
    },
  });
}

const mysqlUrl = inject('mysqlUrl');
const backends = [
  { name: 'SQLite', enabled: true },
  { name: 'MariaDB', enabled: mysqlUrl !== '' },
] as const;

for (const backend of backends) {
  describe.runIf(backend.enabled)(`a purchase whose answer is lost, on ${backend.name}`, () => {
    const cleanups: Array<() => Promise<void> | void> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /** A fresh store's opener: every instance opened with it shares one database. */
    async function freshStorage(): Promise<() => PurchasesStore> {
      if (backend.name === 'MariaDB') {
        const database = await createTestDatabase(mysqlUrl);
        cleanups.push(() => database.drop());
        return () =>
          purchasesService.stores.mysql({ connection: parseMysqlUrl(database.url, 'test database') });
      }
      const dir = mkdtempSync(join(tmpdir(), 'shop-idempotency-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      return () => purchasesService.stores.sqlite(join(dir, 'purchases.sqlite'));
    }

    /** The shop's purchases side: `instances` purchases servers on one store, each behind its proxy. */
    async function shop(instances: number) {
      const openStore = await freshStorage();
      const distributor = createDistributorServer();
      const distributorAddress = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
      cleanups.push(() => distributor.stop(100));
      const trap: Trap = { armed: false, fired: 0 };
      const stores: PurchasesStore[] = [];
      for (let index = 0; index < instances; index++) {
        const store = openStore();
        stores.push(store);
        cleanups.push(() => store.close());
        let proxy: TcpProxy | undefined;
        // Every connection through the proxy is reset, and it listens again at once, as a network
        // that came back does; what was in flight is lost.
        const cut = (): void => void proxy?.refuse().then(() => proxy?.restore());
        const server = createServiceServer(purchasesService, { store: cutAfterCommit(store, trap, cut) });
        const port = await server.listen('127.0.0.1', 0);
        cleanups.push(() => server.stop(500));
        proxy = await TcpProxy.start({ host: '127.0.0.1', port });
        cleanups.push(() => proxy?.close());
        const registration = new RegistrationClient({
          distributor: distributorAddress,
          node: {
            name: 'purchases',
            host: '127.0.0.1',
            port: proxy.port,
            routes: [],
            descriptorSet: registrationDescriptorSet([purchasesService.grpc.name]),
            state: NodeState.NODE_STATE_SERVING,
          },
          backoff: { initialMs: 20, maxMs: 200 },
        });
        registration.start();
        cleanups.push(() => registration.stop(200));
      }
      const gateway: Gateway = createGateway({
        distributor: distributorAddress,
        registrationBackoff: { initialMs: 20, maxMs: 200 },
      });
      const url = `http://127.0.0.1:${await gateway.listen('127.0.0.1', 0)}/purchases`;
      cleanups.push(() => gateway.stop());
      await vi.waitFor(() => expect(servingCount(gateway, 'POST', '/purchases')).toBe(instances), {
        timeout: 10_000,
      });
      const post = (key?: string): Promise<HttpResult> =>
        send(url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...(key ? { 'Idempotency-Key': key } : {}) },
          body: JSON.stringify({ userid: 1, goodsid: 1 }),
        });
      /** A client that retries with the same key until it gets an answer (as Retry-After invites). */
      const postUntilAnswered = async (key?: string): Promise<HttpResult> => {
        for (let attempt = 0; ; attempt++) {
          const answer = await post(key);
          if (answer.status < 500 || attempt === 20) return answer;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      const rows = async () =>
        (await stores[0]!.listPurchases(1, { afterId: 0, size: 1000 }, undefined)).rows.length;
      return { trap, post, postUntilAnswered, rows };
    }

    it('the client retries with its key: the first answer, and exactly one purchase', async () => {
      const { trap, post, postUntilAnswered, rows } = await shop(1);
      trap.armed = true;
      const lost = await post('purchase-7f3a');
      // The defect as the client sees it: a failure, though the purchase is stored.
      expect(lost.status).toBeGreaterThanOrEqual(500);
      expect(trap.fired).toBe(1);
      expect(await rows()).toBe(1);

      const retried = await postUntilAnswered('purchase-7f3a');
      expect(retried.status).toBe(200);
      expect(retried.body).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success"\}$/);
      expect(await rows()).toBe(1);
    });

    it('without a key the same retry buys twice (the defect the key removes)', async () => {
      const { trap, post, postUntilAnswered, rows } = await shop(1);
      trap.armed = true;
      expect((await post()).status).toBeGreaterThanOrEqual(500);
      expect((await postUntilAnswered()).status).toBe(200);
      expect(await rows()).toBe(2);
    });

    it('two instances on one store: the gateway retries the keyed POST on the other, the client sees success', async () => {
      const { trap, post, rows } = await shop(2);
      for (let round = 1; round <= 4; round++) {
        trap.armed = true;
        const answer = await post(`purchase-${round}`);
        expect(trap.fired).toBe(round);
        expect(answer.status).toBe(200);
        expect(answer.body).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success"\}$/);
        expect(await rows()).toBe(round);
      }
    });
  });
}
