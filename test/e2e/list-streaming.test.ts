import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { type GoodsTable, insertGoods } from '../../src/bench/bulk-goods.js';
import { COMPONENT_NODE_FLAGS } from '../../src/launcher/node-flags.js';
import type { StorageConfig } from '../../src/services/common/service-config.js';
import type { NewGoods } from '../../src/services/goods/goods-store.js';
import { send } from '../helpers/http.js';
import { freePort, rssMiB, spawnComponent } from './support/processes.js';
import { type Backend, type Shop, servingCount, startShop, TEST_REGISTRY_TOKEN } from './support/shop.js';

// Issue 8 §3: lists page on gRPC, and REST still answers the whole list in one body, streamed page
// by page, so that neither a message limit nor the gateway's memory bounds the length of a list.

/** The book's field order: what the gateway renders for a row of goods. */
function goodsJson(id: number, goods: NewGoods): string {
  return JSON.stringify({ id, ...goods });
}

/** Rows with text that needs escaping here and there, so the byte-for-byte checks mean something. */
function goodsAt(index: number, descriptionBytes = 40): NewGoods {
  const tricky = index % 997 === 0 ? ' "quoted" \\ é 한 😀' : '';
  return {
    name: `goods ${index + 1}${tricky}`,
    category: `category ${index % 7}`,
    price: 1000 + index,
    description: `${`description ${index + 1} `.padEnd(descriptionBytes, '.')}${tricky}`,
  };
}

/** The body the book's gateway gave for these goods (ids 1…n): one JSON object, results in id order. */
function wholeListBody(key: number, rows: string[]): string {
  return `{"key":${key},"errorcode":0,"errormessage":"success","results":[${rows.join(',')}]}`;
}

function goodsTable(storage: StorageConfig): GoodsTable {
  return storage.kind === 'mysql'
    ? { kind: 'mysql', connection: storage.connection }
    : { kind: 'sqlite', file: join(storage.dataDir, 'goods.sqlite') };
}

/** Adds `count` purchases of one user straight into the table, dated `date`. */
async function insertPurchases(storage: StorageConfig, userid: number, count: number, date: Date) {
  const rows = Array.from({ length: count }, (_, index) => [userid, index + 1]);
  if (storage.kind === 'sqlite') {
    const db = new Database(join(storage.dataDir, 'purchases.sqlite'));
    try {
      const insert = db.prepare('INSERT INTO purchases (userid, goodsid, date) VALUES (?, ?, ?)');
      db.transaction(() => {
        for (const [user, goods] of rows) insert.run(user, goods, date.toISOString());
      })();
    } finally {
      db.close();
    }
    return;
  }
  const { host, port, user, password, database } = storage.connection;
  const connection = await createConnection({ host, port, user, password, database, timezone: 'Z' });
  try {
    await connection.query('INSERT INTO purchases (userid, goodsid, date) VALUES ?', [
      rows.map(([user, goods]) => [user, goods, date]),
    ]);
  } finally {
    await connection.end();
  }
}

const keyOf = (body: string): number => Number(/^\{"key":(\d+),/.exec(body)?.[1]);

const mysqlUrl = inject('mysqlUrl');
const backends: Array<{ label: string; backend: Backend; enabled: boolean }> = [
  { label: 'the embedded store', backend: { kind: 'sqlite' }, enabled: true },
  { label: 'MariaDB', backend: { kind: 'mysql', serverUrl: mysqlUrl }, enabled: mysqlUrl !== '' },
];

for (const { label, backend, enabled } of backends) {
  describe.runIf(enabled)(`lists through the gateway on ${label}`, () => {
    let shop: Shop;
    const goodsRows: string[] = [];
    beforeAll(async () => {
      shop = await startShop(backend);
      await vi.waitFor(
        () => {
          expect(servingCount(shop.gateway, 'GET', '/goods')).toBe(1);
          expect(servingCount(shop.gateway, 'GET', '/purchases')).toBe(1);
        },
        { timeout: 10_000 },
      );
    });
    afterAll(() => shop?.stop());

    it('an empty list is the book\'s "no data", exactly as before', async () => {
      const answer = await send(`${shop.gatewayUrl}/goods`);
      expect(answer.status).toBe(200);
      expect(answer.body).toBe(`{"key":${keyOf(answer.body)},"errorcode":1,"errormessage":"no data"}`);
      expect(answer.headers['content-length']).toBe(String(answer.body.length));
    });

    it('a list of one page is answered as before paging: one body with Content-Length', async () => {
      await insertGoods(goodsTable(shop.storage), 3, goodsAt);
      goodsRows.push(...[0, 1, 2].map((index) => goodsJson(index + 1, goodsAt(index))));
      const answer = await send(`${shop.gatewayUrl}/goods`);
      expect(answer.body).toBe(wholeListBody(keyOf(answer.body), goodsRows));
      expect(answer.headers['content-length']).toBe(String(Buffer.byteLength(answer.body)));
      expect(answer.headers['transfer-encoding']).toBeUndefined();
    });

    it('a list of several pages is streamed whole: the same body byte for byte, chunked', async () => {
      const more = 2_345;
      await insertGoods(goodsTable(shop.storage), more, (index) => goodsAt(index + 3));
      for (let index = 3; index < 3 + more; index++) goodsRows.push(goodsJson(index + 1, goodsAt(index)));
      const answer = await send(`${shop.gatewayUrl}/goods`);
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe('application/json');
      expect(answer.headers['transfer-encoding']).toBe('chunked');
      expect(answer.headers['content-length']).toBeUndefined();
      expect(answer.body).toBe(wholeListBody(keyOf(answer.body), goodsRows));
    });

    it('page_size and page_token give one page, with next_page_token after the results', async () => {
      const seen: string[] = [];
      let token = '';
      let pages = 0;
      do {
        const query = `page_size=1000${token ? `&page_token=${encodeURIComponent(token)}` : ''}`;
        const answer = await send(`${shop.gatewayUrl}/goods?${query}`);
        const match =
          /^\{"key":\d+,"errorcode":0,"errormessage":"success","results":\[(.*)\],"next_page_token":"([^"]*)"\}$/.exec(
            answer.body,
          );
        expect(match, answer.body.slice(0, 200)).not.toBeNull();
        seen.push(match![1]!);
        token = match![2]!;
        pages++;
      } while (token !== '');
      expect(pages).toBe(3);
      expect(seen.join(',')).toBe(goodsRows.join(','));
      const bad = await send(`${shop.gatewayUrl}/goods?page_token=bm90LWEtdG9rZW4`);
      expect(bad.body).toBe(
        `{"key":${keyOf(bad.body)},"errorcode":1,"errormessage":"Invalid Parameters: page_token is not a token of this list"}`,
      );
      const negative = await send(`${shop.gatewayUrl}/goods?page_size=-1`);
      expect(negative.body).toMatch(/"errormessage":"Invalid Parameters: page_size must not be negative"\}$/);
    });

    it("purchases: a user's whole list over pages, and one page of it", async () => {
      const date = new Date('2020-11-04T15:31:47.000Z');
      await insertPurchases(shop.storage, 2, 5, date);
      await insertPurchases(shop.storage, 1, 1_203, date);
      const rows = Array.from(
        { length: 1_203 },
        (_, index) => `{"id":${index + 6},"goodsid":${index + 1},"date":"2020-11-04T15:31:47.000Z"}`,
      );
      const whole = await send(`${shop.gatewayUrl}/purchases?userid=1`);
      expect(whole.headers['transfer-encoding']).toBe('chunked');
      expect(whole.body).toBe(wholeListBody(keyOf(whole.body), rows));
      const page = await send(`${shop.gatewayUrl}/purchases?userid=2&page_size=3`);
      expect(page.body).toMatch(
        /^\{"key":\d+,"errorcode":0,"errormessage":"success","results":\[\{"id":1,.*\{"id":3,[^\]]*\],"next_page_token":"[A-Za-z0-9_-]+"\}$/,
      );
      const nobody = await send(`${shop.gatewayUrl}/purchases?userid=3`);
      expect(nobody.body).toBe(`{"key":${keyOf(nobody.body)},"errorcode":1,"errormessage":"no data"}`);
    });
  });
}

/** What {@link streamDigest} read. */
interface Digest {
  status: number;
  chunked: boolean;
  bytes: number;
  sha256: string;
  /** The first bytes of the body, as text. */
  head: string;
}

/** Reads a whole answer without keeping it: its status, size, digest and first bytes. */
function streamDigest(url: string): Promise<Digest> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { agent: false }, (response) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let head = '';
      response.on('data', (chunk: Buffer) => {
        if (head.length < 100) head += chunk.toString('utf8', 0, 100);
        hash.update(chunk);
        bytes += chunk.length;
      });
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          chunked: response.headers['transfer-encoding'] === 'chunked',
          bytes,
          sha256: hash.digest('hex'),
          head,
        }),
      );
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

for (const { label, backend, enabled } of backends) {
  describe.runIf(enabled)(`a list of 60,000 goods through a gateway process on ${label}`, () => {
    const COUNT = 60_000;
    const DESCRIPTION_BYTES = 1000;
    let shop: Shop;
    let gateway: ReturnType<typeof spawnComponent>;
    let gatewayUrl: string;
    beforeAll(async () => {
      shop = await startShop(backend);
      await insertGoods(goodsTable(shop.storage), COUNT, (index) => goodsAt(index, DESCRIPTION_BYTES));
      const port = await freePort();
      gatewayUrl = `http://127.0.0.1:${port}`;
      gateway = spawnComponent(
        'src/gateway/main.ts',
        ['--port', String(port)],
        {
          DISTRIBUTOR_ADDRESS: shop.distributorAddress,
          SHOP_REGISTRY_TOKEN: TEST_REGISTRY_TOKEN,
          GATEWAY_HOST: '127.0.0.1',
          LOG_LEVEL: 'warn',
        },
        // As npm start and the bench run every component.
        { nodeFlags: COMPONENT_NODE_FLAGS },
      );
      await vi.waitFor(async () => expect((await send(`${gatewayUrl}/goods?page_size=1`)).status).toBe(200), {
        timeout: 30_000,
        interval: 200,
      });
    }, 120_000);
    afterAll(async () => {
      if (gateway && gateway.child.exitCode === null) {
        gateway.child.kill('SIGTERM');
        await gateway.exited();
      }
      await shop?.stop();
    });

    it('streams it whole, twice, far past the 4 MiB message limit, with the gateway RSS bounded', async () => {
      // Warm the gateway up on pages of the same route, then take its resident memory as the base.
      for (let round = 0; round < 5; round++) await send(`${gatewayUrl}/goods?page_size=1000`);
      const pid = gateway.child.pid!;
      const base = rssMiB(pid);
      let peak = base;
      const sample = (): void => {
        peak = Math.max(peak, rssMiB(pid));
      };
      const sampler = setInterval(sample, 20);
      const started = Date.now();
      let answer: Digest;
      let again: Digest;
      try {
        answer = await streamDigest(`${gatewayUrl}/goods`);
        again = await streamDigest(`${gatewayUrl}/goods`);
      } finally {
        clearInterval(sampler);
      }
      sample();
      const seconds = (Date.now() - started) / 1000;
      expect(answer.status).toBe(200);
      expect(answer.chunked).toBe(true);
      const rows = Array.from({ length: COUNT }, (_, index) =>
        goodsJson(index + 1, goodsAt(index, DESCRIPTION_BYTES)),
      );
      const expected = wholeListBody(keyOf(answer.head), rows);
      expect(answer.bytes).toBe(Buffer.byteLength(expected));
      expect(answer.sha256).toBe(createHash('sha256').update(expected).digest('hex'));
      expect(again.bytes).toBe(answer.bytes);
      // Fifteen times what one gRPC message may carry.
      expect(answer.bytes).toBeGreaterThan(15 * 4 * 1024 * 1024);
      process.stdout.write(
        `[list-streaming ${label}] ${COUNT} rows, twice ${(answer.bytes / 2 ** 20).toFixed(1)} MiB in ${seconds.toFixed(1)} s; gateway RSS ${base.toFixed(0)} → peak ${peak.toFixed(0)} MiB\n`,
      );
      // A gateway that held a whole list would grow by more than its body, 62 MiB; one that keeps
      // two pages at a time grows by what its garbage collector lets pile up before collecting
      // (measured: 20 to 40 MiB), and not again on the second pass.
      expect(peak - base).toBeLessThan(48);
    }, 120_000);
  });
}
