import { type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registrationDescriptorSet } from '../../src/common/descriptors.js';
import { INVALID_IDEMPOTENCY_KEY } from '../../src/common/idempotency-key.js';
import type { GoodsServiceServer } from '../../src/gen/services.js';
import { http, raw, rawBody } from '../helpers/http.js';
import { withoutMethodOption } from '../helpers/nodes.js';
import {
  Closer,
  startDistributor,
  startGateway,
  startGoodsService,
  waitForRoute,
} from './support/cluster.js';

const GOODS = JSON.stringify({ name: 'n', category: 'c', price: 1, description: 'd' });
const json = { 'Content-Type': 'application/json' };
/** The field number of shop.v1.idempotency_key (proto/idempotency.proto). */
const IDEMPOTENCY_KEY_OPTION = 50102;
const envelope = (body: string) => body.replace(/^\{"key":\d+,/, '{"key":N,');

/** What a fake goods instance saw: each call's method and its `idempotency-key` metadata. */
interface Seen {
  method: string;
  keys: string[];
}

/**
 * A goods instance that records what it is sent and answers as told: success, or UNAVAILABLE (as an
 * instance whose answer is lost does), or a given status.
 */
async function fakeGoods(
  closer: Closer,
  distributor: string,
  answer: (method: string) => { code: status; details: string } | undefined = () => undefined,
  descriptorSet?: Buffer,
) {
  const seen: Seen[] = [];
  const handle =
    <Response>(method: string, response: Response) =>
    (call: ServerUnaryCall<unknown, Response>, callback: sendUnaryData<Response>) => {
      seen.push({ method, keys: call.metadata.get('idempotency-key').map(String) });
      const failure = answer(method);
      if (failure) callback(failure);
      else callback(null, response);
    };
  const implementation: GoodsServiceServer = {
    createGoods: handle('CreateGoods', { id: 1 }),
    listGoods: handle('ListGoods', { results: [], nextPageToken: '' }),
    deleteGoods: handle('DeleteGoods', {}),
  };
  await startGoodsService(closer, distributor, implementation, undefined, descriptorSet);
  return seen;
}

describe('gateway: Idempotency-Key', () => {
  const closer = new Closer();
  afterEach(() => closer.closeAll());

  async function shop(...answers: Array<Parameters<typeof fakeGoods>[2]>) {
    const { address } = await startDistributor(closer);
    const instances: Seen[][] = [];
    for (const answer of answers.length > 0 ? answers : [undefined]) {
      instances.push(await fakeGoods(closer, address, answer));
    }
    const { gateway, port } = await startGateway(closer, address);
    await waitForRoute(gateway, 'POST /goods', instances.length);
    return { port, instances };
  }

  it('carries the key of a POST or a DELETE to the service as idempotency-key metadata', async () => {
    const { port, instances } = await shop();
    const key = 'order-7f3a:2026-01-01T00:00:00Z';
    const posted = await http(port, 'POST', '/goods', {
      headers: { ...json, 'Idempotency-Key': key },
      body: GOODS,
    });
    expect(envelope(posted.body)).toBe('{"key":N,"errorcode":0,"errormessage":"success"}');
    await http(port, 'DELETE', '/goods?id=1', { headers: { 'idempotency-key': key } });
    await http(port, 'POST', '/goods', { headers: json, body: GOODS });
    // A GET is not a write: its key is not passed on (nor checked).
    await http(port, 'GET', '/goods', { headers: { 'Idempotency-Key': 'has space' } });
    expect(instances[0]).toEqual([
      { method: 'CreateGoods', keys: [key] },
      { method: 'DeleteGoods', keys: [key] },
      { method: 'CreateGoods', keys: [] },
      { method: 'ListGoods', keys: [] },
    ]);
  });

  it('answers 400 with the envelope to a malformed key, without calling the service', async () => {
    const { port, instances } = await shop();
    for (const key of ['', 'has space', 'x'.repeat(256), 'tab\there']) {
      const answer = await http(port, 'POST', '/goods', {
        headers: { ...json, 'Idempotency-Key': key },
        body: GOODS,
      });
      expect(answer.status, JSON.stringify(key)).toBe(400);
      expect(envelope(answer.body)).toBe(
        `{"key":N,"errorcode":1,"errormessage":${JSON.stringify(INVALID_IDEMPOTENCY_KEY)}}`,
      );
    }
    // Beyond ASCII, and sent twice: written by hand, as node's client would refuse to.
    for (const headers of [
      'Idempotency-Key: caf\u00e9\r\n',
      'Idempotency-Key: a\r\nIdempotency-Key: a\r\n',
    ]) {
      const answer = await raw(
        port,
        Buffer.from(
          `DELETE /goods?id=1 HTTP/1.1\r\nHost: localhost\r\n${headers}Connection: close\r\n\r\n`,
          'latin1',
        ),
      );
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(envelope(rawBody(answer))).toContain(INVALID_IDEMPOTENCY_KEY);
    }
    expect(instances[0]).toEqual([]);
    const longest = await http(port, 'POST', '/goods', {
      headers: { ...json, 'Idempotency-Key': '~'.repeat(255) },
      body: GOODS,
    });
    expect(longest.status).toBe(200);
  });

  it('retries a keyed POST refused with UNAVAILABLE on another instance, never an unkeyed one', async () => {
    const unavailable = { code: status.UNAVAILABLE, details: 'Database unavailable' };
    const { port, instances } = await shop(() => unavailable, undefined);
    const [failing, healthy] = instances as [Seen[], Seen[]];
    const post = (headers: Record<string, string> = {}) =>
      http(port, 'POST', '/goods', { headers: { ...json, ...headers }, body: GOODS });

    const keyed = await Promise.all([1, 2, 3, 4].map((n) => post({ 'Idempotency-Key': `k${n}` })));
    expect(keyed.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    expect(failing.length).toBeGreaterThan(0);
    expect(healthy.map(({ keys }) => keys[0]).sort()).toEqual(['k1', 'k2', 'k3', 'k4']);
    // Each retry carried the same key to the other instance.
    for (const { keys } of failing) expect(healthy.map((call) => call.keys[0])).toContain(keys[0]);

    failing.length = 0;
    healthy.length = 0;
    const unkeyed = await Promise.all([1, 2, 3, 4].map(() => post()));
    expect(unkeyed.map((answer) => answer.status)).toContain(503);
    expect(failing.length + healthy.length).toBe(4);
  });

  it('sends a keyed POST to one instance only when its method does not make its write once per key', async () => {
    // A build of goods whose CreateGoods lacks the idempotency_key option, as a service whose
    // handler ignores the key: a retry would write twice.
    const { address } = await startDistributor(closer);
    const descriptorSet = withoutMethodOption(
      registrationDescriptorSet(['shop.v1.GoodsService']),
      'CreateGoods',
      IDEMPOTENCY_KEY_OPTION,
    );
    const instances: Seen[][] = [];
    for (const answer of [() => ({ code: status.UNAVAILABLE, details: 'Database unavailable' }), undefined]) {
      instances.push(await fakeGoods(closer, address, answer, descriptorSet));
    }
    const { gateway, port } = await startGateway(closer, address);
    await waitForRoute(gateway, 'POST /goods', 2);
    const [failing, healthy] = instances as [Seen[], Seen[]];
    const answers = await Promise.all(
      [1, 2, 3, 4].map((n) =>
        http(port, 'POST', '/goods', { headers: { ...json, 'Idempotency-Key': `k${n}` }, body: GOODS }),
      ),
    );
    expect(answers.map((answer) => answer.status)).toContain(503);
    // Each request reached one instance, once.
    expect([...failing, ...healthy].map(({ keys }) => keys[0]).sort()).toEqual(['k1', 'k2', 'k3', 'k4']);
    // DELETE is retried as before: idempotent by its method.
    failing.length = 0;
    healthy.length = 0;
    const deletes = await Promise.all([1, 2, 3, 4].map(() => http(port, 'DELETE', '/goods?id=1')));
    expect(deletes.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
  });

  it('retries a keyed POST on no instance of a build whose method does not write once per key', async () => {
    // A rolling deploy that adds the option: the new build fails, the old one would write again.
    const { address } = await startDistributor(closer);
    const failing = await fakeGoods(closer, address, () => ({
      code: status.UNAVAILABLE,
      details: 'Database unavailable',
    }));
    const old = await fakeGoods(
      closer,
      address,
      undefined,
      withoutMethodOption(
        registrationDescriptorSet(['shop.v1.GoodsService']),
        'CreateGoods',
        IDEMPOTENCY_KEY_OPTION,
      ),
    );
    const { gateway, port } = await startGateway(closer, address);
    await waitForRoute(gateway, 'POST /goods', 2);
    const answers = await Promise.all(
      [1, 2, 3, 4].map((n) =>
        http(port, 'POST', '/goods', { headers: { ...json, 'Idempotency-Key': `k${n}` }, body: GOODS }),
      ),
    );
    expect(failing.length).toBeGreaterThan(0);
    expect(answers.filter((answer) => answer.status === 503)).toHaveLength(failing.length);
    expect([...failing, ...old].map(({ keys }) => keys[0]).sort()).toEqual(['k1', 'k2', 'k3', 'k4']);
  });

  it('answers a key reused with another request 422, with the service message in the envelope', async () => {
    const reused = {
      code: status.FAILED_PRECONDITION,
      details: 'Idempotency-Key reused with a different request',
    };
    const { port } = await shop(() => reused);
    const answer = await http(port, 'POST', '/goods', {
      headers: { ...json, 'Idempotency-Key': 'k' },
      body: GOODS,
    });
    expect(answer.status).toBe(422);
    expect(envelope(answer.body)).toBe(
      '{"key":N,"errorcode":1,"errormessage":"Idempotency-Key reused with a different request"}',
    );
  });
});

describe('gateway: no Idempotency-Key, no change', () => {
  const closer = new Closer();
  let port: number;
  beforeAll(async () => {
    const { address } = await startDistributor(closer);
    await fakeGoods(closer, address);
    const started = await startGateway(closer, address);
    await waitForRoute(started.gateway, 'POST /goods', 1);
    port = started.port;
  });
  afterAll(() => closer.closeAll());

  it('answers the book body to a POST without the header', async () => {
    const answer = await http(port, 'POST', '/goods', { headers: json, body: GOODS });
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('{"key":0,"errorcode":0,"errormessage":"success"}');
  });
});
