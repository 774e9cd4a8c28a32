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
 * the goods table holds each write's claim a while, then fails the INSERT. The first write to claim
 * the key waits besides on a lock the test holds until the other requests are queued on its claim
 * (a machine slow to send them then fails at the wait, not at the count of 409s); each later write
 * holds the claim long enough for the others, refused when the claim they waited on rolled back, to
 * queue on the next one.
 */
describe.runIf(mysqlUrl)('an Idempotency-Key whose writes keep rolling back, on MariaDB', () => {
  let shop: Shop;
  beforeAll(async () => {
    shop = await startShop({ kind: 'mysql', serverUrl: mysqlUrl });
    await vi.waitFor(() => expect(servingCount(shop.gateway, 'POST', '/goods')).toBe(1));
  });
  afterAll(() => shop?.stop());

  async function sql(statement: string, values: unknown[] = []): Promise<unknown> {
    const connection = await createConnection(connectionOptions());
    try {
      const [rows] = await connection.query(statement, values);
      return rows;
    } finally {
      await connection.end();
    }
  }
  /** How many transactions of this test's database are in `state` (InnoDB's, e.g. LOCK WAIT). */
  async function transactionsIn(state: string): Promise<number> {
    // Two reads: MariaDB answers a subquery of PROCESSLIST inside one of INNODB_TRX with no rows.
    const ours = new Set(
      (
        (await sql('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE()')) as { ID: number }[]
      ).map((row) => Number(row.ID)),
    );
    const threads = (await sql(
      'SELECT trx_mysql_thread_id AS thread FROM information_schema.INNODB_TRX WHERE trx_state = ?',
      [state],
    )) as { thread: number }[];
    return threads.filter((row) => ours.has(Number(row.thread))).length;
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
    // GET_LOCK's names are the server's, not the database's: the test's database names its gate.
    const [{ gate }] = (await sql("SELECT CONCAT(DATABASE(), '.gate') AS gate")) as { gate: string }[];
    await sql(
      `CREATE TRIGGER goods_fails BEFORE INSERT ON goods FOR EACH ROW BEGIN IF GET_LOCK(${JSON.stringify(gate)}, 30) = 1 THEN DO RELEASE_LOCK(${JSON.stringify(gate)}); END IF; DO SLEEP(0.3); SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END`,
    );
    const holder = await createConnection(connectionOptions());
    let requests: Promise<HttpResult>[];
    try {
      await holder.query('SELECT GET_LOCK(?, 30)', [gate]);
      requests = Array.from({ length: 5 }, () => post('busy-key'));
      // One request holds the key's claim, its INSERT waiting on the gate; the others queue on the
      // claim, each a transaction waiting for a lock, before any write fails. (Within the services'
      // lock wait, 4 s: a slower machine fails here, not below.)
      await vi.waitFor(
        async () => {
          const rows = (await sql(
            `SELECT 1 FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND STATE = 'User lock'`,
          )) as unknown[];
          expect(rows).toHaveLength(1);
          expect(await transactionsIn('LOCK WAIT')).toBe(4);
        },
        { timeout: 10_000 },
      );
      await holder.query('SELECT RELEASE_LOCK(?)', [gate]);
    } finally {
      // Closed, the connection lets go of the gate, so that no request waits on a failed test.
      await holder.end();
    }
    const answers = await Promise.all(requests);
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
