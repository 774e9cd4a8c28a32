import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { send } from '../helpers/http.js';
import { type Shop, servingCount, startShop } from './support/shop.js';

// Two goods instances, each on a store of its own: instance A holds one item, instance B none, so
// every GET /goods answer tells which instance served it.
describe('two goods instances behind the gateway', () => {
  // Counts, not speed: a loaded machine (the whole suite on two cores) takes well over the 1 s
  // vi.waitFor gives by default to route a new instance, or to answer a batch of eight.
  const enough = { timeout: 15_000, interval: 20 };
  let shop: Shop;
  const secondStore = mkdtempSync(join(tmpdir(), 'shop-e2e-second-'));
  beforeAll(async () => {
    shop = await startShop({ kind: 'sqlite' });
    await vi.waitFor(() => expect(servingCount(shop.gateway, 'POST', '/goods')).toBe(1), enough);
    const created = await send(`${shop.gatewayUrl}/goods`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'on A', category: 'c', price: 1, description: '' }),
    });
    expect(created.body).toContain('"errorcode":0');
    await shop.startInstance('goods', { kind: 'sqlite', dataDir: secondStore });
    await vi.waitFor(() => expect(servingCount(shop.gateway, 'GET', '/goods')).toBe(2), enough);
  });
  afterAll(async () => {
    await shop?.stop();
    rmSync(secondStore, { recursive: true, force: true });
  });

  const servedBy = (body: string): 'A' | 'B' | 'failed' =>
    body.includes('"name":"on A"') ? 'A' : body.includes('"errormessage":"no data"') ? 'B' : 'failed';

  it('sends traffic to both, round robin', async () => {
    const answers: string[] = [];
    for (let index = 0; index < 10; index++)
      answers.push(servedBy((await send(`${shop.gatewayUrl}/goods`)).body));
    expect(answers.filter((who) => who === 'A')).toHaveLength(5);
    expect(answers.filter((who) => who === 'B')).toHaveLength(5);
  });

  it('moves all traffic to the other instance when one drains, with no failed request', async () => {
    const second = shop.services.get('goods')![1]!;
    const answers: Array<{ status: number; who: string }> = [];
    let stopped = false;
    // A request that gets no answer counts as failed (status 0, with its error), rather than
    // ending the load with a rejection nobody awaits yet.
    const ask = () =>
      send(`${shop.gatewayUrl}/goods`).then(
        (answer) => ({ status: answer.status, who: servedBy(answer.body) }),
        (error: Error) => ({ status: 0, who: `failed: ${error.message}` }),
      );
    const load = (async () => {
      while (!stopped) answers.push(...(await Promise.all(Array.from({ length: 8 }, ask))));
    })();
    let afterStop = 0;
    try {
      await vi.waitFor(() => expect(answers.length).toBeGreaterThan(16), enough);
      await second.stop();
      afterStop = answers.length;
      await vi.waitFor(() => expect(answers.length).toBeGreaterThan(afterStop + 40), enough);
    } finally {
      // Ended however the test ends: a load left running when a wait failed went on into afterAll,
      // whose stop of the gateway then refused its requests (connect ECONNREFUSED to the gateway's
      // port), a failure that looked like the gateway's and hid the one that was the test's.
      stopped = true;
      await load;
    }

    expect(answers.filter((answer) => answer.status !== 200 || answer.who.startsWith('failed'))).toEqual([]);
    expect(answers.slice(0, afterStop).some((answer) => answer.who === 'B')).toBe(true);
    expect(answers.slice(afterStop).every((answer) => answer.who === 'A')).toBe(true);
    expect(servingCount(shop.gateway, 'GET', '/goods')).toBe(1);
  });
});
