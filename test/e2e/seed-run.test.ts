import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { send } from '../helpers/http.js';
import { type Backend, type Shop, servingCount, startShop } from './support/shop.js';

// The book's test.js, request by request, and the exact bodies its run printed (seeds/004_*.txt).
const json = { 'Content-Type': 'application/json' };
const SEED_RUN = [
  { method: 'DELETE', path: '/members?username=test_account', body: undefined },
  {
    method: 'POST',
    path: '/members',
    body: JSON.stringify({ username: 'test_account', password: '1234', passwordConfirm: '1234' }),
  },
  { method: 'GET', path: '/members?username=test_account&password=1234', body: undefined },
  {
    method: 'POST',
    path: '/goods',
    body: JSON.stringify({ name: 'test Goods', category: 'tests', price: 1000, description: 'test' }),
  },
  { method: 'GET', path: '/goods', body: undefined },
  { method: 'DELETE', path: '/goods?id=1', body: undefined },
  { method: 'POST', path: '/purchases', body: JSON.stringify({ userid: 1, goodsid: 1 }) },
  { method: 'GET', path: '/purchases?userid=1', body: undefined },
] as const;

const EXPECTED_BODIES = [
  '{"key":0,"errorcode":0,"errormessage":"success"}',
  '{"key":1,"errorcode":0,"errormessage":"success"}',
  '{"key":2,"errorcode":0,"errormessage":"success","userid":1}',
  '{"key":3,"errorcode":0,"errormessage":"success"}',
  '{"key":4,"errorcode":0,"errormessage":"success","results":[{"id":1,"name":"test Goods","category":"tests","price":1000,"description":"test"}]}',
  '{"key":5,"errorcode":0,"errormessage":"success"}',
  '{"key":6,"errorcode":0,"errormessage":"success"}',
  '{"key":7,"errorcode":0,"errormessage":"success","results":[{"id":1,"goodsid":1,"date":"<date>"}]}',
];

const DATE = /"date":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"/;

/** Waits until the gateway routes every path of the seed run, without sending a request (keys count from 0). */
async function waitUntilRouted(shop: Shop): Promise<void> {
  await vi.waitFor(
    () => {
      for (const { method, path } of SEED_RUN)
        expect(servingCount(shop.gateway, method, path.split('?')[0]!)).toBe(1);
    },
    { timeout: 10_000 },
  );
}

const mysqlUrl = inject('mysqlUrl');
const backends: Array<{ label: string; backend: Backend; enabled: boolean }> = [
  { label: 'the embedded store', backend: { kind: 'sqlite' }, enabled: true },
  { label: 'MariaDB', backend: { kind: 'mysql', serverUrl: mysqlUrl }, enabled: mysqlUrl !== '' },
];

for (const { label, backend, enabled } of backends) {
  describe.runIf(enabled)(`the book's test run through gateway, distributor and services on ${label}`, () => {
    let shop: Shop;
    beforeAll(async () => {
      shop = await startShop(backend);
      await waitUntilRouted(shop);
    });
    afterAll(() => shop?.stop());

    it('answers the eight requests with the seed bodies, byte for byte but the date', async () => {
      const before = Date.now();
      const bodies: string[] = [];
      for (const step of SEED_RUN) {
        const answer = await send(`${shop.gatewayUrl}${step.path}`, {
          method: step.method,
          headers: json,
          body: step.body,
        });
        expect(answer.status).toBe(200);
        expect(answer.headers['content-type']).toMatch(/^application\/json/);
        bodies.push(answer.body);
      }
      const date = DATE.exec(bodies[7]!)?.[1];
      expect(date).toBeDefined();
      expect(Date.parse(date!)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
      expect(Date.parse(date!)).toBeLessThanOrEqual(Date.now() + 1000);
      expect(bodies.map((body) => body.replace(DATE, '"date":"<date>"'))).toEqual(EXPECTED_BODIES);
    });

    it("keeps the book's failures: wrong password, empty list, bad parameter", async () => {
      const signIn = await send(`${shop.gatewayUrl}/members?username=test_account&password=wrong`);
      expect(signIn.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"Invalid password"\}$/);
      const unknown = await send(`${shop.gatewayUrl}/members?username=nobody&password=1234`);
      expect(unknown.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"Invalid password"\}$/);
      const empty = await send(`${shop.gatewayUrl}/goods`);
      expect(empty.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"no data"\}$/);
      const badId = await send(`${shop.gatewayUrl}/goods?id=abc`, { method: 'DELETE' });
      expect(badId.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"Invalid Parameters"\}$/);
      const missingPrice = await send(`${shop.gatewayUrl}/goods`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ name: 'n', category: 'c', description: 'd' }),
      });
      expect(missingPrice.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"Invalid Parameters"\}$/);
      const taken = await send(`${shop.gatewayUrl}/members`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ username: 'test_account', password: 'x' }),
      });
      expect(taken.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"Username is already taken"\}$/);
    });

    it('a guessed password: after five failed sign-ins in a row, 429 with the wait in Retry-After and the reason in the envelope', async () => {
      const created = await send(`${shop.gatewayUrl}/members`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ username: 'guessed', password: 'right' }),
      });
      expect(created.body).toMatch(/"errorcode":0/);
      const guess = (password: string) =>
        send(`${shop.gatewayUrl}/members?username=guessed&password=${password}`);
      for (let failure = 1; failure <= 6; failure++) {
        expect((await guess(`guess${failure}`)).body).toMatch(/"errormessage":"Invalid password"\}$/);
      }
      const throttled = await guess('right');
      expect(throttled.status).toBe(429);
      expect(throttled.headers['retry-after']).toBe('1');
      expect(throttled.body).toMatch(
        /^\{"key":\d+,"errorcode":1,"errormessage":"Too many failed sign-ins for this account: try again in 1 s"\}$/,
      );
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const signedIn = await guess('right');
      expect(signedIn.status).toBe(200);
      expect(signedIn.body).toMatch(/"errorcode":0,"errormessage":"success","userid":\d+\}$/);
    });
  });
}
