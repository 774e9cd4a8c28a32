import { type ChannelCredentials, type Client, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type CreateGoodsRequest,
  GoodsServiceClient,
  MembersServiceClient,
  PurchasesServiceClient,
} from '../../src/gen/services.js';
import { IDEMPOTENCY_RETENTION_MS, KEY_REUSED } from '../../src/services/common/idempotency.js';
import type { ServiceServer } from '../../src/services/common/service-server.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import type { ServiceStore } from '../../src/services/common/service-store.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import type { GoodsStore } from '../../src/services/goods/goods-store.js';
import { USERNAME_TAKEN } from '../../src/services/members/members-handlers.js';
import { membersService } from '../../src/services/members/members-service.js';
import type { MembersStore } from '../../src/services/members/members-store.js';
import { purchasesService } from '../../src/services/purchases/purchases-service.js';
import type { PurchasesStore } from '../../src/services/purchases/purchases-store.js';
import { type Backend, backendsOf, type OpenedStore } from './support/backends.js';
import { call, callWithKey, startTestServer, type TestServer } from './support/test-server.js';

const GOODS: CreateGoodsRequest = { name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
const REUSED = { code: status.FAILED_PRECONDITION, details: KEY_REUSED };
/** Light Argon2id parameters: these tests are about idempotency, not hashing cost. */
const HASH = { handlerOptions: { hashParameters: { memoryCost: 1024, timeCost: 1, parallelism: 1 } } };

/** A clock the test moves by hand, in ms since the epoch. */
function manualClock(start = Date.UTC(2026, 0, 1)) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

/** Opens stores and servers and closes them after each test, in reverse order. */
function harness() {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  return {
    async open<Store>(backend: Backend<Store>, clock?: ReturnType<typeof manualClock>) {
      const opened = await backend.open(clock ? { idempotency: { now: clock.now } } : {});
      closers.push(() => opened.dispose());
      return opened;
    },
    /** One more instance's store on the same database. */
    another<Store extends ServiceStore>(opened: OpenedStore<Store>): Store {
      const store = opened.openAnother();
      closers.push(() => store.close());
      return store;
    },
    async serve<C extends Client>(
      server: ServiceServer,
      ClientClass: new (address: string, credentials: ChannelCredentials) => C,
    ): Promise<TestServer<C>> {
      const started = await startTestServer(server, ClientClass);
      closers.push(() => started.close());
      return started;
    },
  };
}

async function count(opened: OpenedStore<unknown>, table: string): Promise<number> {
  const [row] = await opened.rawRows(`SELECT COUNT(*) AS n FROM ${table}`);
  return Number(row?.n);
}

describe.each(backendsOf(goodsService))('idempotent goods writes $title', (backend) => {
  describe.runIf(!backend.skipReason)('', () => {
    const h = harness();
    async function goods(clock?: ReturnType<typeof manualClock>) {
      const opened = await h.open<GoodsStore>(backend, clock);
      const { client } = await h.serve(
        // Tests here sweep by hand and count what their sweep deleted.
        createServiceServer(goodsService, { store: opened.store, idempotencySweeps: false }),
        GoodsServiceClient,
      );
      const create = (request: CreateGoodsRequest, ...keys: string[]) =>
        callWithKey(client, client.createGoods, request, ...keys);
      const remove = (id: number, ...keys: string[]) =>
        callWithKey(client, client.deleteGoods, { id }, ...keys);
      return { opened, client, create, remove };
    }

    /** Stores `count` keys of CreateGoods behind the service's back, the nth made at `createdAt(n)`. */
    async function insertKeys(
      opened: Awaited<ReturnType<typeof goods>>['opened'],
      count: number,
      createdAt: (index: number) => number,
    ): Promise<void> {
      const rows = Array.from(
        { length: count },
        (_, index) => `('k${index}', 'CreateGoods', ?, 0, '', ?, ?)`,
      );
      const values = Array.from({ length: count }, (_, index) => [
        Buffer.alloc(32),
        Buffer.alloc(0),
        createdAt(index),
      ]).flat();
      await opened.rawExec(
        `INSERT INTO goods_idempotency (idem_key, method, fingerprint, code, message, response, created_at) VALUES ${rows.join(',')}`,
        values,
      );
    }

    it('a repeat gets the first answer and writes nothing; without a key every call writes', async () => {
      const { opened, create } = await goods();
      await expect(create(GOODS, 'order-1')).resolves.toEqual({ id: 1 });
      await expect(create(GOODS, 'order-1')).resolves.toEqual({ id: 1 });
      await expect(create(GOODS, 'order-1')).resolves.toEqual({ id: 1 });
      expect(await count(opened, 'goods')).toBe(1);
      expect(await count(opened, 'goods_idempotency')).toBe(1);

      await expect(create(GOODS)).resolves.toEqual({ id: 2 });
      await expect(create(GOODS)).resolves.toEqual({ id: 3 });
      await expect(create(GOODS, 'order-2')).resolves.toEqual({ id: 4 });
      expect(await count(opened, 'goods')).toBe(4);
    });

    it('the same key with another request is refused, and nothing is written', async () => {
      const { opened, create, remove } = await goods();
      await create(GOODS, 'k');
      await expect(create({ ...GOODS, price: 1001 }, 'k')).rejects.toMatchObject(REUSED);
      // A key names one request, whatever the method: it cannot be spent again on a delete.
      await expect(remove(1, 'k')).rejects.toMatchObject(REUSED);
      expect(await opened.rawRows('SELECT id, price FROM goods')).toEqual([{ id: 1, price: 1000 }]);
    });

    it('a repeated delete answers again without deleting again', async () => {
      const { opened, create, remove } = await goods();
      await create(GOODS);
      await expect(remove(1, 'delete-1')).resolves.toEqual({});
      // The row comes back behind the service's back: a second delete would remove it.
      await opened.rawExec(
        "INSERT INTO goods (id, name, category, price, description) VALUES (1, 'back', 'c', 1, '')",
      );
      await expect(remove(1, 'delete-1')).resolves.toEqual({});
      expect(await opened.rawRows('SELECT id, name FROM goods')).toEqual([{ id: 1, name: 'back' }]);
    });

    it('20 concurrent calls with one key: one row, and all get its answer', async () => {
      const { opened, create } = await goods();
      const answers = await Promise.all(Array.from({ length: 20 }, () => create(GOODS, 'same')));
      expect(answers).toEqual(Array(20).fill({ id: 1 }));
      expect(await count(opened, 'goods')).toBe(1);
    });

    it('two instances on one store, called at once with one key: one row, one answer', async () => {
      const { opened, client } = await goods();
      const second = await h.serve(
        createServiceServer(goodsService, { store: h.another(opened) }),
        GoodsServiceClient,
      );
      const clients = [client, second.client];
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, index) => {
          const target = clients[index % 2]!;
          return callWithKey(target, target.createGoods, GOODS, 'shared');
        }),
      );
      expect(new Set(answers.map(({ id }) => id))).toEqual(new Set([1]));
      expect(await count(opened, 'goods')).toBe(1);
      // And the other request under that key is refused by either instance.
      for (const target of clients) {
        await expect(
          callWithKey(target, target.createGoods, { ...GOODS, name: 'other' }, 'shared'),
        ).rejects.toMatchObject(REUSED);
      }
    });

    // Instances of a service on several hosts share one MySQL; SQLite is one host's file.
    if (backend.name === 'mysql') {
      it("instances on hosts whose clocks disagree by a day share their keys: the database's clock dates them", async () => {
        const { opened, create } = await goods();
        await expect(create(GOODS, 'k')).resolves.toEqual({ id: 1 });
        // Another instance on a host whose clock runs a day and an hour ahead: it answers the retry
        // from the key, and its sweep leaves the key be.
        vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + IDEMPOTENCY_RETENTION_MS + 3_600_000 });
        try {
          const ahead = h.another(opened);
          const second = await h.serve(
            createServiceServer(goodsService, { store: ahead, idempotencySweeps: false }),
            GoodsServiceClient,
          );
          await expect(callWithKey(second.client, second.client.createGoods, GOODS, 'k')).resolves.toEqual({
            id: 1,
          });
          expect(await ahead.sweepExpired()).toBe(0);
          await expect(callWithKey(second.client, second.client.createGoods, GOODS, 'k2')).resolves.toEqual({
            id: 2,
          });
        } finally {
          vi.useRealTimers();
        }
        // And the key it wrote is no younger for an instance with the right clock.
        await expect(create({ ...GOODS, price: 1 }, 'k2')).rejects.toMatchObject(REUSED);
        expect(await opened.store.sweepExpired()).toBe(0);
        expect(await count(opened, 'goods')).toBe(2);
      });
    }

    it('a key is kept for the retention period, then is new again; sweeps delete only expired keys', async () => {
      const clock = manualClock();
      const { opened, create } = await goods(clock);
      await create(GOODS, 'old');
      clock.advance(IDEMPOTENCY_RETENTION_MS - 1);
      await create(GOODS, 'young');
      await expect(create(GOODS, 'old')).resolves.toEqual({ id: 1 });
      await expect(create({ ...GOODS, price: 1 }, 'old')).rejects.toMatchObject(REUSED);

      clock.advance(1);
      expect(await opened.store.sweepExpired()).toBe(1);
      expect(await opened.rawRows('SELECT idem_key FROM goods_idempotency')).toEqual([{ idem_key: 'young' }]);
      // Expired: the key is used afresh, for any request.
      await expect(create({ ...GOODS, price: 1 }, 'old')).resolves.toEqual({ id: 3 });
      await expect(create(GOODS, 'young')).resolves.toEqual({ id: 2 });
      expect(await count(opened, 'goods')).toBe(3);
    });

    it('an expired key is ignored before any sweep', async () => {
      const clock = manualClock();
      const { opened, create } = await goods(clock);
      await create(GOODS, 'k');
      clock.advance(IDEMPOTENCY_RETENTION_MS);
      await expect(create(GOODS, 'k')).resolves.toEqual({ id: 2 });
      await expect(create(GOODS, 'k')).resolves.toEqual({ id: 2 });
      expect(await count(opened, 'goods_idempotency')).toBe(1);
    });

    it('the server sweeps expired keys by itself, on its interval', async () => {
      const clock = manualClock();
      const opened = await h.open<GoodsStore>(backend, clock);
      const { client } = await h.serve(
        createServiceServer(goodsService, { store: opened.store, idempotencySweepIntervalMs: 20 }),
        GoodsServiceClient,
      );
      await callWithKey(client, client.createGoods, GOODS, 'k');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await count(opened, 'goods_idempotency')).toBe(1);
      clock.advance(IDEMPOTENCY_RETENTION_MS);
      await vi.waitFor(async () => expect(await count(opened, 'goods_idempotency')).toBe(0));
    });

    it('a sweep deletes in bounded batches until no expired key is left', async () => {
      const clock = manualClock();
      const { opened } = await goods(clock);
      const expired = clock.now() - IDEMPOTENCY_RETENTION_MS;
      await insertKeys(opened, 2_500, (index) => (index < 2_400 ? expired : clock.now()));
      expect(await opened.store.sweepExpired()).toBe(2_400);
      expect(await count(opened, 'goods_idempotency')).toBe(100);
    });

    it('a sweep lets the event loop turn between its batches, so calls are answered meanwhile', async () => {
      const clock = manualClock();
      const { opened } = await goods(clock);
      const expired = clock.now() - IDEMPOTENCY_RETENTION_MS;
      await insertKeys(opened, 2_500, () => expired);
      // SQLite runs each statement on the event loop: three batches in one go would hold every call
      // for the whole sweep (20,000 rows: about 300 ms).
      let turns = 0;
      let sweeping = true;
      const turn = (): void => {
        if (!sweeping) return;
        turns++;
        setImmediate(turn);
      };
      setImmediate(turn);
      expect(await opened.store.sweepExpired()).toBe(2_500);
      sweeping = false;
      expect(turns).toBeGreaterThanOrEqual(2);
    });

    it('a write that fails records nothing: the retry with the key writes', async () => {
      const { opened, create } = await goods();
      await opened.rawExec('ALTER TABLE goods RENAME TO goods_away');
      // A missing table is UNAVAILABLE on both stores, as the health probe finds it.
      await expect(create(GOODS, 'k')).rejects.toMatchObject({ code: status.UNAVAILABLE });
      expect(await count(opened, 'goods_idempotency')).toBe(0);
      await opened.rawExec('ALTER TABLE goods_away RENAME TO goods');
      await expect(create(GOODS, 'k')).resolves.toEqual({ id: 1 });
      await expect(create(GOODS, 'k')).resolves.toEqual({ id: 1 });
    });

    it('refuses a malformed key or two keys, and writes nothing', async () => {
      const { opened, create } = await goods();
      const invalid = {
        code: status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^Invalid Parameters: Idempotency-Key/),
      };
      // (grpc-js itself refuses to send anything beyond printable ASCII: the gateway's tests cover that.)
      for (const key of ['', 'with space', 'x'.repeat(256)]) {
        await expect(create(GOODS, key), JSON.stringify(key)).rejects.toMatchObject(invalid);
      }
      await expect(create(GOODS, 'a', 'b')).rejects.toMatchObject(invalid);
      expect(await count(opened, 'goods')).toBe(0);
      await expect(create(GOODS, 'x'.repeat(255))).resolves.toEqual({ id: 1 });
      await expect(create(GOODS, '!~')).resolves.toEqual({ id: 2 });
    });

    it('invalid parameters are refused before the key is looked at, and do not spend it', async () => {
      const { create } = await goods();
      await expect(create({ ...GOODS, name: '' }, 'k')).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'Invalid Parameters',
      });
      await expect(create(GOODS, 'k')).resolves.toEqual({ id: 1 });
    });
  });
});

describe.each(backendsOf(membersService))('idempotent members writes $title', (backend) => {
  describe.runIf(!backend.skipReason)('', () => {
    const h = harness();
    async function members() {
      const opened = await h.open<MembersStore>(backend);
      const { client } = await h.serve(
        createServiceServer(membersService, { store: opened.store, ...HASH }),
        MembersServiceClient,
      );
      return {
        opened,
        create: (username: string, password: string, key: string) =>
          callWithKey(client, client.createMember, { username, password }, key),
        remove: (username: string, key?: string) =>
          key === undefined
            ? call(client, client.deleteMember, { username })
            : callWithKey(client, client.deleteMember, { username }, key),
        signIn: (username: string, password: string) => call(client, client.signIn, { username, password }),
      };
    }

    it('a repeated sign-up gets the first answer; another username under the key is refused', async () => {
      const { opened, create, signIn } = await members();
      await expect(create('ann', 'secret', 'signup-1')).resolves.toEqual({ userid: 1 });
      await expect(create('ann', 'secret', 'signup-1')).resolves.toEqual({ userid: 1 });
      await expect(create('bob', 'secret', 'signup-1')).rejects.toMatchObject(REUSED);
      expect(await count(opened, 'members')).toBe(1);
      await expect(signIn('ann', 'secret')).resolves.toEqual({ userid: 1 });
    });

    it('the password is not part of the fingerprint: the repeat answers the first, the first password stays', async () => {
      const { opened, create, signIn } = await members();
      await create('ann', 'first', 'k');
      await expect(create('ann', 'second', 'k')).resolves.toEqual({ userid: 1 });
      await expect(signIn('ann', 'first')).resolves.toEqual({ userid: 1 });
      const [row] = await opened.rawRows('SELECT fingerprint FROM members_idempotency');
      expect(Buffer.from(row!.fingerprint as Uint8Array).toString('latin1')).not.toContain('first');
    });

    it('a refusal decided by the write is recorded too: "taken" stays the answer of its key', async () => {
      const { opened, create, remove } = await members();
      await create('ann', 'x', 'first');
      await expect(create('ann', 'x', 'second')).rejects.toMatchObject({
        code: status.ALREADY_EXISTS,
        details: USERNAME_TAKEN,
      });
      await remove('ann');
      await expect(create('ann', 'x', 'second')).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
      expect(await count(opened, 'members')).toBe(0);
      // A new key makes a new request (MySQL spent an id on the refused insert: any new id will do).
      await expect(create('ann', 'x', 'third')).resolves.toEqual({ userid: expect.any(Number) });
      expect(await count(opened, 'members')).toBe(1);
    });

    it('a repeated delete does not delete the account made again since', async () => {
      const { create, remove, signIn } = await members();
      await create('ann', 'x', 'a');
      await expect(remove('ann', 'delete-ann')).resolves.toEqual({});
      await create('ann', 'y', 'b');
      await expect(remove('ann', 'delete-ann')).resolves.toEqual({});
      await expect(signIn('ann', 'y')).resolves.toEqual({ userid: 2 });
    });

    it('concurrent sign-ups with one key: one account, one answer', async () => {
      const { opened, create } = await members();
      const answers = await Promise.all(Array.from({ length: 6 }, () => create('ann', 'x', 'same')));
      expect(answers).toEqual(Array(6).fill({ userid: 1 }));
      expect(await count(opened, 'members')).toBe(1);
    });
  });
});

describe.each(backendsOf(purchasesService))('idempotent purchases $title', (backend) => {
  describe.runIf(!backend.skipReason)('', () => {
    const h = harness();

    it('a repeat gets the first answer without a second row; another request is refused', async () => {
      const opened = await h.open<PurchasesStore>(backend);
      const { client } = await h.serve(
        createServiceServer(purchasesService, { store: opened.store }),
        PurchasesServiceClient,
      );
      const buy = (goodsid: number, key: string) =>
        callWithKey(client, client.createPurchase, { userid: 1, goodsid }, key);
      await expect(buy(1, 'p')).resolves.toEqual({ id: 1 });
      await expect(buy(1, 'p')).resolves.toEqual({ id: 1 });
      await expect(buy(2, 'p')).rejects.toMatchObject(REUSED);
      const answers = await Promise.all(Array.from({ length: 20 }, () => buy(3, 'q')));
      expect(answers).toEqual(Array(20).fill({ id: 2 }));
      expect((await call(client, client.listPurchases, { userid: 1 })).results.map(({ id }) => id)).toEqual([
        1, 2,
      ]);
    });
  });
});
