import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CreateGoodsRequest, GoodsServiceClient } from '../../src/gen/services.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { GOODS_LIMITS } from '../../src/services/goods/goods-handlers.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import type { GoodsStore, NewGoods } from '../../src/services/goods/goods-store.js';
import { SqliteGoodsStore } from '../../src/services/goods/sqlite-goods-store.js';
import { backendsOf, type OpenedStore } from './support/backends.js';
import { callRaw, wire } from './support/raw-call.js';
import { call, startTestServer, type TestServer } from './support/test-server.js';
import { firstCharacters, TRICKY_STRINGS } from './support/tricky-strings.js';

const VALID: CreateGoodsRequest = { name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
const INVALID = { code: status.INVALID_ARGUMENT, details: 'Invalid Parameters' };

describe.each(backendsOf(goodsService))('GoodsService $title', (backend) => {
  describe.runIf(!backend.skipReason)('', () => {
    let opened: OpenedStore<GoodsStore>;
    let service: TestServer<GoodsServiceClient>;
    const create = (request: CreateGoodsRequest) => call(service.client, service.client.createGoods, request);
    const list = () => call(service.client, service.client.listGoods, {});
    const remove = (id?: number) =>
      call(service.client, service.client.deleteGoods, id === undefined ? {} : { id });

    beforeEach(async () => {
      opened = await backend.open();
      service = await startTestServer(
        createServiceServer(goodsService, { store: opened.store }),
        GoodsServiceClient,
      );
    });
    afterEach(async () => {
      await service?.close();
      await opened?.dispose();
    });

    it('answers the book: create, list exactly, delete, then "no data"', async () => {
      await expect(list()).rejects.toMatchObject({ code: status.NOT_FOUND, details: 'no data' });
      await expect(create(VALID)).resolves.toEqual({ id: 1 });
      await expect(list()).resolves.toEqual({
        results: [{ id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' }],
        nextPageToken: '',
      });
      await expect(remove(1)).resolves.toEqual({});
      await expect(list()).rejects.toMatchObject({ code: status.NOT_FOUND, details: 'no data' });
    });

    it('lists in id order and deletes only the id asked for', async () => {
      for (const name of ['a', 'b', 'c']) await create({ ...VALID, name });
      await remove(2);
      const { results } = await list();
      expect(results.map(({ id, name }) => [id, name])).toEqual([
        [1, 'a'],
        [3, 'c'],
      ]);
    });

    it('answers concurrent lists with shared reads, none missing a write acknowledged before its call', async () => {
      let reads = 0;
      const listGoods = opened.store.listGoods.bind(opened.store);
      // A read that takes a while, as a database's does, so that calls arrive while one runs.
      opened.store.listGoods = async (query, parent) => {
        reads++;
        const page = await listGoods(query, parent);
        await new Promise((resolve) => setTimeout(resolve, 5));
        return page;
      };
      await create({ ...VALID, name: 'first' });
      const rounds = 8;
      const callsPerRound = 16;
      const seen: Array<Promise<number[]>> = [];
      for (let round = 1; round <= rounds; round++) {
        // Every list started after the round's write was acknowledged must include it.
        const { id } = await create({ ...VALID, name: `round ${round}` });
        for (let index = 0; index < callsPerRound; index++) {
          seen.push(
            list().then(({ results }) => {
              expect(results.map((goods) => goods.id)).toContain(id);
              return results.map((goods) => goods.id);
            }),
          );
        }
      }
      const answers = await Promise.all(seen);
      expect(answers).toHaveLength(rounds * callsPerRound);
      expect(reads).toBeLessThan(rounds * callsPerRound);
    });

    it('deleting an id that does not exist succeeds', async () => {
      await expect(remove(42)).resolves.toEqual({});
    });

    it.each(['name', 'category', 'price', 'description'] as const)(
      'a missing %s is "Invalid Parameters"',
      async (field) => {
        const request: CreateGoodsRequest = { ...VALID };
        delete request[field];
        await expect(create(request)).rejects.toMatchObject(INVALID);
      },
    );

    it.each(['name', 'category'] as const)('an empty %s counts as missing', async (field) => {
      await expect(create({ ...VALID, [field]: '' })).rejects.toMatchObject(INVALID);
    });

    it('an empty description and a price of 0 are values', async () => {
      await expect(create({ ...VALID, description: '', price: 0 })).resolves.toEqual({ id: 1 });
      const { results } = await list();
      expect(results[0]).toMatchObject({ description: '', price: 0 });
    });

    it('a negative price is refused with a reason', async () => {
      await expect(create({ ...VALID, price: -1 })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'Invalid Parameters: price must not be negative',
      });
    });

    it('the largest price an int32 holds is kept', async () => {
      await create({ ...VALID, price: 2 ** 31 - 1 });
      expect((await list()).results[0]?.price).toBe(2 ** 31 - 1);
    });

    it.each(['name', 'category'] as const)(
      '%s: 128 characters are kept (emoji count as one), 129 are refused',
      async (field) => {
        const atBound = '😀'.repeat(GOODS_LIMITS.nameCharacters);
        await expect(create({ ...VALID, [field]: atBound })).resolves.toEqual({ id: 1 });
        expect((await list()).results[0]?.[field]).toBe(atBound);
        await expect(create({ ...VALID, [field]: `${atBound}a` })).rejects.toMatchObject({
          code: status.INVALID_ARGUMENT,
          details: `Invalid Parameters: ${field} must be at most 128 characters`,
        });
      },
    );

    it('description: 64 KiB of UTF-8 is kept, one byte more is refused', async () => {
      const atBound = `${'한'.repeat(21_845)}a`; // 3 bytes each: 65 535 + 1 = 65 536 bytes
      expect(Buffer.byteLength(atBound)).toBe(GOODS_LIMITS.descriptionBytes);
      await expect(create({ ...VALID, description: atBound })).resolves.toEqual({ id: 1 });
      expect((await list()).results[0]?.description).toBe(atBound);
      await expect(create({ ...VALID, description: `${atBound}a` })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'Invalid Parameters: description must be at most 64 KiB (65536 bytes of UTF-8)',
      });
    });

    it('a missing or non-positive id to delete is refused', async () => {
      await expect(remove()).rejects.toMatchObject(INVALID);
      for (const id of [0, -1]) {
        await expect(remove(id)).rejects.toMatchObject({
          code: status.INVALID_ARGUMENT,
          details: 'Invalid Parameters: id must be a positive number',
        });
      }
    });

    it('stores quotes, SQL, unicode and 10 KB of text verbatim', async () => {
      for (const text of TRICKY_STRINGS) {
        const short = firstCharacters(text, 128);
        await create({ name: short, category: short, price: 1, description: text });
      }
      const { results } = await list();
      expect(results.map((goods) => goods.description)).toEqual(TRICKY_STRINGS);
      expect(results.map((goods) => goods.name)).toEqual(
        TRICKY_STRINGS.map((text) => firstCharacters(text, 128)),
      );
      // The injection attempt did not drop or widen anything: every row is still there, once.
      expect(results.map((goods) => goods.id)).toEqual(TRICKY_STRINGS.map((_, index) => index + 1));
    });

    it('200 concurrent creations all land, with distinct ids', async () => {
      const ids = await Promise.all(
        Array.from({ length: 200 }, (_, index) => create({ ...VALID, name: `goods ${index}` })),
      );
      expect(new Set(ids.map(({ id }) => id)).size).toBe(200);
      const { results } = await list();
      expect(results).toHaveLength(200);
      expect(results.map(({ id }) => id).sort((a, b) => a - b)).toEqual(
        ids.map(({ id }) => id).sort((a, b) => a - b),
      );
    });

    it('a database error is INTERNAL "Internal error" to the caller, and logged with its cause', async () => {
      const lines: string[] = [];
      const log = pino({ level: 'error' }, { write: (line: string) => lines.push(line) });
      await service.close();
      service = await startTestServer(
        createServiceServer(goodsService, { store: opened.store, log }),
        GoodsServiceClient,
      );
      await create(VALID);
      // A column gone (a table gone is UNAVAILABLE on MySQL: the health probe's case, see mysql-outage).
      await opened.rawExec('ALTER TABLE goods DROP COLUMN category');
      const failure = await create(VALID).catch((error) => error);
      expect({ code: failure.code, details: failure.details }).toEqual({
        code: status.INTERNAL,
        details: 'Internal error',
      });
      const logged = lines.map((line) => JSON.parse(line));
      expect(logged).toContainEqual(
        expect.objectContaining({
          msg: 'Internal error',
          grpcMethod: 'shop.v1.GoodsService/CreateGoods',
          err: expect.objectContaining({ message: expect.stringMatching(/category/) }),
        }),
      );
    });

    it('keeps its table as documented', async () => {
      await create(VALID);
      expect(await opened.rawRows('SELECT id, name, category, price, description FROM goods')).toEqual([
        { id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' },
      ]);
    });
  });
});

describe('GoodsService given fields of the wrong wire type', () => {
  let opened: OpenedStore<GoodsStore>;
  let service: TestServer<GoodsServiceClient>;
  beforeEach(async () => {
    opened = await backendsOf(goodsService)[0]!.open();
    service = await startTestServer(
      createServiceServer(goodsService, { store: opened.store }),
      GoodsServiceClient,
    );
  });
  afterEach(async () => {
    await service?.close();
    await opened?.dispose();
  });

  it.each([
    ['a price sent as text', [wire.text(1, 'n'), wire.text(2, 'c'), wire.text(3, '1000'), wire.text(4, 'd')]],
    ['a name sent as a number', [wire.number(1, 7), wire.text(2, 'c'), wire.number(3, 1), wire.text(4, 'd')]],
  ])('CreateGoods with %s is "Invalid Parameters", and nothing is stored', async (_label, fields) => {
    const path = '/shop.v1.GoodsService/CreateGoods';
    expect(await callRaw(service.address, path, Buffer.concat(fields))).toEqual(INVALID);
    await expect(call(service.client, service.client.listGoods, {})).rejects.toMatchObject({
      code: status.NOT_FOUND,
    });
  });

  it('DeleteGoods with an id sent as text is "Invalid Parameters"', async () => {
    const path = '/shop.v1.GoodsService/DeleteGoods';
    expect(await callRaw(service.address, path, wire.text(1, '1'))).toEqual(INVALID);
  });

  it('CreateGoods with a name that is not UTF-8 is refused, not stored with U+FFFD in its place', async () => {
    const path = '/shop.v1.GoodsService/CreateGoods';
    const fields = [wire.bytes(1, Buffer.from([0x61, 0xff, 0xfe])), wire.text(2, 'c'), wire.number(3, 1)];
    expect(await callRaw(service.address, path, Buffer.concat([...fields, wire.text(4, 'd')]))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'Invalid Parameters: a string field is not valid UTF-8',
    });
    await expect(call(service.client, service.client.listGoods, {})).rejects.toMatchObject({
      code: status.NOT_FOUND,
    });
    // Valid UTF-8 beyond ASCII, a byte-order mark and U+FFFD itself are kept as sent.
    const name = '\uFEFFcafé 🛒 \uFFFD';
    await expect(call(service.client, service.client.createGoods, { ...VALID, name })).resolves.toEqual({
      id: 1,
    });
    const { results } = await call(service.client, service.client.listGoods, {});
    expect(results.map((goods) => goods.name)).toEqual([name]);
  });

  it.each([
    ['a field cut short', Buffer.from([0x0a, 0xff, 0xff, 0xff])],
    ['a varint longer than ten bytes', Buffer.concat([Buffer.from([0x18]), Buffer.alloc(11, 0xff)])],
    ['a wire type that does not exist', Buffer.from([0x0f, 0x01])],
  ])(
    'bytes that are not a CreateGoods message (%s) are INVALID_ARGUMENT, not a server fault',
    async (_label, body) => {
      expect(await callRaw(service.address, '/shop.v1.GoodsService/CreateGoods', body)).toEqual({
        code: status.INVALID_ARGUMENT,
        details: 'Invalid Parameters: the request is not a well-formed protobuf message',
      });
    },
  );
});

describe('two goods instances sharing one SQLite file', () => {
  it('both write, with distinct ids, and each sees the other’s rows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shop-shared-'));
    const first = new SqliteGoodsStore(join(dir, 'goods.sqlite'));
    const second = new SqliteGoodsStore(join(dir, 'goods.sqlite'));
    try {
      const item: NewGoods = { name: 'shared', category: 'tests', price: 1, description: '' };
      const ids = await Promise.all(
        Array.from({ length: 50 }, (_, index) => (index % 2 ? first : second).createGoods(item)),
      );
      expect(new Set(ids).size).toBe(50);
      const everything = { afterId: 0, size: 1_000, maxTextBytes: 1024 * 1024 };
      const seenByFirst = (await first.listGoods(everything)).rows.map(({ id }) => id);
      expect(seenByFirst).toHaveLength(50);
      expect((await second.listGoods(everything)).rows.map(({ id }) => id)).toEqual(seenByFirst);
    } finally {
      await first.close();
      await second.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a SQLite file', () => {
  it('refuses a row past the largest id the contract carries, storing nothing, and lists as before', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shop-ids-'));
    const file = join(dir, 'goods.sqlite');
    const store = new SqliteGoodsStore(file);
    try {
      const item: NewGoods = { name: 'last', category: 'tests', price: 1, description: '' };
      expect(await store.createGoods(item)).toBe(1);
      const admin = new Database(file);
      admin.prepare("UPDATE sqlite_sequence SET seq = 2147483646 WHERE name = 'goods'").run();
      admin.close();
      expect(await store.createGoods(item)).toBe(2_147_483_647);
      await expect(store.createGoods(item)).rejects.toMatchObject({ code: status.INTERNAL });
      await expect(store.createGoods(item)).rejects.toMatchObject({ code: status.INTERNAL });
      const everything = { afterId: 0, size: 1_000, maxTextBytes: 1024 * 1024 };
      expect((await store.listGoods(everything)).rows.map(({ id }) => id)).toEqual([1, 2_147_483_647]);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("is made readable by this user only, its folder, -wal and -shm files too (members' holds password hashes); one that exists keeps its mode", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shop-private-'));
    const dataDir = join(dir, 'data');
    const store = new SqliteGoodsStore(join(dataDir, 'goods.sqlite'));
    try {
      await store.createGoods({ name: 'private', category: 'tests', price: 1, description: '' });
      const modeOf = async (path: string) => (await stat(path)).mode & 0o777;
      expect(await modeOf(dataDir)).toBe(0o700);
      for (const file of ['goods.sqlite', 'goods.sqlite-wal', 'goods.sqlite-shm']) {
        expect(await modeOf(join(dataDir, file))).toBe(0o600);
      }
      await writeFile(join(dir, 'shared.sqlite'), '', { mode: 0o640 });
      const existing = new SqliteGoodsStore(join(dir, 'shared.sqlite'));
      await existing.close();
      expect(await modeOf(join(dir, 'shared.sqlite'))).toBe(0o640);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
