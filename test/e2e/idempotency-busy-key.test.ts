import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { type HttpResult, send } from '../helpers/http.js';
import { type Shop, servingCount, startShop } from './support/shop.js';

const mysqlUrl = inject('mysqlUrl');

/**
 * docs/rest.md, Idempotent writes in full, "At once": on MySQL, a request behind three writes of its
 * key that each rolled back is answered 409 with Retry-After, "Idempotency-Key is in use by a
 * concurrent request; try again", and a retry with the same key is safe. Every part is real: the
 * distributor, goods on MariaDB, the gateway. The writes fail in the database itself: a trigger on
 * the goods table holds each write's claim a while (so that the other requests queue on the key),
 * then fails the INSERT.
 */
describe.runIf(mysqlUrl)('an Idempotency-Key whose writes keep rolling back, on MariaDB', () => {
  let shop: Shop;
  beforeAll(async () => {
    shop = await startShop({ kind: 'mysql', serverUrl: mysqlUrl });
    await vi.waitFor(() => expect(servingCount(shop.gateway, 'POST', '/goods')).toBe(1));
  });
  afterAll(() => shop?.stop());

  async function sql(statement: string): Promise<unknown> {
    const connection = await createConnection(connectionOptions());
    try {
      const [rows] = await connection.query(statement);
      return rows;
    } finally {
      await connection.end();
    }
  }
  function connectionOptions() {
    if (shop.storage.kind !== 'mysql') throw new Error('not on MySQL');
    const { host, port, user, password, database } = shop.storage.connection;
    return { host, port, user, password, database };
  }

  const post = (key: string): Promise<HttpResult> =>
    send(`${shop.gatewayUrl}/goods`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key },
      body: JSON.stringify({ name: 'mug', category: 'kitchen', price: 5, description: 'a mug' }),
    });

  it('the request that lost three times is 409 with Retry-After; a retry with the key, once the store is well, writes once', async () => {
    await sql(
      "CREATE TRIGGER goods_fails BEFORE INSERT ON goods FOR EACH ROW BEGIN DO SLEEP(0.3); SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END",
    );
    const first = post('busy-key');
    // The first request holds the key's claim (its INSERT sleeps in the trigger): the others queue on it.
    await vi.waitFor(async () => {
      const rows = (await sql(
        `SELECT 1 FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND STATE = 'User sleep'`,
      )) as unknown[];
      expect(rows).toHaveLength(1);
    });
    const behind = Array.from({ length: 4 }, () => post('busy-key'));
    const answers = await Promise.all([first, ...behind]);
    // Each write fails in turn; a request that waited behind three of them is told the key is busy
    // (two may be, when InnoDB ends both the last ones as victims of one rollback).
    const busy = answers.filter((answer) => answer.status === 409);
    const failed = answers.filter((answer) => answer.status === 500);
    expect(busy.length + failed.length).toBe(answers.length);
    expect(busy.length).toBeGreaterThanOrEqual(1);
    expect(failed.length).toBeGreaterThanOrEqual(3);
    for (const answer of busy) {
      expect(answer.body).toMatch(
        /^\{"key":\d+,"errorcode":1,"errormessage":"Idempotency-Key is in use by a concurrent request; try again"\}$/,
      );
      expect(answer.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    }
    for (const answer of failed) {
      expect(answer.body).toMatch(
        /^\{"key":\d+,"errorcode":1,"errormessage":"Internal error in the service"\}$/,
      );
    }
    expect(await sql('SELECT id FROM goods')).toEqual([]);

    // The store is well again: the client's retry with its key writes once, and a repeat answers the same.
    await sql('DROP TRIGGER goods_fails');
    for (let attempt = 0; attempt < 2; attempt++) {
      const retried = await post('busy-key');
      expect(retried.status).toBe(200);
      expect(retried.body).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success"\}$/);
    }
    expect(await sql('SELECT id FROM goods')).toHaveLength(1);
  });
});
